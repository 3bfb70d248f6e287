"""Disks of the test hosts: a host's own file system (an ext4 on a loop device) where its
node keeps its data, so that the disk can be made slow or full without touching anyone
else's; and small tmpfs mounts (an archive that fills up).

A slow disk is honest here: the kernel's block throttle (cgroup v1 blkio,
``blkio.throttle.write_iops_device``) caps the write operations per second that the host's
processes (tests/hosts/network.py puts them in the host's blkio group) may issue to its
loop device, so PostgreSQL's ``fdatasync`` of each commit waits for real, as on a
saturated disk (measured here: 20 IOPS makes an 8 kB fdatasync take ~100 ms). Device
mapper's ``delay`` target would delay every I/O by a fixed time, but this kernel has no
device mapper.

A full disk is a ballast file that leaves a few megabytes free to the PostgreSQL OS user
(root's reserved blocks aside), removed to free the space again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pgherd.pg import osuser
from tests.fences import forget_fences_under
from tests.hosts.network import Host

BALLAST = ".faults-ballast"


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout.strip()


def unavailable() -> str | None:
    """Why loop devices cannot be used here, or None."""
    if os.geteuid() != 0:
        return "loop devices need root"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control"
    return None


@dataclass
class LoopDisk:
    """An ext4 file system in a sparse image file, mounted at ``mountpoint``."""

    image: Path
    mountpoint: Path
    device: str = ""

    @classmethod
    def create(cls, image: Path, mountpoint: Path, size_mb: int, owner: osuser.OsUser) -> LoopDisk:
        with image.open("wb") as handle:
            handle.truncate(size_mb * 1024 * 1024)
        disk = cls(image, mountpoint)
        try:
            disk.device = _run("losetup", "--find", "--show", str(image))
            _run(
                "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", disk.device
            )
            mountpoint.mkdir(parents=True, exist_ok=True)
            _run("mount", disk.device, str(mountpoint))
            os.chown(mountpoint, owner.uid, owner.gid)
            os.chmod(mountpoint, 0o700)
            (mountpoint / "lost+found").rmdir()
        except BaseException:
            disk.remove()
            raise
        return disk

    @property
    def major_minor(self) -> str:
        st = os.stat(self.device)
        return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"

    def throttle_writes(self, host: Host, iops: int) -> None:
        """At most ``iops`` write operations per second from ``host``'s processes to this
        disk; 0 lifts the limit."""
        group = host.cgroup("blkio")
        if group is None:
            raise RuntimeError("no blkio control group for the host (cgroup v1 blkio)")
        (group / "blkio.throttle.write_iops_device").write_text(f"{self.major_minor} {iops}\n")

    def remove(self) -> None:
        if self.device:
            _forget_fences(self.mountpoint)
            for _ in range(50):  # a process that just died may still hold a file open
                done = subprocess.run(["umount", str(self.mountpoint)], capture_output=True)
                if done.returncode == 0 or not os.path.ismount(self.mountpoint):
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "--lazy", str(self.mountpoint)], capture_output=True)
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
            self.device = ""
        self.image.unlink(missing_ok=True)


@dataclass
class Tmpfs:
    """A small tmpfs at ``mountpoint``, owned by the PostgreSQL OS user."""

    mountpoint: Path

    @classmethod
    def mount(cls, mountpoint: Path, size_mb: int, owner: osuser.OsUser) -> Tmpfs:
        mountpoint.mkdir(parents=True, exist_ok=True)
        _run(
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size_mb}m,mode=0700,uid={owner.uid},gid={owner.gid}",
            "tmpfs",
            str(mountpoint),
        )
        return cls(mountpoint)

    def remove(self) -> None:
        _forget_fences(self.mountpoint)
        with contextlib.suppress(RuntimeError):
            _run("umount", str(self.mountpoint))


def _forget_fences(mountpoint: Path) -> None:
    """The data directories on a file system about to go lose their fence files (on the
    host's tmpfs: pg/keeper.py) with it; the mount point belongs to their OS user."""
    with contextlib.suppress(OSError):
        forget_fences_under(mountpoint, mountpoint.stat().st_uid)


def fill(mountpoint: Path, leave_mb: float) -> int:
    """Fill the file system at ``mountpoint`` until ``leave_mb`` are left to an ordinary
    user (a ballast file); returns the ballast's size in bytes."""
    st = os.statvfs(mountpoint)
    free = st.f_bavail * st.f_frsize
    size = max(0, free - int(leave_mb * 1024 * 1024))
    path = mountpoint / BALLAST
    with path.open("ab") as handle:
        os.posix_fallocate(handle.fileno(), handle.tell(), size)
    return size


def empty(mountpoint: Path) -> None:
    """Remove the ballast: the space is free again."""
    (mountpoint / BALLAST).unlink(missing_ok=True)


def free_mb(mountpoint: Path) -> float:
    st = os.statvfs(mountpoint)
    return st.f_bavail * st.f_frsize / 1024 / 1024
