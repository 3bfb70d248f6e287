"""The quick commands' config: validated once per file text, then read from a cache.

Validating pgherd.yaml needs pydantic (~0.1 s to import, and as long again to build the
models), more than the whole of ``pgherd cluster show`` should take. So the first command
to read a file validates it with :mod:`pgherd.config` and keeps the result, the validated
file as JSON, in a private cache; the next commands that read the same text build a
:class:`~pgherd.config_lite.LiteConfig` from that JSON without importing pydantic.

**Never stale.** An entry is named by the SHA-256 of the file's bytes, read anew on every
run, so an edited file never finds the old entry. It also records the files of the code
that validated it (pgherd's modules, pydantic's and PyYAML's packages: path, size, mtime,
inode) and is ignored when any of them changed, so an upgrade that tightens a rule
validates again. Validation is a function of the text alone (see
:func:`pgherd.config.parse_bytes`).

**Never shared between users.** The CLI runs as root and as postgres (PostgreSQL runs
``pgherd wal push|fetch`` as its OS user): an entry another user could write would let
that user choose the config root acts on. So each effective user has its own cache,
``<home of the effective user>/.cache/pgherd/config`` (the home from the password
database, not ``$HOME``, which ``sudo`` may keep), or ``$PGHERD_CACHE_DIR/config``. The
directory must be owned by the effective user with mode 0700, and every entry owned by
it with no access for others; entries are opened relative to that checked directory
without following links. When anything is not so, the command validates the file itself
and caches nothing: slower, never wrong. ``PGHERD_CONFIG_CACHE=off`` turns it off.

At most :data:`MAX_ENTRIES` entries are kept (test suites make thousands of configs);
the least recently used go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgherd import config_lite
from pgherd.config_lite import LiteConfig

CACHE_DIR_ENV = "PGHERD_CACHE_DIR"
SWITCH_ENV = "PGHERD_CONFIG_CACHE"
FORMAT = 2  # 2: with what pgherd.config derived (the archive's repositories)
MAX_ENTRIES = 64
TOUCH_AFTER_SECONDS = 3600.0  # refresh an entry's mtime (its place in the LRU) at most hourly
# Code outside pgherd whose change could change what validation accepts or produces.
VALIDATING_PACKAGES = ("pydantic", "pydantic_core", "yaml")


def load(path: Path) -> LiteConfig:
    """The config at ``path``: from the cache when this text was validated before, else
    validated now (one-line :class:`~pgherd.errors.ConfigError` when it is not valid)."""
    data = config_lite.read_config_bytes(path)
    key = hashlib.sha256(data).hexdigest()
    with _cache_directory() as directory:
        if directory is not None:
            cached = _read_entry(directory, key)
            if cached is not None:
                return cached
        # pydantic: only for a text not validated yet (or no usable cache).
        from pgherd import config as config_mod

        parsed = config_mod.parse_bytes(data, path)
        validated, derived = parsed.model_dump(mode="json"), config_mod.derived(parsed)
        if directory is not None:
            _write_entry(directory, key, validated, derived)
    return config_lite.from_validated(validated, derived)


def remember(data: bytes, validated: dict[str, Any], derived: dict[str, Any]) -> None:
    """Keep ``validated`` (``ClusterConfig.model_dump(mode="json")`` of the config whose
    text is ``data``) and ``derived`` (pgherd.config.derived of it) for the next command:
    for a command that wrote the file itself from a config it validated (``standby clone``
    adding a node)."""
    with _cache_directory() as directory:
        if directory is not None:
            _write_entry(directory, hashlib.sha256(data).hexdigest(), validated, derived)


# ---- the directory ----------------------------------------------------------------------


def cache_root() -> Path | None:
    """Where this effective user's cache lives (None: nowhere usable)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit) if os.path.isabs(explicit) else None
    import pwd

    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None
    return Path(home) / ".cache" / "pgherd" if os.path.isabs(home) else None


@contextlib.contextmanager
def _cache_directory() -> Iterator[int | None]:
    """A file descriptor of this user's checked cache directory, or None."""
    fd = _open_directory()
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _open_directory() -> int | None:
    if os.environ.get(SWITCH_ENV, "").lower() in ("off", "0", "no", "false"):
        return None
    root = cache_root()
    if root is None:
        return None
    directory = root / "config"
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return None
    except OSError:
        return None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        os.close(fd)
        return None
    return fd


# ---- entries ----------------------------------------------------------------------------


def _read_entry(directory: int, key: str) -> LiteConfig | None:
    name = f"{key}.json"
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or stat.S_IMODE(info.st_mode) & 0o077
        ):
            return None
        with os.fdopen(os.dup(fd), "rb") as file:
            entry = json.loads(file.read())
        if entry.get("format") != FORMAT or entry.get("sha256") != key:
            return None
        if not _code_unchanged(entry.get("code")):
            return None
        config = config_lite.from_validated(entry["config"], entry["derived"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        os.close(fd)
    if info.st_mtime < _now() - TOUCH_AFTER_SECONDS:
        with contextlib.suppress(OSError):
            os.utime(name, dir_fd=directory)
    return config


def _write_entry(
    directory: int, key: str, validated: dict[str, Any], derived: dict[str, Any]
) -> None:
    entry = {
        "format": FORMAT,
        "sha256": key,
        "code": code_files(),
        "config": validated,
        "derived": derived,
    }
    temporary = f".{key}.{os.getpid()}.tmp"
    try:
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            0o600,
            dir_fd=directory,
        )
        with os.fdopen(fd, "w") as file:
            json.dump(entry, file)
        os.replace(temporary, f"{key}.json", src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory)
        return
    _prune(directory)


def _prune(directory: int) -> None:
    """Keep the MAX_ENTRIES most recently used entries (and no leftover temporary file
    older than an hour)."""
    aged: list[tuple[float, str]] = []
    for name in os.listdir(directory):
        try:
            mtime = os.stat(name, dir_fd=directory, follow_symlinks=False).st_mtime
        except OSError:
            continue
        if name.endswith(".json"):
            aged.append((mtime, name))
        elif name.endswith(".tmp") and mtime < _now() - 3600:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=directory)
    aged.sort(reverse=True)
    for _, name in aged[MAX_ENTRIES:]:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=directory)


def _now() -> float:
    import time

    return time.time()


# ---- the code that validated an entry ---------------------------------------------------


def code_files() -> list[list[Any]]:
    """The files of the code that validated a config in this process: every loaded pgherd
    module (pgherd.config imports all it uses, so they are among them) and the
    directories of the validating packages (an upgrade replaces their files, which
    changes the directories). Each as [path, size, mtime_ns, inode]."""
    paths: set[str] = set()
    for name, module in list(sys.modules.items()):
        if name == "pgherd" or name.startswith("pgherd."):
            file = getattr(module, "__file__", None)
            if file:
                paths.add(file)
        elif name in VALIDATING_PACKAGES:
            file = getattr(module, "__file__", None)
            if file:
                paths.add(os.path.dirname(file))
    found = []
    for path in sorted(paths):
        try:
            info = os.stat(path)
        except OSError:
            continue
        found.append([path, info.st_size, info.st_mtime_ns, info.st_ino])
    return found


def _code_unchanged(recorded: object) -> bool:
    if not isinstance(recorded, list) or not recorded:
        return False
    for path, size, mtime_ns, inode in recorded:
        try:
            info = os.stat(path)
        except OSError:
            return False
        if (info.st_size, info.st_mtime_ns, info.st_ino) != (size, mtime_ns, inode):
            return False
    return True
