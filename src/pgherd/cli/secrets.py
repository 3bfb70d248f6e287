"""pgherd secrets init|rotate: the cluster's secret files, created once; new API credentials
(and certificates) without downtime."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import console, print_json
from pgherd.model.secrets_layout import DIRECTORY_MODE, SECRET_MODE, Layout

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The cluster's secrets: passfile, API credentials, CA and certificates.")


@app.command()
def init(
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="replace files that exist (new passwords: the roles' must then change too)",
        ),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the files pgherd.yaml names for secrets — the passfile (generated passwords
    for the superuser and the replication role), the agents' API credentials (operator,
    viewer, a token per node, the grants) and, TLS on, the cluster CA and a certificate per
    member — mode 0600, owned by the PostgreSQL OS user. A file that exists is kept
    (--force replaces it). Then it says which files each host needs and the command that
    copies them there with their modes and owner (docs/deploy.md: each host only its own
    node token and key; the CA key stays where it was made)."""
    from pgherd import credentials
    from pgherd.credentials.files import Action
    from pgherd.credentials.hosts import layout
    from pgherd.pg import osuser

    config = load_config(config_file)
    user = osuser.resolve(config.os_user)
    written = credentials.files.init(config, user, credentials.KINDS, force=force)
    hosts = layout(config)
    if as_json:
        print_json(
            {
                "owner": user.name,
                "mode": f"{SECRET_MODE:04o}",
                "directory_mode": f"{DIRECTORY_MODE:04o}",
                "files": [
                    {"kind": w.kind, "path": str(w.path), "action": str(w.action)} for w in written
                ],
                "hosts": [
                    {
                        "member": h.member,
                        "host": h.host,
                        "directories": [str(d) for d in h.directories],
                        "files": [str(p) for p in h.paths],
                    }
                    for h in hosts.hosts
                ],
                "operators": [str(p) for p in hosts.operators],
                "stays_here": [str(p) for p in hosts.stays],
            }
        )
        return
    for w in written:
        if w.action is Action.KEPT:
            line = (
                f"[yellow]=[/] {w.kind} {escape(str(w.path))}: exists, kept (--force replaces it)"
            )
        else:
            line = (
                f"[green]✓[/] {w.kind} {escape(str(w.path))}: {w.action} (0600, owner {user.name})"
            )
        console.print(line, soft_wrap=True)
    if any(w.action is Action.REPLACED and w.kind == "passfile" for w in written):
        console.print(
            "[yellow]![/] new passwords: a running cluster's roles still have the old ones "
            "(ALTER ROLE … PASSWORD on the primary), and every host needs the new passfile",
            soft_wrap=True,
        )
    _say_where(hosts, user.name)


def _say_where(hosts: Layout, owner: str) -> None:
    """Which files go to which host, with their owner and mode (the same paths there)."""
    console.print(
        f"each host needs its own files, the same paths, owner {owner}, mode "
        f"{SECRET_MODE:04o} (directories {DIRECTORY_MODE:04o}); skip the host you are on "
        "(docs/deploy.md). As root here, with ssh to each host as root:",
        soft_wrap=True,
    )
    for host in hosts.hosts:
        console.print(f"  {host.member}: {escape(host.tar_pipe())}", soft_wrap=True)
    people = " ".join(escape(str(p)) for p in hosts.operators)
    console.print(
        f"  where people run pgherd or its console (owner: who runs it): {people}",
        soft_wrap=True,
    )
    for path in hosts.stays:
        console.print(
            f"  {escape(str(path))}: on this host only (it issues certificates; no part of "
            "the running cluster reads it)",
            soft_wrap=True,
        )


@app.command()
def rotate(
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            max=7 * 86400,
            help="seconds the previous tokens keep working, while the new ones reach "
            "every client and host (0: at once)",
        ),
    ] = 600,
    tls: Annotated[
        bool,
        typer.Option("--tls", help="also issue every member's certificate again (same CA)"),
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="OS user the agents run as, who owns the token files (default: their "
            "owner now); another user than PostgreSQL's keeps them from the server process",
        ),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """New tokens for the operator, the viewer and every node; the agents accept old and
    new for --grace seconds (they read the grants file again on its change: no restart)."""
    from pgherd.pg import apitokens, osuser, tlsfiles

    config = load_config(config_file)
    if owner is not None:
        user = osuser.resolve(owner)
    elif config.api_token_file.exists():  # whoever owns them now: the agents' user
        user = osuser.by_uid(config.api_token_file.stat().st_uid)
    else:
        user = osuser.resolve(config.os_user)
    written = apitokens.write(config, user, grace)
    issued: tuple[str, ...] = ()
    if tls and config.tls_on:
        wanted = tlsfiles.members(config, tlsfiles.store_members(config))
        made = tlsfiles.ensure(config, osuser.resolve(config.os_user), wanted, renew=True)
        issued = made.issued
    until = (
        dt.datetime.fromtimestamp(written.grace_until, dt.UTC).isoformat(timespec="seconds")
        if written.grace_until
        else None
    )
    if as_json:
        print_json(
            {
                "grants": written.grants,
                "node_tokens": list(written.members),
                "previous_valid_until": until,
                "certificates": list(issued),
            }
        )
        return
    console.print(
        f"new API tokens: operator, viewer and {len(written.members)} node tokens "
        f"in {config.api_token_file.parent}"
    )
    console.print(
        f"the previous tokens work until {until}" if until else "the previous tokens no longer work"
    )
    if issued:
        console.print(
            f"new certificates for {', '.join(issued)}: PostgreSQL takes them on reload, "
            "an agent's API on its restart (neither restarts PostgreSQL), etcd on its next "
            "connections (once copied where it reads them, docs/deploy.md step 4)"
        )
    console.print(
        "on other hosts: copy api-grants.json, the tokens and node-tokens/NAME (and tls/NAME.*) "
        "there before the grace ends"
    )
