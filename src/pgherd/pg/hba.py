"""pg_hba.conf and pg_ident.conf: a pgherd block at the top, the user's rules kept below.

pg_hba.conf is read top-down and the first matching rule wins, so pgherd's block goes
first: TCP connections from the cluster's addresses must prove a password with
scram-sha-256 (never ``trust``) over TLS (``hostssl``), and local connections as the
superuser are allowed only to the OS users mapped in pg_ident.conf (root, for the agent,
and the PostgreSQL OS user).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

BEGIN = "# BEGIN pgherd (managed: edits inside this block are overwritten)"
END = "# END pgherd"
IDENT_MAP = "pgherd"


@dataclass(frozen=True)
class HbaRule:
    kind: str  # local, host, hostssl…
    database: str
    user: str
    address: str | None
    method: str
    options: str = ""

    def line(self) -> str:
        cols = [f"{self.kind:<8}", f"{self.database:<12}", f"{self.user:<16}"]
        cols.append(f"{self.address or '':<20}")
        cols.append(self.method + (f" {self.options}" if self.options else ""))
        return " ".join(cols).rstrip()


def cidr(host: str) -> str:
    """A single-host CIDR for an IP address; a host name is kept as pg_hba allows."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"{ip}/{ip.max_prefixlen}"


def rules(
    superuser: str,
    replication_user: str,
    hosts: Iterable[str],
    only_own: bool = False,
    ssl: bool = True,
) -> list[HbaRule]:
    """pgherd's rules. ``ssl``: TCP rules are ``hostssl``, followed by ``hostnossl … reject``
    so that a client without TLS is refused here rather than let in by a ``host`` rule
    further down (initdb writes some); ``host`` only with ``tls: off``. ``only_own``: an
    adopted server, whose operator's rules for their users must not be shadowed by pgherd's
    block, which comes first: TCP rules for pgherd's superuser alone, and plain text refused
    only to pgherd's replication role (the operator's clients keep what their rules say)."""
    addresses = list(dict.fromkeys(cidr(h) for h in hosts))
    tcp = "hostssl" if ssl else "host"
    found: list[HbaRule] = [
        HbaRule("local", "all", superuser, None, "peer", f"map={IDENT_MAP}"),
        HbaRule("local", "replication", superuser, None, "peer", f"map={IDENT_MAP}"),
    ]
    for address in addresses:
        found.append(HbaRule(tcp, "replication", replication_user, address, "scram-sha-256"))
    tcp_user = superuser if only_own else "all"
    for address in addresses:
        found.append(HbaRule(tcp, "all", tcp_user, address, "scram-sha-256"))
    if ssl:
        refused = replication_user if only_own else "all"
        for database in ("replication", "all"):
            for anywhere in ("0.0.0.0/0", "::/0"):
                found.append(HbaRule("hostnossl", database, refused, anywhere, "reject"))
    return found


def ident_lines(os_users: Iterable[str], superuser: str) -> list[str]:
    return [f"{IDENT_MAP:<8} {os_user:<16} {superuser}" for os_user in dict.fromkeys(os_users)]


def with_block(existing: str, block_lines: list[str]) -> str:
    """``existing`` with pgherd's block replaced (or inserted at the top)."""
    kept: list[str] = []
    held: list[str] = []  # lines after BEGIN, given back if END never comes
    inside = False
    for line in existing.splitlines():
        if line.strip() == BEGIN:
            inside = True
            continue
        if inside:
            if line.strip() == END:
                inside = False
                held = []
            else:
                held.append(line)
            continue
        kept.append(line)
    kept.extend(held)
    while kept and not kept[0].strip():
        kept.pop(0)
    block = [BEGIN, *block_lines, END, ""]
    return "\n".join(block + kept).rstrip("\n") + "\n"


def trust_over_tcp(hba_text: str) -> list[str]:
    """Rules that let TCP clients in without a password: what doctor flags first."""
    offending = []
    for line in hba_text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 4 and fields[0].startswith("host") and "trust" in fields[3:]:
            offending.append(" ".join(fields))
    return offending
