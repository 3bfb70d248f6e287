"""pgherd agent run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt, JsonOpt

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The per-node daemon: owns its PostgreSQL, serves the HTTP API.")


@app.command()
def run(
    node: Annotated[str, typer.Option("--node", help="this node's name in pgherd.yaml")],
    config_file: ConfigOpt = None,
) -> None:
    """Run the agent of NODE in the foreground (logs to stderr)."""
    from pgherd.ha import agent as agent_mod  # FastAPI and uvicorn: only the agent needs them

    agent_mod.run(config_mod.config_path(config_file), node)


# An IPv4 or IPv6 address or a host name: what HAProxy's bind line takes before the port.
_BIND = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|[0-9A-Fa-f:.]{2,45})$")


@app.command()
def unit(
    node: Annotated[str, typer.Option("--node", help="the node (or witness) the unit runs")],
    exec_path: Annotated[
        Path | None,
        typer.Option(
            "--exec", help="the pgherd program to run (default: the one running this command)"
        ),
    ] = None,
    writable: Annotated[
        list[Path] | None,
        typer.Option("--writable", help="another directory the agent or PostgreSQL writes"),
    ] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Print a systemd unit that runs NODE's agent as the OS user that owns the data
    (User=postgres): Restart=always, KillMode=process (restarting the agent never restarts
    PostgreSQL), ExecReload sending SIGHUP (re-read pgherd.yaml), and hardening that
    PostgreSQL lives with. Install it as /etc/systemd/system/pgherd@NODE.service."""
    import grp
    import pwd

    from pgherd.cli.options import load_config
    from pgherd.errors import InvalidInput
    from pgherd.model import systemd_unit
    from pgherd.pg.archive_commands import pgherd_program

    path = config_mod.config_path(config_file).absolute()
    config = load_config(config_file)
    try:
        entry = pwd.getpwnam(config.os_user)
    except KeyError:
        raise InvalidInput(
            f"OS user {config.os_user!r} (os_user in pgherd.yaml) does not exist on this host",
            "install PostgreSQL (it creates `postgres`) or set os_user",
        ) from None
    program = [str(exec_path.absolute())] if exec_path else pgherd_program()
    argv = (*program, "agent", "run", "--node", node, "--config", str(path))
    extra = tuple(str(p.absolute()) for p in writable or ())
    witness = config.witness(node)
    readable = [str(Path(program[0]).parent), str(path.parent)]
    if witness is not None:
        spec = systemd_unit.UnitSpec(
            node=node,
            cluster=config.cluster,
            exec_start=argv,
            user=entry.pw_name,
            group=grp.getgrgid(entry.pw_gid).gr_name,
            writable=(str(witness.home), *extra),
            readable=tuple(readable),
            witness=True,
        )
    else:
        target = config.node(node)
        home, data = target.home_dir, target.data_dir
        mine = [str(home)] + ([] if data.is_relative_to(home) else [str(data)])
        optional = [str(config.archive.path)] if config.archive is not None else []
        if config.ha is not None and isinstance(config.ha.dcs, config_mod.SqliteDcs):
            optional.append(str(config.ha.dcs.sqlite.parent))
        pg_bin = config.pg_bin_for(target)
        readable += [str(config.passfile), str(config.api_token_file)]
        readable += [str(pg_bin)] if pg_bin else []
        spec = systemd_unit.UnitSpec(
            node=node,
            cluster=config.cluster,
            exec_start=argv,
            user=entry.pw_name,
            group=grp.getgrgid(entry.pw_gid).gr_name,
            writable=(*mine, *extra),
            optional_writable=tuple(optional),
            readable=tuple(readable),
        )
    typer.echo(systemd_unit.render(spec), nl=False)


@app.command()
def reload(
    node: Annotated[
        str | None, typer.Option("--node", help="only this node's agent (default: every node's)")
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make agents read pgherd.yaml again, as SIGHUP does (systemctl reload): settings reach
    PostgreSQL (restart-only ones show as pending restart), member changes apply; what
    needs an agent restart is listed. Each agent reads the file on its own host. Exits 1
    when an agent refused the file (nothing changed there), 3 when one did not answer."""
    from pgherd.cli.options import load_config
    from pgherd.cli.output import EXIT_DEGRADED, EXIT_ERROR, console, print_json
    from pgherd.clients.agent import AgentClient, fan_out
    from pgherd.config import NodeConfig
    from pgherd.errors import AgentUnreachable, PgherdError
    from pgherd.model.reload import ReloadReport

    config = load_config(config_file)
    token = config_mod.read_token(config)
    nodes = [config.node(node)] if node is not None else list(config.nodes)

    def one(target: NodeConfig) -> ReloadReport | PgherdError:
        try:
            return AgentClient(target, token).reload()
        except PgherdError as exc:
            return exc

    results = fan_out(nodes, one)
    if as_json:
        print_json(
            [
                {
                    "node": n.name,
                    "ok": isinstance(r, ReloadReport),
                    "report": r.model_dump(mode="json") if isinstance(r, ReloadReport) else None,
                    "error": None if isinstance(r, ReloadReport) else r.one_line(),
                }
                for n, r in zip(nodes, results, strict=True)
            ]
        )
    else:
        for n, r in zip(nodes, results, strict=True):
            if isinstance(r, ReloadReport):
                for line in r.lines():
                    console.print(line, soft_wrap=True, markup=False)
            else:
                console.print(f"{n.name}: {r.one_line()}", soft_wrap=True, markup=False)
    failed = [r for r in results if not isinstance(r, ReloadReport)]
    if any(not isinstance(r, AgentUnreachable) for r in failed):
        raise typer.Exit(EXIT_ERROR)
    if failed:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def haproxy(
    bind: Annotated[str, typer.Option("--bind", help="the address HAProxy listens on")] = "*",
    primary_port: Annotated[
        int, typer.Option("--primary-port", min=1, max=65535, help="the port for writes")
    ] = 5000,
    replica_port: Annotated[
        int, typer.Option("--replica-port", min=1, max=65535, help="the port for reads")
    ] = 5001,
    config_file: ConfigOpt = None,
) -> None:
    """Print an HAProxy configuration for this cluster: writes go to the primary that holds
    the leader lease, reads to streaming standbys, both judged by the agents' checks."""
    from pgherd.cli.options import load_config
    from pgherd.errors import InvalidInput
    from pgherd.model import haproxy as haproxy_model

    if bind != "*" and not _BIND.match(bind):
        raise InvalidInput(
            f"--bind {bind[:80]!r} is not an address",
            "give an IP address or a host name (or * for every address)",
        )
    if primary_port == replica_port:
        raise InvalidInput(
            f"--primary-port and --replica-port are both {primary_port}",
            "give reads and writes two different ports",
        )
    config = load_config(config_file)
    typer.echo(
        haproxy_model.render(
            config.cluster, config.nodes, bind, primary_port, replica_port, ca_file=config.ca_file
        ),
        nl=False,
    )
