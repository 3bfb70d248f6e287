"""pgherd.yaml: the cluster's description, validated once into typed, frozen objects.

Secrets are never in this file: it names a passfile (pgpass format, mode 0600) for the
database roles and a token file for the agents' API, so the config itself can be shown,
copied and kept under version control.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from pgherd import config_lite
from pgherd.config_lite import (
    AgentMember,
    ClusterFiles,
    DataNode,
    LiteConfig,
    SettingValue,
    find_named,
    find_node,
    node_listening_at,
)
from pgherd.errors import ConfigError
from pgherd.model import ha_settings as ha_model
from pgherd.model import settings as settings_rules
from pgherd.model import watchdog as watchdog_model
from pgherd.model.repository import RepositorySpec, Retention
from pgherd.model.sockets import socket_dir_fits

# Where they have always been found (they live with the quick commands' reader now).
CONFIG_ENV = config_lite.CONFIG_ENV
TOKEN_ENV = config_lite.TOKEN_ENV
DEFAULT_CONFIG = config_lite.DEFAULT_CONFIG
config_path = config_lite.config_path
SERVER_CONFIG = config_lite.SERVER_CONFIG

# Node names become replication slot and application names: slot names allow only
# lower-case letters, digits and underscores, so names are held to that from the start.
NODE_NAME = config_lite.NODE_NAME
check_node_name = config_lite.check_node_name
NodeName = Annotated[str, Field(pattern=NODE_NAME)]
RoleName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
Port = Annotated[int, Field(ge=1, le=65535)]


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, got {str(path)!r}")
    return path


AbsPath = Annotated[Path, AfterValidator(_absolute)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _ApiCa:
    """A member's ``api_ca``: the cluster CA, set on each member by
    :class:`ClusterConfig` from its ``tls`` section when the config is validated (None:
    plain HTTP, ``tls: off``); the lite form holds it as a value."""

    if TYPE_CHECKING:
        _api_ca: Path | None

    @property
    def api_ca(self) -> Path | None:
        return self._api_ca


class NodeConfig(_ApiCa, DataNode, _Strict):
    """One PostgreSQL server and its agent.

    ``data_dir`` is PostgreSQL's; ``home`` (default: the data directory's parent) holds
    what pgherd keeps beside it: the socket directory, the server and agent logs.
    """

    _api_ca: Path | None = PrivateAttr(default=None)

    name: NodeName
    host: str = "127.0.0.1"
    port: Port = 5432
    api_host: str = "127.0.0.1"
    api_port: Port = 8008
    data_dir: AbsPath
    home: AbsPath | None = None
    pg_bin: AbsPath | None = None
    # Automatic failover never promotes a node tagged nofailover (a reporting replica, a
    # standby in another data centre): it stays a standby of whoever leads.
    nofailover: bool = False
    # Never in the read pool of load balancers (GET /replica answers 503): a reporting
    # replica, a standby being rebuilt.
    noloadbalance: bool = False
    # Never chosen as a synchronous standby (a standby far away, whose acknowledgement
    # would slow every commit).
    nosync: bool = False
    # Under automatic failover a standby streams from the leader, or from this node
    # (cascading) while that one runs as a standby.
    replicate_from: NodeName | None = None
    # This node's watchdog device, when it is not ha.watchdog's (docs/failover.md).
    watchdog: AbsPath | None = None

    @model_validator(mode="after")
    def _socket_fits(self) -> Self:
        if not socket_dir_fits(str(self.socket_dir)):
            raise ValueError(
                f"the path {self.socket_dir} is too long for a Unix socket; "
                "use a shorter data_dir or home"
            )
        return self


class RetentionConfig(_Strict):
    """Per repository: keep this many full backups (and every differential and
    incremental that depends on them), and/or every backup younger than ``keep_days``."""

    keep_full: int | None = Field(default=None, ge=1)
    keep_days: float | None = Field(default=None, gt=0)


class _RepositoryPlace(_Strict):
    """Where a repository is and how it is reached: a local or mounted directory
    (``path``) or an S3-compatible bucket (``repo: s3://bucket/prefix`` with ``endpoint``,
    ``region`` and a ``credentials_file`` in the AWS format). ``encryption_key_file``:
    AES-256-GCM. Shared by a listed repository and the one ``archive:`` describes in
    place."""

    path: AbsPath | None = None
    repo: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")] | None = (
        None
    )
    endpoint: Annotated[str, Field(pattern=r"^https?://[^/\s]+/?$")] | None = None
    region: str = "us-east-1"
    credentials_file: AbsPath | None = None
    encryption_key_file: AbsPath | None = None
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class RepositoryConfig(_RepositoryPlace):
    """One repository of ``archive.repositories``, named."""

    name: NodeName | None = None

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.path is None) == (self.repo is None):
            raise ValueError("give a repository either path: DIR or repo: s3://bucket/prefix")
        if self.repo is not None and self.credentials_file is None:
            raise ValueError(
                f"{self.repo} needs credentials_file: a file (mode 0600) with "
                "aws_access_key_id and aws_secret_access_key; secrets never go in pgherd.yaml"
            )
        if self.path is not None and (self.endpoint or self.credentials_file):
            raise ValueError("endpoint and credentials_file belong to an s3:// repo, not a path")
        return self

    def spec(self, default_name: str) -> RepositorySpec:
        return RepositorySpec(
            name=self.name or default_name,
            path=str(self.path) if self.path else None,
            repo=self.repo,
            endpoint=self.endpoint,
            region=self.region,
            credentials_file=str(self.credentials_file) if self.credentials_file else None,
            encryption_key_file=(
                str(self.encryption_key_file) if self.encryption_key_file else None
            ),
            retention=Retention(self.retention.keep_full, self.retention.keep_days),
        )


class ArchiveConfig(_RepositoryPlace):
    """The WAL archive and base backups (docs/archive.md).

    One repository is described in place (``path``, as before, or ``repo`` with its
    S3 settings); more go in ``repositories``. Every WAL segment is acknowledged to
    PostgreSQL only once it is durable in all of them; restores read the first that
    has what they need. ``path`` must be reachable by the PostgreSQL OS user:
    archive_command runs as it. With ``cleanup_keep`` set, the primary's agent runs
    ``archive cleanup --keep N`` every ``cleanup_interval`` seconds.

    The node's agent pushes WAL with ``push_workers`` in parallel; ``queue_max`` bytes
    of WAL waiting to be archived is the level at which ``archive status`` and the
    metrics report archiving as falling behind (WAL is never dropped).
    """

    repositories: tuple[RepositoryConfig, ...] = ()
    cleanup_keep: int | None = Field(default=None, ge=1)
    cleanup_interval: float = Field(default=3600, ge=10)
    push_workers: int = Field(default=4, ge=1, le=64)
    queue_max: int = Field(default=1024 * 1024 * 1024, ge=16 * 1024 * 1024)

    @model_validator(mode="after")
    def _repositories(self) -> Self:
        if self.path is None and self.repo is None and not self.repositories:
            raise ValueError(
                "name a repository: path: DIR, repo: s3://bucket/prefix, or repositories: [...]"
            )
        _require_unique_values("repository", [r.name for r in self.specs()])
        return self

    def first(self) -> RepositoryConfig | None:
        if self.path is None and self.repo is None:
            return None
        place = {f: getattr(self, f) for f in _RepositoryPlace.model_fields}
        return RepositoryConfig(name="main", **place)

    def specs(self) -> tuple[RepositorySpec, ...]:
        """Every repository, the one described in place first ("main")."""
        first = self.first()
        listed = ((first,) if first else ()) + self.repositories
        return tuple(r.spec(f"repo{n}") for n, r in enumerate(listed, 1))


class BackupRun(_Strict):
    """One line of ``backup.schedule``: a cron expression and the kind of backup."""

    cron: str
    type: Literal["full", "differential", "incremental"] = "full"
    repo: NodeName | None = None  # the repository (default: the first)

    @model_validator(mode="after")
    def _valid_cron(self) -> Self:
        from croniter import croniter  # lazy: every command reads the config, few a cron

        if not croniter.is_valid(self.cron):
            raise ValueError(f"{self.cron!r} is not a cron expression (e.g. '0 1 * * *')")
        return self


class BackupConfig(_Strict):
    """Backups the agents take by themselves (docs/archive.md): the leader runs each
    ``schedule`` entry when its cron expression falls due (UTC), from a standby when
    ``from_standby``; ``workers`` read, compress and upload in parallel."""

    schedule: tuple[BackupRun, ...] = ()
    from_standby: bool = False
    workers: int = Field(default=2, ge=1, le=32)


class HistoryConfig(_Strict):
    """Monitoring history (docs/console.md): every agent samples its replication lag every
    ``interval`` seconds into a small sqlite file in its home, kept ``keep_days`` days."""

    interval: float = Field(default=5, ge=1, le=3600)
    keep_days: float = Field(default=7, gt=0, le=3650)


class TlsConfig(_Strict):
    """TLS between every pair of parts (docs/security.md), on unless ``tls: off``.

    ``dir`` holds ``ca.crt`` (the cluster CA) and ``NAME.crt``/``NAME.key`` for each
    member and etcd member (default: ``tls/`` beside the passfile), as ``pgherd secrets
    init`` and ``lab up`` write them. ``client_certs``: agents present their certificate
    when they call each other, and an agent accepts a node's credential only over a
    connection that presented that node's certificate."""

    dir: AbsPath | None = None
    client_certs: bool = False


