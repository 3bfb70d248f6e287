"""Finding PostgreSQL's server programs and their version."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pgherd.errors import CommandFailed, PostgresNotFound
from pgherd.model import settings as settings_rules

REQUIRED = ("postgres", "initdb", "pg_ctl", "pg_controldata", "pg_basebackup")
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
SUPPORTED_MAJORS = range(13, 18)


@dataclass(frozen=True)
class PgBin:
    """A directory of PostgreSQL programs of one version."""

    bindir: Path
    major: int
    version: str  # as the server prints it, e.g. "15.18"

    def __getitem__(self, program: str) -> Path:
        return self.bindir / program

    @property
    def supports_ssl(self) -> bool:
        """Whether the server was built with OpenSSL (``ssl = on`` fails to start without
        it), as ``pg_config --configure`` says; a directory without pg_config is assumed
        to have it, as every packaged build does."""
        return _built_with_ssl(self.bindir)

    @property
    def version_num(self) -> int:
        """The number server_version_num reports, e.g. 150018."""
        minor = int(self.version.split(".")[1]) if "." in self.version else 0
        return self.major * 10000 + minor


@cache
def _built_with_ssl(bindir: Path) -> bool:
    pg_config = bindir / "pg_config"
    if not pg_config.is_file():
        return True
    out = subprocess.run(
        [str(pg_config), "--configure"], capture_output=True, text=True, timeout=10, check=False
    )
    return "--with-openssl" in out.stdout or "--with-ssl=openssl" in out.stdout


def parse_version(text: str) -> tuple[int, str]:
    """``postgres (PostgreSQL) 15.18 (Debian …)`` → (15, "15.18")."""
    match = _VERSION.search(text)
    if match is None:
        raise ValueError(f"not a PostgreSQL version line: {text.strip()!r}")
    major, minor = match.group(1), match.group(2)
    return int(major), f"{major}.{minor}" if minor is not None else major


@cache
def inspect(bindir: Path) -> PgBin:
    """The version of the programs in ``bindir``, after checking they are all there."""
    missing = [p for p in REQUIRED if not (bindir / p).is_file()]
    if missing:
        raise PostgresNotFound(f"{bindir} has no {', '.join(missing)}")
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    try:
        major, version = parse_version(out.stdout)
    except ValueError:
        raise PostgresNotFound(f"{bindir / 'postgres'} did not report a version") from None
    if major not in SUPPORTED_MAJORS:
        raise PostgresNotFound(
            f"PostgreSQL {version} in {bindir} is not supported",
            f"use PostgreSQL {SUPPORTED_MAJORS.start} to {SUPPORTED_MAJORS.stop - 1}",
        )
    return PgBin(bindir, major, version)


@cache
def parameter_contexts(bindir: Path) -> dict[str, str]:
    """Every parameter these programs know, with its context (``postmaster``, ``sighup``,
    ``user``…), from ``postgres --describe-config``: no data directory or server needed."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--describe-config"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if out.returncode != 0:
        raise CommandFailed("postgres --describe-config", out.returncode, out.stderr)
    return settings_rules.parse_describe_config(out.stdout)


def candidates() -> list[Path]:
    """Where server programs may be, without an explicit choice."""
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))
    found.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin")))
    on_path = shutil.which("postgres")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    unique: list[Path] = []
    for path in found:
        if path not in unique and (path / "postgres").is_file():
            unique.append(path)
    return unique


def find(explicit: Path | None = None) -> PgBin:
    """``explicit`` when given; otherwise the newest supported major version found."""
    if explicit is not None:
        return inspect(explicit)
    usable: list[PgBin] = []
    for path in candidates():
        try:
            usable.append(inspect(path))
        except PostgresNotFound:
            continue
    if not usable:
        raise PostgresNotFound(
            "no PostgreSQL server programs found (looked at pg_config, "
            "/usr/lib/postgresql/*/bin and PATH)"
        )
    return max(usable, key=lambda b: b.version_num)


def pgserver_bindir() -> Path | None:
    """PostgreSQL 16 server programs shipped by the PyPI package ``pgserver`` (a dev
    dependency), if it is installed: ``pgserver/pginstall/bin``. Found without importing
    the package; used through ``--pg-bin`` / ``pg_bin``, never chosen by default."""
    import importlib.util  # lazy: only when looking for pgserver's programs

    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if (bindir / "postgres").is_file() else None
