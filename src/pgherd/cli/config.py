"""pgherd config check: validate pgherd.yaml and say what it describes."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt, JsonOpt
from pgherd.cli.output import console, print_json
from pgherd.config import ClusterConfig

app = typer.Typer(help="pgherd.yaml: check it and see what it describes.")


@app.command()
def check(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Validate pgherd.yaml and print what it describes: nodes, store, failover, archive,
    settings. An invalid file gets a one-line error naming the field (exit 1)."""
    path = config_mod.config_path(config_file)
    config = config_mod.load(path)
    summary = describe(config, path)
    if as_json:
        print_json(summary)
        return
    for line in lines(summary):
        console.print(line, soft_wrap=True, markup=False)


def describe(config: ClusterConfig, path: Path) -> dict[str, Any]:
    """What the file describes, as data (``--json``) that :func:`lines` prints."""
    ha = config.ha
    store = None
    if ha is not None:
        dcs = ha.dcs
        store = (
            f"sqlite {dcs.sqlite}"
            if isinstance(dcs, config_mod.SqliteDcs)
            else "etcd " + ",".join(dcs.etcd)
        )
    warnings = [w for w in (_secret_problem(config, p) for p in _secret_files(config)) if w]
    effects, found = _setting_effects(config)
    warnings += [
        f"settings: {name} is not a parameter of {found} (PostgreSQL would refuse its "
        "configuration)"
        for name, effect in effects.items()
        if effect == "unknown"
    ]
    return {
        "config": str(path.absolute()),
        "valid": True,
        "fingerprint": config_mod.fingerprint(config),
        "cluster": config.cluster,
        "topology": config.topology,
        "failover": config.failover,
        "store": store,
        "ha": None if ha is None else ha.model_dump(mode="json", exclude={"dcs"}),
        "os_user": config.os_user,
        "superuser": config.superuser,
        "replication_user": config.replication_user,
        "nodes": [
            {
                "name": n.name,
                "postgres": f"{n.host}:{n.port}",
                "api": n.api_url,
                "data_dir": str(n.data_dir),
                "home": str(n.home_dir),
                "pg_bin": str(config.pg_bin_for(n)) if config.pg_bin_for(n) else None,
                "nofailover": n.nofailover,
                "replicate_from": n.replicate_from,
            }
            for n in config.nodes
        ],
        "witnesses": [
            {"name": w.name, "api": w.api_url, "home": str(w.home)} for w in config.witnesses
        ],
        "archive": None if config.archive is None else config.archive.model_dump(mode="json"),
        "settings": dict(config.settings),
        # what a change of each takes, by the local PostgreSQL's parameter contexts
        "settings_effects": effects,
        "secrets": {"passfile": str(config.passfile), "api_token_file": str(config.api_token_file)},
        "warnings": warnings,
    }


def lines(summary: dict[str, Any]) -> list[str]:
    out = [f"{summary['config']}: valid (fingerprint {summary['fingerprint']})"]
    out.append(
        f"cluster {summary['cluster']} ({summary['topology']}), failover {summary['failover']}"
        + (f", store {summary['store']}" if summary["store"] else ", no coordination store")
    )
    ha = summary["ha"]
    if ha is not None:
        out.append(
            f"  ttl {ha['ttl']:g} s, loop_wait {ha['loop_wait']:g} s, retry_timeout "
            f"{ha['retry_timeout']:g} s, primary_start_timeout {ha['primary_start_timeout']:g} s"
            + (f", synchronous (quorum {ha['synchronous_quorum']})" if ha["synchronous"] else "")
            + (", failsafe" if ha["failsafe"] else "")
        )
    out.append(
        f"PostgreSQL runs as OS user {summary['os_user']}; superuser "
        f"{summary['superuser']}, replication role {summary['replication_user']}"
    )
    out.append(f"{len(summary['nodes'])} node(s):")
    for n in summary["nodes"]:
        tags = ["nofailover"] if n["nofailover"] else []
        if n["replicate_from"]:
            tags.append(f"replicates from {n['replicate_from']}")
        suffix = f" [{', '.join(tags)}]" if tags else ""
        out.append(
            f"  {n['name']}: PostgreSQL {n['postgres']}, agent {n['api']}, "
            f"data {n['data_dir']}{suffix}"
        )
    for w in summary["witnesses"]:
        out.append(f"  witness {w['name']}: agent {w['api']}, home {w['home']}")
    archive = summary["archive"]
    if archive is None:
        out.append("no WAL archive")
    else:
        keep = archive["cleanup_keep"]
        out.append(
            f"WAL archive {archive['path']}"
            + (f", the primary keeps {keep} backups" if keep else ", no scheduled cleanup")
        )
    settings, effects = summary["settings"], summary["settings_effects"]
    if settings:
        out.append(
            "settings: "
            + ", ".join(
                f"{k}={v}" + (f" ({effects[k]})" if k in effects else "")
                for k, v in settings.items()
            )
        )
    secrets = summary["secrets"]
    out.append(f"secrets: passfile {secrets['passfile']}, API token {secrets['api_token_file']}")
    out.extend(f"warning: {w}" for w in summary["warnings"])
    return out


def _setting_effects(config: ClusterConfig) -> tuple[dict[str, str], str]:
    """What changing each setting takes (reload, restart…), by the contexts of the
    PostgreSQL programs found on this host; nothing when there are none."""
    from pgherd.errors import PgherdError
    from pgherd.model import settings as settings_model
    from pgherd.pg import binaries

    try:
        pgbin = binaries.find(config.pg_bin)
        contexts = binaries.parameter_contexts(pgbin.bindir)
    except PgherdError:
        return {}, ""
    found = f"PostgreSQL {pgbin.version} ({pgbin.bindir})"
    return {k: str(settings_model.effect(k, contexts)) for k in config.settings}, found


def _secret_files(config: ClusterConfig) -> list[Path]:
    return [config.passfile, config.api_token_file]


def _secret_problem(config: ClusterConfig, path: Path) -> str | None:
    """A secret file that is missing, unreadable here, or readable by others."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist: create it with `pgherd secrets init` (or copy it here)"
    except OSError as exc:
        return f"cannot inspect {path}: {exc.strerror}"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return f"{path} is mode {mode:o}: make it 0600 (chmod 600 {path})"
    if not os.access(path, os.R_OK):
        return f"{path} is not readable by this user (owner uid {st.st_uid})"
    return None