class ApiConfig(_Strict):
    """The agents' HTTP API (docs/security.md). ``auth_reads``: reads need a credential
    too (a viewer's is enough), except the load balancers' checks (``/health``,
    ``/primary``, ``/replica``, ``/read-only``)."""

    auth_reads: bool = False


ConsoleRole = Literal["viewer", "operator"]


class ConsoleUser(_Strict):
    """A console login. ``password_hash`` is written by ``pgherd console passwd`` (scrypt);
    the password itself is never stored."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    role: ConsoleRole = "viewer"
    password_hash: str


class ConsoleConfig(_Strict):
    """The web console's logins. ``token_login``: the cluster's API token also logs in,
    as an operator (handy for a lab; turn it off where the token is shared widely)."""

    users: tuple[ConsoleUser, ...] = ()
    token_login: bool = True
    session_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)
    # Sessions kept here survive a console restart (default: beside the API token file).
    sessions_file: AbsPath | None = None

    @model_validator(mode="after")
    def _unique_users(self) -> Self:
        _require_unique_values("console user", [u.name for u in self.users])
        return self


class WitnessConfig(_ApiCa, AgentMember, _Strict):
    """A member without data (``docs/failover.md``): its agent checks in to the store and
    serves ``/health``; with etcd, its host runs an etcd member, so that two data nodes and
    a witness keep the store's quorum when any one host is lost. Never a leader."""

    _api_ca: Path | None = PrivateAttr(default=None)

    name: NodeName
    api_host: str = "127.0.0.1"
    api_port: Port = 8008
    home: AbsPath

    @property
    def home_dir(self) -> Path:
        return self.home


