"""The OS user PostgreSQL runs as.

PostgreSQL refuses to run as root. When pgherd itself runs as root it runs every
PostgreSQL program as this user (``postgres`` by default, ``--os-user`` to change it) and
gives it the files those programs need; run as that user, nothing needs switching.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from pgherd.errors import InvalidInput, PathUnreachable


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int
    home: Path

    @property
    def is_current(self) -> bool:
        return os.geteuid() == self.uid

    @property
    def needs_switch(self) -> bool:
        """True when programs must be started as this user rather than as ourselves."""
        return not self.is_current

    def chown(self, path: Path) -> None:
        if os.geteuid() == 0 and self.needs_switch:
            os.chown(path, self.uid, self.gid)

    def make_dir(self, path: Path, mode: int = 0o700) -> None:
        """Create ``path`` (and missing parents the same way), owned by this user."""
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            directory.mkdir(mode=mode)
            os.chmod(directory, mode)
            self.chown(directory)

    def write_file(self, path: Path, text: str, mode: int = 0o600) -> None:
        """Write ``path`` atomically with ``mode``, owned by this user."""
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            self.chown(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def resolve(name: str) -> OsUser:
    """Look up ``name``; refuse root, and refuse a user we cannot act as."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InvalidInput(
            f"OS user {name!r} does not exist",
            "install PostgreSQL (it creates `postgres`) or pass --os-user USER",
        ) from None
    if entry.pw_uid == 0:
        raise InvalidInput(
            "PostgreSQL cannot run as root", "pass --os-user with a non-root user such as postgres"
        )
    euid = os.geteuid()
    if euid not in (0, entry.pw_uid):
        me = pwd.getpwuid(euid).pw_name
        raise InvalidInput(
            f"running as {me!r}, which cannot start programs as {name!r}",
            f"run pgherd as root or as {name!r}, or set os_user: {me} in pgherd.yaml",
        )
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def by_uid(uid: int) -> OsUser:
    """The OS user with ``uid``, root included: the owner of files PostgreSQL does not read
    (the agents' API credentials), which is the agents' user, not necessarily PostgreSQL's."""
    entry = pwd.getpwuid(uid)
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def unreachable_part(path: Path, user: OsUser) -> Path | None:
    """The first directory on the way to ``path`` that ``user`` cannot enter, if any.

    Checked from the mode bits, the way the kernel does for a process with the user's
    uid and primary gid; /root is 0700 on these machines, so a lab under it cannot work.
    """
    groups = set(os.getgrouplist(user.name, user.gid))
    for directory in [*reversed(path.parents), path]:
        if not directory.exists():
            return None
        st = directory.stat()
        if st.st_uid == user.uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid in groups:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return directory
    return None


def require_reachable(path: Path, user: OsUser) -> None:
    blocked = unreachable_part(path.absolute(), user)
    if blocked is not None:
        raise PathUnreachable(
            f"the OS user {user.name!r} cannot reach {path}: {blocked} is mode "
            f"{blocked.stat().st_mode & 0o777:o}",
            "choose a directory it can reach, such as /var/tmp/pgherd-lab",
        )
