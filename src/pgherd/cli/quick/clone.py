"""``pgherd standby clone``: a new standby copied from a running upstream with
pg_basebackup (WAL streamed, its own slot), with a progress bar on a terminal.

A quick command: a clone is timed against a bare pg_basebackup (bench/clone.py), and
Python's start-up with Typer and pydantic was most of the difference. pydantic is
imported only to add a node that the config does not list yet (the new file is validated
before anything is copied, and remembered by the config cache).
"""

from __future__ import annotations

from pathlib import Path

from pgherd import config_cache
from pgherd.cli.output import RichReporter, print_json
from pgherd.cli.text import Printer
from pgherd.clients.agent import AgentClient, read_as_viewer
from pgherd.config_lite import LiteConfig, check_node_name, config_path
from pgherd.errors import InvalidInput, UnknownNode
from pgherd.model.readable import human_bytes, human_seconds
from pgherd.physical import clone as clone_mod


def run(
    upstream: str,
    node: str,
    data_dir: Path | None,
    force: bool,
    port: int | None,
    api_port: int | None,
    host: str,
    config_file: Path | None,
    as_json: bool,
) -> int:
    path = config_path(config_file)
    config = with_node(config_cache.load(path), path, node, data_dir, port, api_port, host)
    read_as_viewer(config)  # the upstream's status is a read
    upstream_status = AgentClient(config.node(upstream)).lite_status()
    with RichReporter().progress(f"clone {node} from {upstream}") as on_progress:
        result = clone_mod.clone(config, node, upstream_status, force, on_progress)
    if as_json:
        print_json(result)
        return 0
    out = Printer()
    out.line(
        f"cloned {node} from {upstream}: {human_bytes(result.bytes_copied)} in "
        f"{human_seconds(result.seconds)}; slot {result.slot!r} "
        f"{'created' if result.slot_created else 'reused'} on {upstream}"
    )
    out.line(f"start it with: pgherd agent run --node {node} -c {path}")
    return 0


def with_node(
    config: LiteConfig,
    path: Path,
    name: str,
    data_dir: Path | None,
    port: int | None,
    api_port: int | None,
    host: str,
) -> LiteConfig:
    """The config, with ``name`` added to it (and saved) when it is not listed yet."""
    try:
        existing = config.node(name)
    except UnknownNode:
        existing = None
    if existing is not None:
        if data_dir is not None and data_dir.absolute() != existing.data_dir:
            raise InvalidInput(
                f"{name}'s data_dir in {path} is {existing.data_dir}, not {data_dir}",
                "omit --data-dir, or change data_dir in the config",
            )
        return config
    check_node_name(name)
    if data_dir is None or port is None or api_port is None:
        raise InvalidInput(
            f"{name} is not in {path}",
            "add it there, or pass --data-dir, --port and --api-port to add it",
        )
    # pydantic: a new node makes a new config, validated before anything is copied.
    from pgherd import config as config_mod
    from pgherd.pg import osuser

    validated = config_mod.load(path)
    entry = {
        "name": name,
        "host": host,
        "port": port,
        "api_host": host,
        "api_port": api_port,
        "data_dir": str(data_dir.absolute()),
    }
    dumped = validated.model_dump(mode="json")
    # Validated with the whole config: a bad port or path is a one-line ConfigError.
    updated = config_mod.parse(dumped | {"nodes": [*dumped["nodes"], entry]}, source=str(path))
    text = config_mod.dump(updated)
    osuser.resolve(config.os_user).write_file(path, text)
    config_cache.remember(
        text.encode(), updated.model_dump(mode="json"), config_mod.derived(updated)
    )
    return updated.lite()