class SqliteDcs(_Strict):
    """A store in a sqlite file: every agent must run on this one machine (a lab)."""

    sqlite: AbsPath


class EtcdDcs(_Strict):
    """etcd v3 (its JSON gateway): every endpoint of the etcd cluster, ``https://host:port``
    (``http://`` only with ``tls: off``).

    ``ca``: the CA that signs the etcd members' certificates (default: the cluster CA);
    ``cert``/``key``: a client certificate, for etcd's ``--client-cert-auth``;
    ``username``/``password_file``: etcd's own authentication (the password in a 0600
    file, never in this one)."""

    etcd: tuple[Annotated[str, Field(pattern=r"^https?://[^/\s]+/?$")], ...] = Field(min_length=1)
    ca: AbsPath | None = None
    cert: AbsPath | None = None
    key: AbsPath | None = None
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password_file: AbsPath | None = None

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.cert is None) != (self.key is None):
            raise ValueError("ha.dcs: cert and key go together")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("ha.dcs: username and password_file go together")
        return self

    @property
    def https(self) -> bool:
        return all(url.startswith("https://") for url in self.etcd)


_HA = ha_model.Settings()


class SlotConfig(_Strict):
    """A permanent replication slot (``slots:``): it exists on whichever node leads, and
    every standby keeps a copy that follows it (docs/failover.md, "Slots that survive a
    failover"), for consumers outside pgherd (a CDC tool, pg_receivewal)."""

    type: Literal["physical", "logical"] = "logical"
    database: str | None = None  # logical: the database it decodes
    plugin: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,63}$")] = "pgoutput"

    @model_validator(mode="after")
    def _logical_needs_a_database(self) -> Self:
        if self.type == "logical" and not self.database:
            raise ValueError("a logical slot needs database: (the one it decodes)")
        if self.type == "physical" and self.database:
            raise ValueError("a physical slot takes no database")
        return self


