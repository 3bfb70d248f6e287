"""pgherd.yaml as the quick commands read it: frozen dataclasses, no pydantic.

The commands people and PostgreSQL run most often (``cluster show``, ``connstr``,
``wal push|fetch`` …) must start in a few hundredths of a second, and importing pydantic
alone takes longer than that. They get their config from :mod:`pgherd.config_cache`,
which keeps the *validated* form of each config file (validated by the pydantic models
of :mod:`pgherd.config`, the one definition of a valid file) and builds these objects
from it. Each class mirrors fields of its model in ``pgherd.config`` under the same names,
types and meaning (``tests/unit/test_config_lite.py`` holds them equal); a field the
quick commands do not read (the console's logins, the history settings) is left out.

What both forms compute from their fields (a node's files, the lookups by name and by
address) is written once, here, and used by both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pgherd.errors import ConfigError, InvalidInput, UnknownNode
from pgherd.model.json_values import boolean, integer, number, text
from pgherd.model.repository import RepositorySpec

CONFIG_ENV = "PGHERD_CONFIG"
TOKEN_ENV = "PGHERD_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_CONFIG = Path("pgherd.yaml")
SERVER_CONFIG = Path("/etc/pgherd/pgherd.yaml")  # where a server's agent finds it (docs/deploy.md)

# Node names become replication slot and application names: slot names allow only
# lower-case letters, digits and underscores, so names are held to that from the start.
NODE_NAME = r"^[a-z][a-z0-9_]{0,62}$"

SettingValue = str | int | float | bool
Topology = Literal["streaming", "independent"]
Failover = Literal["manual", "automatic"]


# ---- what the validated and the lite forms share ----------------------------------------


class AgentMember:
    """A member with an agent, data node or witness, in either form of the config: its
    fields' names and types (declared here for type checkers; each form defines them) and
    what follows from them. A function that reads only these takes either form."""

    if TYPE_CHECKING:
        name: str
        api_host: str
        api_port: int

        @property
        def home_dir(self) -> Path: ...

        @property
        def api_ca(self) -> Path | None:
            """The CA that signs this member's API certificate: the cluster's (None: plain
            HTTP, ``tls: off``). Set from the cluster's ``tls`` when the config is read."""

    @property
    def agent_log(self) -> Path:
        return self.home_dir / "agent.log"

    @property
    def agent_pid_file(self) -> Path:
        return self.home_dir / "agent.pid"

    @property
    def api_url(self) -> str:
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        scheme = "https" if self.api_ca is not None else "http"
        return f"{scheme}://{host}:{self.api_port}"


