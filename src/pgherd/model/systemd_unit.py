"""The systemd unit of a node's agent (``pgherd agent unit --node NODE``), rendered.

What each line is for:

- ``User=`` the OS user that owns the data directory: the agent is never root (a
  superuser's ``pg_read_file`` of the token file must not drive a root process).
- ``KillMode=process``: ``systemctl stop|restart`` signals the agent only. The agent
  leaves PostgreSQL running under its keeper for the next agent to adopt (ha/handover.py,
  pg/keeper.py): upgrading or restarting the agent never restarts PostgreSQL. systemd
  leaves the keeper and PostgreSQL in the unit's cgroup; at a system shutdown its final
  SIGTERM reaches the keeper, which shuts PostgreSQL down fast.
- ``ExecReload=`` sends SIGHUP: the agent re-reads pgherd.yaml (ha/reload.py).
- ``Restart=always``: an agent that dies comes back and adopts its PostgreSQL.
- Hardening from systemd.exec(5) that PostgreSQL lives with: the file system read-only
  but for the node's home and data, the archive and a sqlite store (``ProtectSystem=strict``
  with ``ReadWritePaths=``), no privileges to gain, private ``/tmp`` (the sockets are in
  ``<home>/run``), no devices but the pseudo ones (``/dev/shm``, where PostgreSQL keeps
  its dynamic shared memory, is the host's), kernel tunables, modules, logs, clock and
  cgroups protected, only Unix and IP sockets (and netlink, which name lookups use).
  Left out on purpose: ``MemoryDenyWriteExecute`` (PostgreSQL's JIT writes code),
  ``RemoveIPC`` (it would remove PostgreSQL's shared memory when the agent stops while
  PostgreSQL runs on), ``SystemCallFilter`` (extensions need calls nobody can list here),
  ``PrivateNetwork`` and ``PrivateUsers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HOME_TREES = ("/home", "/root", "/run/user")


@dataclass(frozen=True)
class UnitSpec:
    node: str
    cluster: str
    exec_start: tuple[str, ...]  # the agent's command line
    user: str
    group: str
    writable: tuple[str, ...]  # must exist: the node's home and data directory
    optional_writable: tuple[str, ...] = ()  # may not exist yet: an archive, a store's dir
    readable: tuple[str, ...] = ()  # read only: programs, pgherd.yaml, secrets
    witness: bool = False


def quote(arg: str) -> str:
    """An argument as systemd's command lines want it: ``%`` and ``$`` doubled, in double
    quotes when it has a space, a quote or a backslash."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if any(c in text for c in " \"\\'\t"):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def protect_home(writable: Sequence[str], readable: Sequence[str]) -> str:
    """``yes`` unless a path the agent needs is under /home, /root or /run/user: then
    ``read-only`` (it only reads there) or ``no`` (it writes there)."""

    def under(path: str) -> bool:
        return any(path == tree or path.startswith(tree + "/") for tree in HOME_TREES)

    if any(under(p) for p in writable):
        return "no"
    if any(under(p) for p in readable):
        return "read-only"
    return "yes"


def unit_name(node: str) -> str:
    return f"pgherd@{node}.service"


def render(spec: UnitSpec) -> str:
    what = "witness agent" if spec.witness else "agent"
    paths = [*spec.writable, *(f"-{p}" for p in spec.optional_writable)]
    lines = [
        f"# The pgherd {what} of {spec.node} (cluster {spec.cluster}): pgherd agent unit "
        f"--node {spec.node}",
        f"# Install: pgherd agent unit --node {spec.node} > "
        f"/etc/systemd/system/{unit_name(spec.node)}",
        f"#          systemctl daemon-reload && systemctl enable --now {unit_name(spec.node)}",
        "# systemctl restart restarts the agent only (PostgreSQL runs on; the next agent adopts",
        "# it); systemctl reload re-reads pgherd.yaml. Stop PostgreSQL with pgherd node stop.",
        "",
        "[Unit]",
        f"Description=pgherd {what} of {spec.node} (cluster {spec.cluster})",
        "Documentation=man:systemd.exec(5)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        f"User={spec.user}",
        f"Group={spec.group}",
        "ExecStart=" + " ".join(quote(a) for a in spec.exec_start),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "# The agent only: PostgreSQL runs on under its keeper for the next agent to adopt.",
        "KillMode=process",
        "Restart=always",
        "RestartSec=1",
        "TimeoutStopSec=30",
        "UMask=0077",
        "# Hardening (systemd.exec(5)) that PostgreSQL lives with; see pgherd's",
        "# model/systemd_unit.py for what is left out and why (never RemoveIPC=yes).",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=" + " ".join(quote(p) for p in paths),
        f"ProtectHome={protect_home(spec.writable + spec.optional_writable, spec.readable)}",
        "ProtectProc=invisible",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "SystemCallArchitectures=native",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"