SlotName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,63}$")]


class HaConfig(_Strict):
    """Automatic failover (``failover: automatic``): the coordination store and timing.

    The timing rule ``ttl >= loop_wait + 2 × retry_timeout`` lets a primary that cannot
    renew its lease demote itself before the lease can expire anywhere else
    (docs/failover.md works an example through).
    """

    # The defaults are model/ha.py's Settings' (the values decide() is tested with).
    dcs: SqliteDcs | EtcdDcs
    ttl: float = Field(default=_HA.ttl, gt=0, le=3600)  # seconds a lease lasts unrenewed
    loop_wait: float = Field(default=_HA.loop_wait, gt=0, le=600)  # seconds between cycles
    retry_timeout: float = Field(default=_HA.retry_timeout, gt=0, le=600)  # store's longest
    maximum_lag: int = Field(default=_HA.maximum_lag, ge=0)  # bytes; further behind: no
    primary_start_timeout: float = Field(default=_HA.primary_start_timeout, ge=0)  # in place
    synchronous: bool = _HA.synchronous  # manage synchronous_standby_names (ANY quorum)
    synchronous_quorum: int = Field(default=_HA.sync_quorum, ge=1)  # commits wait for these
    failsafe: bool = _HA.failsafe  # store down, every member answers the primary: it stays
    # A primary's agent that stops (systemctl stop/restart, an upgrade) leaves PostgreSQL
    # running and extends its lease to this many seconds: the next agent must renew it by
    # then, or the postmaster's keeper stops PostgreSQL and a standby takes over
    # (docs/failover.md). 0: no extension, the lease's ttl.
    agent_restart_grace: float = Field(default=10.0, ge=0, le=3600)
    # A watchdog device (/dev/watchdog: softdog or hardware) the leader arms and pings, so
    # that the machine resets when its agent stops renewing the lease (docs/failover.md).
    # A node that cannot arm its device never leads. Per node: nodes[].watchdog.
    watchdog: AbsPath | None = None

    @model_validator(mode="after")
    def _timing(self) -> Self:
        problem = ha_model.timing_problem(self.ttl, self.loop_wait, self.retry_timeout)
        if problem is not None:
            raise ValueError(problem)
        return self

    def watchdog_problem(self) -> str | None:
        """Why these timings do not allow a watchdog, or None."""
        return watchdog_model.timing_problem(self.ttl, self.loop_wait, self.retry_timeout)

    def settings(self, mode: ha_model.Mode) -> ha_model.Settings:
        """The settings decide() takes: every field of model/ha.py's Settings that this
        section has by the same name, and the quorum."""
        shared = {f.name for f in dataclasses.fields(ha_model.Settings)} & set(
            type(self).model_fields
        )
        return ha_model.Settings(
            mode=mode,
            sync_quorum=self.synchronous_quorum,
            **{name: getattr(self, name) for name in shared},
        )


Topology = Literal["streaming", "independent"]


