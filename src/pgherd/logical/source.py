"""Where a subscription reads from: a node of the config, or a libpq URI of another
cluster. Either way the connection string names a passfile and never holds a password,
because PostgreSQL stores it in pg_subscription, readable to anyone who can read the
catalog's backups and visible to superusers in clear."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pgherd.config import ClusterConfig
from pgherd.errors import InvalidInput
from pgherd.model.names import split_outside_quotes
from pgherd.model.subscription import SubscriptionSpec
from pgherd.pg import conninfo

CONNECT_TIMEOUT = 10  # libpq waits forever by default; a subscription should not


def for_node(config: ClusterConfig, name: str, dbname: str) -> str:
    """The conninfo of node ``name`` as the replication role, with the cluster's passfile."""
    node = config.node(name)
    return with_timeout(
        conninfo.keyword(
            node.host,
            node.port,
            config.replication_user,
            config.passfile,
            dbname=dbname,
            sslrootcert=config.ca_file,
        )
    )


def with_timeout(text: str) -> str:
    return f"{text} connect_timeout={CONNECT_TIMEOUT}"


def from_uri(text: str, default_passfile: Path | None) -> str:
    """A URI or keyword/value conninfo given by the user, checked: no password in it; a
    passfile added when it names none (``--passfile``, else the cluster's)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(text)
    except psycopg.ProgrammingError as exc:
        raise InvalidInput(
            f"--from is neither a node of the config nor a valid libpq URI ({exc})",
            "give a node name or a URI such as postgresql://replicator@host:5432/db",
        ) from None
    if params.get("password"):
        raise InvalidInput(
            "the source URI holds a password, which the subscription would store in clear "
            "text in pg_subscription",
            "remove it and put it in a passfile (host:port:db:user:password, mode 0600, "
            "owned by the subscriber's OS user); pass --passfile PATH",
        )
    if not params.get("passfile") and default_passfile is not None:
        params["passfile"] = str(default_passfile)
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def resolve(
    config: ClusterConfig, source: str, dbname: str, passfile: Path | None = None
) -> tuple[str, str | None]:
    """(conninfo, node name or None) for ``--from SOURCE``."""
    if source in config.node_names:
        if passfile is not None:
            raise InvalidInput(
                "--passfile applies to a URI source", "a node of the config uses its passfile"
            )
        return for_node(config, source, dbname), source
    if "://" not in source and "=" not in source:
        raise InvalidInput(
            f"--from {source!r} is neither a node of the config nor a libpq URI",
            f"use one of {', '.join(config.node_names)}, or postgresql://user@host:port/db",
        )
    return from_uri(source, passfile or config.passfile), None


def subscription_spec(
    config: ClusterConfig,
    node: str,
    name: str,
    source: str,
    publications: list[str],
    *,
    copy_data: bool = True,
    sync_schema: bool = False,
    enabled: bool = True,
    origin: str | None = None,
    dbname: str = "postgres",
    source_dbname: str | None = None,
    passfile: Path | None = None,
    forward: bool = False,
) -> SubscriptionSpec:
    """``subscription create``'s request, checked as the CLI and the console both check
    it (the subscriber's agent checks the rest: names, versions, the publications).
    ``forward``: take what the publisher received from elsewhere too (``origin = any``)."""
    if origin not in (None, "any", "none"):
        raise InvalidInput(f"--origin {origin!r} is not any or none", "use --origin none or any")
    if forward and origin == "none":
        raise InvalidInput(
            "--forward takes the publisher's received changes, --origin none leaves them out",
            "give one of them",
        )
    if forward:
        origin = "any"
    config.node(node)
    text, source_node = resolve(config, source, source_dbname or dbname, passfile)
    if source_node == node:
        raise InvalidInput("--from names the subscribing node itself", "subscribe to another node")
    return SubscriptionSpec(
        name=name,
        dbname=dbname,
        conninfo=text,
        publications=tuple(
            p.strip() for item in publications for p in split_outside_quotes(item, ",") if p.strip()
        ),
        copy_data=copy_data,
        sync_schema="tables" if sync_schema else "none",
        enabled=enabled,
        origin=origin,  # checked above
    )
