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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pgherd.errors import ConfigError, UnknownNode
from pgherd.model.json_values import boolean, integer, number, text
from pgherd.model.repository import RepositorySpec

CONFIG_ENV = "PGHERD_CONFIG"
TOKEN_ENV = "PGHERD_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_CONFIG = Path("pgherd.yaml")
SERVER_CONFIG = Path("/etc/pgherd/pgherd.yaml")  # where a server's agent finds it (docs/deploy.md)

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
    def agent_log(self) -> Path:
        return self.home_dir / "agent.log"

    @property
    def agent_pid_file(self) -> Path:
        return self.home_dir / "agent.pid"

    @property
    def api_url(self) -> str:
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"http://{host}:{self.api_port}"


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
    """The agents' API bearer token: ``$PGHERD_API_TOKEN`` or the token file."""
    env = os.environ.get(TOKEN_ENV)
    if env:
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


@dataclass(frozen=True)
class LiteWitness(AgentMember):
    """:class:`pgherd.config.WitnessConfig`."""

    name: str
    api_host: str
    api_port: int
    home: Path

    @property
    def home_dir(self) -> Path:
        return self.home


@dataclass(frozen=True)
class LiteSqliteDcs:
    sqlite: Path


@dataclass(frozen=True)
class LiteEtcdDcs:
    etcd: tuple[str, ...]


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
class LiteConfig:
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
    witnesses: tuple[LiteWitness, ...] = ()
    settings: Mapping[str, SettingValue] = field(default_factory=dict)
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
    return LiteConfig(
        cluster=text(data["cluster"]),
        topology=_choice(data["topology"], ("streaming", "independent")),
        os_user=text(data["os_user"]),
        pg_bin=_path_or_none(data["pg_bin"]),
        superuser=text(data["superuser"]),
        replication_user=text(data["replication_user"]),
        passfile=_path(data["passfile"]),
        api_token_file=_path(data["api_token_file"]),
        failover=_choice(data["failover"], ("manual", "automatic")),
        ha=None if ha is None else _ha(ha),
        archive=None if archive is None else _archive(archive),
        nodes=tuple(_node(n) for n in data["nodes"]),
        witnesses=tuple(_witness(w) for w in data["witnesses"]),
        settings=dict(_settings(data["settings"])),
        fingerprint=fingerprint_of(data),
    )


def _node(data: Mapping[str, Any]) -> LiteNode:
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
    )


def _witness(data: Mapping[str, Any]) -> LiteWitness:
    return LiteWitness(
        name=text(data["name"]),
        api_host=text(data["api_host"]),
        api_port=integer(data["api_port"]),
        home=_path(data["home"]),
    )


def _ha(data: Mapping[str, Any]) -> LiteHa:
    dcs = data["dcs"]
    store: LiteSqliteDcs | LiteEtcdDcs
    if "sqlite" in dcs:
        store = LiteSqliteDcs(_path(dcs["sqlite"]))
    else:
        store = LiteEtcdDcs(tuple(text(e) for e in dcs["etcd"]))
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