class ClusterConfig(ClusterFiles, _Strict):
    """``topology``: ``streaming`` (one primary, the rest its standbys) or ``independent``
    (every node is a primary of its own, e.g. for logical replication between them)."""

    cluster: NodeName
    topology: Topology = "streaming"
    os_user: str = "postgres"
    pg_bin: AbsPath | None = None
    superuser: RoleName = "postgres"
    replication_user: RoleName = "replicator"
    passfile: AbsPath
    api_token_file: AbsPath
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    # manual: only an operator promotes (pgherd standby promote/switchover); automatic:
    # the agents' HA loop fails over through the coordination store named in ``ha``.
    failover: Literal["manual", "automatic"] = "manual"
    ha: HaConfig | None = None
    archive: ArchiveConfig | None = None
    backup: BackupConfig = Field(default_factory=BackupConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    # TLS on (the default: a section, or nothing) or off (``tls: off``, which YAML reads
    # as false): doctor and cluster show flag a cluster that runs in plain text.
    tls: TlsConfig | bool = Field(default_factory=TlsConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    # Permanent slots, kept on whichever node leads and copied to the standbys.
    slots: dict[SlotName, SlotConfig] = Field(default_factory=dict)
    nodes: tuple[NodeConfig, ...] = Field(min_length=1)
    witnesses: tuple[WitnessConfig, ...] = ()
    # Other pgherd clusters (their pgherd.yaml, copied here) that meshes name as members
    # (model/mesh_members.py): read when a mesh command or an apply worker needs them.
    peers: tuple[AbsPath, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        members: list[NodeConfig | WitnessConfig] = [*self.nodes, *self.witnesses]
        _require_unique("node name", [n.name for n in members])
        _require_unique("PostgreSQL address", [f"{n.host}:{n.port}" for n in self.nodes])
        _require_unique("agent API address", [f"{n.api_host}:{n.api_port}" for n in members])
        # Paths only per host: real servers use the same ones on every host.
        _require_unique_per_host("data directory", self.nodes, lambda n: str(n.data_dir))
        _require_unique_per_host("node home", members, lambda n: str(n.home_dir))
        if self.failover == "automatic" and self.ha is None:
            raise ValueError(
                "failover: automatic needs an ha: section naming the coordination store "
                "(ha.dcs: {sqlite: PATH} or {etcd: [URL, ...]})"
            )
        if self.failover == "automatic" and self.topology == "independent":
            raise ValueError(
                "failover: automatic cannot be used with topology: independent "
                "(every node is a primary of its own)"
            )
        names = {n.name for n in self.nodes}
        wants_watchdog = any(n.watchdog for n in self.nodes) or (
            self.ha is not None and self.ha.watchdog is not None
        )
        if wants_watchdog:
            if self.ha is None:
                raise ValueError("a watchdog needs automatic failover: add an ha: section")
            problem = self.ha.watchdog_problem()
            if problem is not None:
                raise ValueError(problem)
        for node in self.nodes:
            if node.replicate_from is not None and node.replicate_from not in names - {node.name}:
                raise ValueError(
                    f"{node.name}: replicate_from {node.replicate_from!r} is not another node"
                )
        taken = names & set(self.slots)
        if taken:
            raise ValueError(
                f"slot {sorted(taken)[0]!r} has a node's name: those slots are the standbys' "
                "own (choose another name)"
            )
        if self.backup.schedule and self.archive is None:
            raise ValueError("backup.schedule needs an archive: section (where backups go)")
        if self.witnesses and self.ha is None:
            raise ValueError("witnesses take part in the coordination store: add an ha: section")
        for key in self.settings:
            if not key.replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"settings: {key!r} is not a PostgreSQL parameter name")
            problem = settings_rules.managed_problem(key)
            if problem is not None:
                raise ValueError(problem)
        etcd = self.ha.dcs if self.ha is not None else None
        if isinstance(etcd, EtcdDcs) and self.tls_on and not etcd.https:
            raise ValueError(
                "ha.dcs.etcd: plain http:// endpoints with TLS on; use https:// "
                "(or tls: off, which doctor flags)"
            )
        ca = self.ca_file
        for member in members:
            member._api_ca = ca
        return self

    # tls_on, tls_dir, ca_file, cert_files and the API credentials' files: ClusterFiles,
    # computed alike for the quick commands' form of the config.

    @property
    def tls_settings(self) -> TlsConfig:
        return self.tls if isinstance(self.tls, TlsConfig) else TlsConfig()

    @property
    def console_sessions_file(self) -> Path:
        return self.console.sessions_file or self.api_token_file.with_name(
            "console-sessions.sqlite"
        )

    def node(self, name: str) -> NodeConfig:
        return find_node(self.nodes, name)

    def witness(self, name: str) -> WitnessConfig | None:
        return find_named(self.witnesses, name)

    @property
    def automatic(self) -> bool:
        """The agents fail over by themselves (the HA loop runs)."""
        return self.failover == "automatic" and self.ha is not None

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node_at(self, host: str | None, port: int | None) -> NodeConfig | None:
        """The node listening at host:port, as a standby's wal receiver reports its sender."""
        return node_listening_at(self.nodes, host, port)

    def pg_bin_for(self, node: NodeConfig) -> Path | None:
        return node.pg_bin or self.pg_bin

    @property
    def independent(self) -> bool:
        """Every node is its own cluster: several primaries are expected, not a split brain."""
        return self.topology == "independent"

    def lite(self) -> LiteConfig:
        """The same config in the form the quick commands read (pgherd.config_lite), for
        the functions they share with the rest of pgherd. Built anew on every call: a
        copy made with ``model_copy(update=…)`` must not inherit a stale one."""
        return config_lite.from_validated(self.model_dump(mode="json"), derived(self))


def _require_unique_values(what: str, values: list[str]) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"two entries share the {what} name")


def _require_unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"two nodes share the {what} {value}")
        seen.add(value)


