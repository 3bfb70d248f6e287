"""A configured node on this machine: its programs, OS user, data directory and settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pgherd.config_lite import DataNode, LiteConfig, LiteNode, Validated, as_lite
from pgherd.errors import ConfigError, PgherdError
from pgherd.pg import adopted, binaries, conf, conninfo, hba, osuser
from pgherd.pg.archive_commands import archive_settings, spool_of, write_spool
from pgherd.pg.binaries import PgBin
from pgherd.pg.conf import Setting
from pgherd.pg.instance import Instance
from pgherd.pg.osuser import OsUser

if TYPE_CHECKING:
    from pgherd.model.adopt import Original

# Settings every node gets, chosen for what later operations need: wal_log_hints for
# pg_rewind (checksums are on too), logical wal_level for publications, slots and senders
# with room for standbys, archivers and subscriptions, commit timestamps for conflict
# resolution, and WAL kept for a standby or rewind that falls behind.
ARCHIVED_WAL_KEEP_SIZE = "64MB"

log = logging.getLogger(__name__)

BASE_SETTINGS: dict[str, Setting] = {
    "password_encryption": "scram-sha-256",
    "wal_level": "logical",
    "max_wal_senders": 16,
    "max_replication_slots": 16,
    "hot_standby": True,
    "wal_log_hints": True,
    "wal_keep_size": "512MB",
    "track_commit_timestamp": True,
    "wal_receiver_status_interval": "1s",
    # A standby that stops answering (a partition between the primary and its standbys
    # only) is dropped after 5 s instead of 60: until then pg_stat_replication still shows
    # it streaming, so a synchronous primary's commits wait for it (the fault suite saw
    # commits held for the whole cut). Standbys reply every second (above).
    "wal_sender_timeout": "5s",
    # A standby tells its upstream which catalog rows its copies of logical slots still need
    # (model/failover_slots.py), and which rows its queries read.
    "hot_standby_feedback": True,
    # A standby whose upstream went away (a switchover, a restart) retries after this
    # long, instead of the default 5 s.
    "wal_retrieve_retry_interval": "1s",
    "logging_collector": False,
    "log_line_prefix": "%m [%p] %q%u@%d ",
}


# What pgherd.conf says about a standby's upstream: kept as written when the settings are
# rewritten for a reload (the node keeps its role and upstream).
ROLE_SETTINGS = ("primary_conninfo", "primary_slot_name")


@dataclass(eq=False)
class LocalNode:
    """A node of the config on this machine. An agent shares one with all its parts;
    :meth:`reconfigure` gives them all a reloaded config at once. ``config`` is held in
    its pydantic-free form (pgherd.config_lite), so that ``standby clone``, a quick
    command, can use it too; :meth:`open` and :meth:`reconfigure` take either form."""

    config: LiteConfig
    node: LiteNode
    pgbin: PgBin
    user: OsUser

    @classmethod
    def open(cls, config: Validated | LiteConfig, name: str) -> LocalNode:
        config = as_lite(config)
        node = config.node(name)
        return cls(
            config, node, binaries.find(config.pg_bin_for(node)), osuser.resolve(config.os_user)
        )

    @cached_property
    def instance(self) -> Instance:
        return Instance(
            data_dir=self.node.data_dir,
            pgbin=self.pgbin,
            user=self.user,
            port=self.node.port,
            socket_dir=self.node.socket_dir,
            log_file=self.node.server_log,
            superuser=self.config.superuser,
        )

    def settings(
        self, upstream: DataNode | None, original: Original | None = None
    ) -> dict[str, Setting]:
        """pgherd.conf for this node. Data pgherd adopted (``pgherd.adopted`` in the data
        directory, or ``original`` given) keep the operator's settings where replication
        allows (model/adopt.py); data pgherd made get all of BASE_SETTINGS."""
        node = self.node
        original = original or adopted.read(node.data_dir)
        # The archive serves standbys that fall behind and pg_rewind (--restore-target-wal),
        # so pg_wal need not hold much: PostgreSQL 15's pg_rewind copies every WAL file the
        # source keeps, whatever it needs.
        wal_keep = ARCHIVED_WAL_KEEP_SIZE if self.config.archive is not None else "512MB"
        values: dict[str, Setting]
        if original is not None:
            # Only for data pgherd adopted (pydantic; standby clone starts without it).
            from pgherd.model.adopt import adopted_settings

            values = dict(
                adopted_settings(
                    original,
                    node.host,
                    node.port,
                    str(node.socket_dir),
                    len(self.config.nodes),
                    wal_keep,
                )
            )
        else:
            values = {
                "listen_addresses": node.host,
                "port": node.port,
                "unix_socket_directories": str(node.socket_dir),
                "cluster_name": node.name,
                **BASE_SETTINGS,
                "wal_keep_size": wal_keep,
            }
        if upstream is not None:
            values["primary_conninfo"] = self.upstream_conninfo(upstream)
            values["primary_slot_name"] = node.name
        values.update(self.ssl_settings())
        if self.config.archive is not None:
            values.update(archive_settings(self.spool, self.config.archive.specs()))
        values.update(self.config.settings)
        return values

    def ssl_settings(self) -> dict[str, Setting]:
        """TLS with the node's certificate (``ssl = off`` only with the cluster's
        ``tls: off``); the CA too, so that clients' certificates can be checked."""
        if self.config.ca_file is None:
            return {"ssl": False}
        if not self.pgbin.supports_ssl:
            raise ConfigError(
                f"TLS is on but PostgreSQL {self.pgbin.version} in {self.pgbin.bindir} was "
                "built without OpenSSL",
                "use a build with SSL (every packaged one has it), or set tls: off",
            )
        cert, key = self.config.cert_files(self.node.name)
        return {
            "ssl": True,
            "ssl_cert_file": str(cert),
            "ssl_key_file": str(key),
            "ssl_ca_file": str(self.config.ca_file),
            "ssl_min_protocol_version": "TLSv1.2",
        }

    def settings_in_force(self) -> dict[str, Setting]:
        """pgherd.conf as the config wants it for the role the node has now: a primary's
        settings, plus what the file says a standby streams from. A standby whose upstream
        is a node of the config gets its ``primary_conninfo`` written again, so that it
        follows the cluster's TLS (``sslmode=verify-full``, or none with ``tls: off``);
        one that streams from elsewhere keeps the file's."""
        written = conf.read_include(self.node.data_dir)
        upstream = self.written_upstream(written.get("primary_conninfo"))
        values = self.settings(upstream)
        values.update({k: written[k] for k in ROLE_SETTINGS if k in written and k not in values})
        if "primary_slot_name" in written:
            values["primary_slot_name"] = written["primary_slot_name"]
        return values

    def written_upstream(self, primary_conninfo: str | None) -> LiteNode | None:
        """The node of the config that a ``primary_conninfo`` points at (None: none, or
        not a node of the config)."""
        # Imported here: psycopg and pydantic stay off the quick commands' path.
        from pgherd.pg.queries import upstream_of

        host, port = upstream_of(primary_conninfo or "")
        return self.config.node_at(host, port)

    def reconfigure(self, config: Validated | LiteConfig) -> None:
        """Run with a reloaded config. The caller (ha/reload.py) has checked that what
        makes this node — its name, addresses, directories, programs, OS user, roles — is
        unchanged, so the instance and the OS user stay as they are."""
        config = as_lite(config)
        self.node = config.node(self.node.name)
        self.config = config

    def upstream_conninfo(self, upstream: DataNode) -> str:
        return conninfo.keyword(
            upstream.host,
            upstream.port,
            self.config.replication_user,
            self.config.passfile,
            application_name=self.node.name,
            sslrootcert=self.config.ca_file,
        )

    def access_rules(self, only_own: bool | None = None) -> tuple[list[hba.HbaRule], list[str]]:
        """pgherd's pg_hba and pg_ident lines. For adopted data (``only_own``; by default:
        the data directory says so), TCP rules for pgherd's superuser alone, so that the
        operator's rules for their users, below pgherd's block, stay in force."""
        hosts = [n.host for n in self.config.nodes] + self.peer_hosts()
        if only_own is None:
            only_own = adopted.read(self.node.data_dir) is not None
        rules = hba.rules(
            self.config.superuser,
            self.config.replication_user,
            hosts,
            only_own=only_own,
            ssl=self.config.tls_on,
        )
        ident = hba.ident_lines(["root", self.user.name], self.config.superuser)
        return rules, ident

    def peer_hosts(self) -> list[str]:
        """The hosts of the clusters that meshes name (``peers:``): their apply workers read
        this node's slots as this cluster's replication role. A peer file that cannot be
        read is left out, and said."""
        if not self.config.peers:
            return []  # without peers, no pydantic: the quick clone writes access rules too
        from pgherd import config as config_mod  # lazy: start-up speed (cli/main.py)

        found: list[str] = []
        for path in self.config.peers:
            try:
                found += [n.host for n in config_mod.load(path).nodes]
            except PgherdError as exc:
                log.warning("peer %s left out of pg_hba.conf: %s", path, exc.one_line())
        return found

    @property
    def spool(self) -> Path:
        """The node's WAL spool: archive_command and the agent's pusher meet there."""
        return spool_of(self.node.home_dir)

    def write_spool(self) -> None:
        if self.config.archive is not None:
            write_spool(self.spool, self.config.archive.specs(), self.user)

    def write_config(self, upstream: DataNode | None) -> None:
        """Settings, access rules and the standby signal for this node's role."""
        self.write_spool()
        self.instance.write_settings(self.node.name, self.settings(upstream))
        self.instance.write_access(*self.access_rules())
        self.instance.set_standby(upstream is not None)

    def prepare_home(self) -> None:
        self.user.make_dir(self.node.home_dir)
        self.user.make_dir(self.node.socket_dir)
        self.write_spool()