class DataNode(AgentMember):
    """A data node (a PostgreSQL server and its agent) in either form of the config.
    ``home`` defaults to the data directory's parent."""

    if TYPE_CHECKING:
        host: str
        port: int
        data_dir: Path
        home: Path | None
        pg_bin: Path | None
        nofailover: bool
        replicate_from: str | None

    @property
    def home_dir(self) -> Path:
        return self.home or self.data_dir.parent

    @property
    def socket_dir(self) -> Path:
        return self.home_dir / "run"

    @property
    def server_log(self) -> Path:
        return self.home_dir / "postgresql.log"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Listening(_Named, Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


NamedT = TypeVar("NamedT", bound=_Named)
ListeningT = TypeVar("ListeningT", bound=_Listening)


def find_node(nodes: Sequence[NamedT], name: str) -> NamedT:
    """The node called ``name``; :class:`UnknownNode` (listing the known ones) if none is."""
    for node in nodes:
        if node.name == name:
            return node
    raise UnknownNode(name, [n.name for n in nodes])


def find_named(members: Iterable[NamedT], name: str) -> NamedT | None:
    return next((m for m in members if m.name == name), None)


def node_listening_at(
    nodes: Sequence[ListeningT], host: str | None, port: int | None
) -> ListeningT | None:
    """The node listening at host:port, as a standby's wal receiver reports its sender."""
    for node in nodes:
        if node.port == port and node.host == host:
            return node
    return None


class _TlsSection(Protocol):
    @property
    def dir(self) -> Path | None: ...

    @property
    def client_certs(self) -> bool: ...


def tls_dir_of(tls: _TlsSection | bool, passfile: Path) -> Path:
    """Where the CA and the members' certificates are: ``tls.dir``, else ``tls/`` beside
    the passfile (with TLS off too: where ``secrets init`` would put them)."""
    chosen = None if isinstance(tls, bool) else tls.dir
    return chosen or passfile.parent / "tls"


def ca_file_of(tls: _TlsSection | bool, passfile: Path) -> Path | None:
    """The cluster CA every client verifies servers against; None with ``tls: off``."""
    return None if tls is False else tls_dir_of(tls, passfile) / "ca.crt"


class ClusterFiles:
    """The files a cluster's config names by convention rather than by a field (the CA and
    certificates, the API credentials beside the operator's token file: docs/security.md),
    in either form of the config."""

    if TYPE_CHECKING:
        passfile: Path
        api_token_file: Path

        @property
        def tls(self) -> _TlsSection | bool: ...

    @property
    def tls_on(self) -> bool:
        """TLS between every part: on unless ``tls: off`` (YAML's false)."""
        return self.tls is not False

    @property
    def tls_dir(self) -> Path:
        return tls_dir_of(self.tls, self.passfile)

    @property
    def ca_file(self) -> Path | None:
        return ca_file_of(self.tls, self.passfile)

    def cert_files(self, member: str) -> tuple[Path, Path]:
        """(certificate, key) of a member (a node, a witness, an etcd member)."""
        return self.tls_dir / f"{member}.crt", self.tls_dir / f"{member}.key"

    # The agents' API credentials beside the operator's token file: a viewer's token,
    # each node's own token for its calls to other agents, and the grants file (digests
    # and roles) the agents check every credential against.
    @property
    def viewer_token_file(self) -> Path:
        return self.api_token_file.with_name("api-viewer-token")

    @property
    def grants_file(self) -> Path:
        return self.api_token_file.with_name("api-grants.json")

    def node_token_file(self, member: str) -> Path:
        return self.api_token_file.parent / "node-tokens" / member


def check_node_name(name: str, option: str = "--node") -> str:
    """A new node's name, checked before it becomes a directory, a slot or a config key
    (as the config's validation would: without pydantic, for the quick commands)."""
    if not re.fullmatch(NODE_NAME, name):
        raise InvalidInput(
            f"{option} {name[:80]!r} is not a valid node name",
            "use 1 to 63 lower-case letters, digits and _, starting with a letter",
        )
    return name


def config_path(explicit: Path | None) -> Path:
    """``-c FILE``, else ``$PGHERD_CONFIG``, else ``./pgherd.yaml`` if it exists, else
    ``/etc/pgherd/pgherd.yaml`` if it exists (a server), else ``./pgherd.yaml`` (whose
    absence :func:`read_config_bytes` reports, naming both places it looked)."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    if not DEFAULT_CONFIG.exists() and SERVER_CONFIG.exists():
        return SERVER_CONFIG
    return DEFAULT_CONFIG


def read_config_bytes(path: Path) -> bytes:
    """The config file's bytes, or a one-line :class:`ConfigError` saying why not."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        where = f"{path} or {SERVER_CONFIG}" if path == DEFAULT_CONFIG else str(path)
        raise ConfigError(
            f"no config file at {where}",
            f"pass -c FILE, set {CONFIG_ENV}, or create one with `pgherd lab up --dir DIR`",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None


def fingerprint_of(validated: Mapping[str, Any]) -> str:
    """A short hash of a validated config (``ClusterConfig.model_dump(mode="json")``)
    without its ``console`` part: what every agent of a cluster should report
    (pgherd.config.fingerprint, which the agents use, calls this too)."""
    data = {k: v for k, v in validated.items() if k != "console"}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def read_token_file(path: Path) -> str:
    """The agents' API bearer token (the operator's): ``$PGHERD_API_TOKEN`` or the token
    file.

    A variable that is set but blank is an error, not "no token": an agent started with
    an empty token would let ``Authorization: Bearer`` with nothing after it act.
    """
    env = os.environ.get(TOKEN_ENV)
    if env is not None:
        if not env.strip():
            raise ConfigError(
                f"{TOKEN_ENV} is set but blank",
                f"unset it to use {path}, or set it to the API token",
            )
        return env.strip()
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the API token file {path}: {exc.strerror}",
            f"run as a user that can read it, or set {TOKEN_ENV}",
        ) from None
    if not token:
        raise ConfigError(f"the API token file {path} is empty")
    return token


# ---- the lite form ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiteNode(DataNode):
    """:class:`pgherd.config.NodeConfig`."""

    name: str
    host: str
    port: int
    api_host: str
    api_port: int
    data_dir: Path
    home: Path | None
    pg_bin: Path | None
    nofailover: bool
    noloadbalance: bool
    nosync: bool
    replicate_from: str | None
    watchdog: Path | None
    api_ca: Path | None  # the cluster's CA file (ClusterFiles.ca_file), not a field of it


@dataclass(frozen=True)
class LiteSlot:
    """:class:`pgherd.config.SlotConfig`: a permanent slot (``slots:``)."""

    type: str
    database: str | None
    plugin: str


@dataclass(frozen=True)
class LiteWitness(AgentMember):
    """:class:`pgherd.config.WitnessConfig`."""

    name: str
    api_host: str
    api_port: int
    home: Path
    api_ca: Path | None  # as LiteNode's

    @property
    def home_dir(self) -> Path:
        return self.home


@dataclass(frozen=True)
class LiteSqliteDcs:
    """:class:`pgherd.config.SqliteDcs`."""

    sqlite: Path


@dataclass(frozen=True)
class LiteEtcdDcs:
    """:class:`pgherd.config.EtcdDcs`."""

    etcd: tuple[str, ...]
    ca: Path | None
    cert: Path | None
    key: Path | None
    username: str | None
    password_file: Path | None

    @property
    def https(self) -> bool:
        return all(url.startswith("https://") for url in self.etcd)


@dataclass(frozen=True)
class LiteTls:
    """:class:`pgherd.config.TlsConfig`."""

    dir: Path | None
    client_certs: bool


@dataclass(frozen=True)
class LiteApi:
    """:class:`pgherd.config.ApiConfig`."""

    auth_reads: bool


@dataclass(frozen=True)
class LiteHa:
    """:class:`pgherd.config.HaConfig`."""

    dcs: LiteSqliteDcs | LiteEtcdDcs
    ttl: float
    loop_wait: float
    retry_timeout: float
    maximum_lag: int
    primary_start_timeout: float
    synchronous: bool
    synchronous_quorum: int
    failsafe: bool
    agent_restart_grace: float
    watchdog: Path | None


@dataclass(frozen=True)
class LiteArchive:
    """:class:`pgherd.config.ArchiveConfig`; its repositories as ``specs()`` gives them,
    computed when the file was validated."""

    path: Path | None
    repo: str | None
    endpoint: str | None
    region: str
    credentials_file: Path | None
    encryption_key_file: Path | None
    cleanup_keep: int | None
    cleanup_interval: float
    push_workers: int
    queue_max: int
    repository_specs: tuple[RepositorySpec, ...] = ()

    def specs(self) -> tuple[RepositorySpec, ...]:
        """Every repository, the one described in place first ("main")."""
        return self.repository_specs


@dataclass(frozen=True)
class LiteBackup:
    """:class:`pgherd.config.BackupConfig` as ``backup create`` and ``restore`` read it
    (the schedule is the agents' business: not mirrored)."""

    from_standby: bool
    workers: int


@dataclass(frozen=True)
class LiteConfig(ClusterFiles):
    """:class:`pgherd.config.ClusterConfig`, for the quick commands."""

    cluster: str
    topology: Topology
    os_user: str
    pg_bin: Path | None
    superuser: str
    replication_user: str
    passfile: Path
    api_token_file: Path
    failover: Failover
    ha: LiteHa | None
    archive: LiteArchive | None
    nodes: tuple[LiteNode, ...]
    api: LiteApi
    tls: LiteTls | bool
    backup: LiteBackup
    witnesses: tuple[LiteWitness, ...] = ()
    settings: Mapping[str, SettingValue] = field(default_factory=dict)
    slots: Mapping[str, LiteSlot] = field(default_factory=dict)
    peers: tuple[Path, ...] = ()  # other clusters' pgherd.yaml (meshes)
    # config.fingerprint of the validated file (computed from it, not a field of it)
    fingerprint: str = ""

    def node(self, name: str) -> LiteNode:
        return find_node(self.nodes, name)

    def witness(self, name: str) -> LiteWitness | None:
        return find_named(self.witnesses, name)

    @property
    def automatic(self) -> bool:
        """The agents fail over by themselves (the HA loop runs)."""
        return self.failover == "automatic" and self.ha is not None

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node_at(self, host: str | None, port: int | None) -> LiteNode | None:
        return node_listening_at(self.nodes, host, port)

    def pg_bin_for(self, node: LiteNode) -> Path | None:
        return node.pg_bin or self.pg_bin

    @property
    def independent(self) -> bool:
        """Every node is its own cluster: several primaries are expected, not a split brain."""
        return self.topology == "independent"

    @property
    def tls_settings(self) -> LiteTls:
        return self.tls if isinstance(self.tls, LiteTls) else LiteTls(None, False)

    def read_token(self) -> str:
        return read_token_file(self.api_token_file)


class Validated(Protocol):
    """pgherd.config's ClusterConfig, as far as this module needs to know it."""

    def lite(self) -> LiteConfig: ...


def as_lite(config: Validated | LiteConfig) -> LiteConfig:
    """The lite form of either form (functions the quick commands share with the rest of
    pgherd accept both)."""
    return config if isinstance(config, LiteConfig) else config.lite()


# ---- from the validated form ------------------------------------------------------------


def from_validated(data: Mapping[str, Any], derived: Mapping[str, Any]) -> LiteConfig:
    """The lite config from ``ClusterConfig.model_dump(mode="json")`` of a validated file
    and what pgherd.config derived from it (``derived``: pgherd.config.derived; a
    malformed mapping raises KeyError, TypeError or ValueError: the cache treats that as a
    miss)."""
    ha = data["ha"]
    archive = data["archive"]
    if archive is not None:
        archive = dict(archive) | {"specs": derived["archive_specs"]}
    tls = _tls(data["tls"])
    passfile = _path(data["passfile"])
    ca = ca_file_of(tls, passfile)
    return LiteConfig(
        cluster=text(data["cluster"]),
        topology=_choice(data["topology"], ("streaming", "independent")),
        os_user=text(data["os_user"]),
        pg_bin=_path_or_none(data["pg_bin"]),
        superuser=text(data["superuser"]),
        replication_user=text(data["replication_user"]),
        passfile=passfile,
        api_token_file=_path(data["api_token_file"]),
        failover=_choice(data["failover"], ("manual", "automatic")),
        ha=None if ha is None else _ha(ha),
        archive=None if archive is None else _archive(archive),
        nodes=tuple(_node(n, ca) for n in data["nodes"]),
        api=LiteApi(auth_reads=boolean(data["api"]["auth_reads"])),
        tls=tls,
        backup=LiteBackup(
            from_standby=boolean(data["backup"]["from_standby"]),
            workers=integer(data["backup"]["workers"]),
        ),
        witnesses=tuple(_witness(w, ca) for w in data["witnesses"]),
        settings=dict(_settings(data["settings"])),
        slots={text(k): _slot(v) for k, v in data["slots"].items()},
        peers=tuple(_path(p) for p in data.get("peers", ())),
        fingerprint=fingerprint_of(data),
    )


def _slot(data: Mapping[str, Any]) -> LiteSlot:
    database = data["database"]
    return LiteSlot(
        type=_choice(data["type"], ("physical", "logical")),
        database=None if database is None else text(database),
        plugin=text(data["plugin"]),
    )


def _tls(data: object) -> LiteTls | bool:
    if isinstance(data, bool):
        return data
    if not isinstance(data, Mapping):
        raise TypeError(f"tls: {data!r}")
    return LiteTls(dir=_path_or_none(data["dir"]), client_certs=boolean(data["client_certs"]))


def _node(data: Mapping[str, Any], api_ca: Path | None) -> LiteNode:
    return LiteNode(
        name=text(data["name"]),
        host=text(data["host"]),
        port=integer(data["port"]),
        api_host=text(data["api_host"]),
        api_port=integer(data["api_port"]),
        data_dir=_path(data["data_dir"]),
        home=_path_or_none(data["home"]),
        pg_bin=_path_or_none(data["pg_bin"]),
        nofailover=boolean(data["nofailover"]),
        noloadbalance=boolean(data["noloadbalance"]),
        nosync=boolean(data["nosync"]),
        replicate_from=None if data["replicate_from"] is None else text(data["replicate_from"]),
        watchdog=_path_or_none(data["watchdog"]),
        api_ca=api_ca,
    )


def _witness(data: Mapping[str, Any], api_ca: Path | None) -> LiteWitness:
    return LiteWitness(
        name=text(data["name"]),
        api_host=text(data["api_host"]),
        api_port=integer(data["api_port"]),
        home=_path(data["home"]),
        api_ca=api_ca,
    )


def _ha(data: Mapping[str, Any]) -> LiteHa:
    dcs = data["dcs"]
    store: LiteSqliteDcs | LiteEtcdDcs
    if "sqlite" in dcs:
        store = LiteSqliteDcs(_path(dcs["sqlite"]))
    else:
        store = LiteEtcdDcs(
            etcd=tuple(text(e) for e in dcs["etcd"]),
            ca=_path_or_none(dcs["ca"]),
            cert=_path_or_none(dcs["cert"]),
            key=_path_or_none(dcs["key"]),
            username=None if dcs["username"] is None else text(dcs["username"]),
            password_file=_path_or_none(dcs["password_file"]),
        )
    return LiteHa(
        dcs=store,
        ttl=number(data["ttl"]),
        loop_wait=number(data["loop_wait"]),
        retry_timeout=number(data["retry_timeout"]),
        maximum_lag=integer(data["maximum_lag"]),
        primary_start_timeout=number(data["primary_start_timeout"]),
        synchronous=boolean(data["synchronous"]),
        synchronous_quorum=integer(data["synchronous_quorum"]),
        failsafe=boolean(data["failsafe"]),
        agent_restart_grace=number(data["agent_restart_grace"]),
        watchdog=_path_or_none(data["watchdog"]),
    )


def _archive(data: Mapping[str, Any]) -> LiteArchive:
    keep = data["cleanup_keep"]
    return LiteArchive(
        path=_path_or_none(data["path"]),
        repo=None if data["repo"] is None else text(data["repo"]),
        endpoint=None if data["endpoint"] is None else text(data["endpoint"]),
        region=text(data["region"]),
        credentials_file=_path_or_none(data["credentials_file"]),
        encryption_key_file=_path_or_none(data["encryption_key_file"]),
        cleanup_keep=None if keep is None else integer(keep),
        cleanup_interval=number(data["cleanup_interval"]),
        push_workers=integer(data["push_workers"]),
        queue_max=integer(data["queue_max"]),
        repository_specs=tuple(RepositorySpec.from_json(dict(s)) for s in data["specs"]),
    )


def _settings(data: Mapping[str, Any]) -> Iterable[tuple[str, SettingValue]]:
    for key, value in data.items():
        if not isinstance(value, str | int | float | bool):
            raise TypeError(f"settings.{key}: {value!r}")
        yield text(key), value


def _path(value: object) -> Path:
    return Path(text(value))


def _path_or_none(value: object) -> Path | None:
    return None if value is None else _path(value)


_C = TypeVar("_C", bound=str)


def _choice(value: object, choices: tuple[_C, ...]) -> _C:
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"expected one of {choices}, got {value!r}")