def host_key(address: str) -> str:
    """Which machine an address is on, as far as one config can say: every loopback
    address (and ``localhost``) is this one; any other address is its own."""
    bare = address.strip("[]").lower()
    try:
        loopback = ipaddress.ip_address(bare).is_loopback
    except ValueError:
        loopback = bare == "localhost"
    return "loopback" if loopback else bare


def _member_host(member: NodeConfig | WitnessConfig) -> str:
    """A node's host is its PostgreSQL address's; a witness's its API address's."""
    return host_key(member.host if isinstance(member, NodeConfig) else member.api_host)


_Member = TypeVar("_Member", "NodeConfig", "NodeConfig | WitnessConfig")


def _require_unique_per_host(
    what: str, members: Sequence[_Member], value: Callable[[_Member], str]
) -> None:
    """``value`` differs between members on one host; members on different hosts may
    share it (the same data directory on every server)."""
    seen: dict[tuple[str, str], _Member] = {}
    for member in members:
        key = (_member_host(member), value(member))
        first = seen.setdefault(key, member)
        if first is not member:
            raise ValueError(
                f"two nodes share the {what} {key[1]} on one host "
                f"({first.name} and {member.name}; nodes on other hosts may share it)"
            )


def load(path: Path) -> ClusterConfig:
    return parse_bytes(config_lite.read_config_bytes(path), path)


def parse_bytes(data: bytes, path: Path) -> ClusterConfig:
    """A config file's bytes, validated (the source of the quick commands' cache too, so
    that both read a file the same way and fail on it with the same words).

    Validation must stay a function of the file's text alone: the quick commands keep its
    result, keyed by the text (pgherd.config_cache), so a check of the filesystem or the
    environment here would be skipped on their next run; such checks belong where the
    file is used."""
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read the config file {path}: it is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    return parse(raw, source=str(path))


def parse(raw: Any, source: str = "pgherd.yaml") -> ClusterConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return ClusterConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """The first validation error as ``where: what`` (one line)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "top level"
    message = first["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{where}: {message}{suffix}"


def dump(config: ClusterConfig) -> str:
    data = config.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False)


def derived(config: ClusterConfig) -> dict[str, Any]:
    """What the models compute from a validated config that the lite form holds as values
    (config_lite.from_validated; the quick commands' cache keeps it beside the file's
    validated form): the archive's repositories."""
    specs = config.archive.specs() if config.archive is not None else ()
    return {"archive_specs": [s.to_json() for s in specs]}


def fingerprint(config: ClusterConfig) -> str:
    """A short hash of the cluster part of the config: every agent should run with the same
    one (``cluster show`` names the hosts whose agents differ). Computed from the validated
    values, so comments, key order and defaults written out do not change it; ``console``
    (web console logins, not read by the agents) is left out. The quick commands compute
    it from the cached validated form the same way (config_lite.fingerprint_of)."""
    return config_lite.fingerprint_of(config.model_dump(mode="json"))


def read_token(config: ClusterConfig) -> str:
    """The agents' API bearer token: ``$PGHERD_API_TOKEN`` or the token file."""
    return config_lite.read_token_file(config.api_token_file)
