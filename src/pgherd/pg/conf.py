"""postgresql.conf handling: pgherd writes its own include file and never edits the user's.

``postgresql.conf`` gets one line, ``include = 'pgherd.conf'``, appended once; pgherd
rewrites ``pgherd.conf`` whole whenever the node's role or settings change. User edits
to postgresql.conf survive; a parameter set in both takes pgherd's value (the include
comes last), and ``ALTER SYSTEM`` (postgresql.auto.conf) still overrides both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

INCLUDE_FILE = "pgherd.conf"
INCLUDE_LINE = f"include = '{INCLUDE_FILE}'  # added by pgherd; settings it manages"
HEADER = (
    "# Written by pgherd; it rewrites this file whole, so edit postgresql.conf or use\n"
    "# ALTER SYSTEM instead. pgherd owns these settings for node {node}.\n"
)

Setting = str | int | float | bool


def quote(value: Setting) -> str:
    """A value in postgresql.conf syntax: booleans and numbers bare, strings quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


def render(node: str, settings: Mapping[str, Setting]) -> str:
    lines = [HEADER.format(node=node)]
    lines.extend(f"{name} = {quote(value)}" for name, value in settings.items())
    return "\n".join(lines) + "\n"


def has_include(postgresql_conf: str) -> bool:
    for line in postgresql_conf.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if stripped.startswith(("include", "include_if_exists")) and INCLUDE_FILE in stripped:
            return True
    return False


def with_include(postgresql_conf: str) -> str:
    """postgresql.conf with pgherd's include line appended, if it was not there yet."""
    if has_include(postgresql_conf):
        return postgresql_conf
    sep = "" if postgresql_conf.endswith("\n") or not postgresql_conf else "\n"
    return f"{postgresql_conf}{sep}\n{INCLUDE_LINE}\n"


AUTO_CONF = "postgresql.auto.conf"


def read_include(data_dir: Path) -> dict[str, str]:
    """The settings pgherd last wrote (values unquoted), for doctor and for tests."""
    return _read_settings(data_dir / INCLUDE_FILE)


def read_auto_conf(data_dir: Path) -> dict[str, str]:
    """What ALTER SYSTEM set (postgresql.auto.conf, which PostgreSQL reads last)."""
    return _read_settings(data_dir / AUTO_CONF)


def _read_settings(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return parse_settings(text)


def parse_settings(text: str) -> dict[str, str]:
    """``name = value`` lines (the simple form pgherd and ALTER SYSTEM write), unquoted."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        body = line.strip()
        if not body or body.startswith("#") or "=" not in body:
            continue
        name, _, value = body.partition("=")
        value = value.strip()
        if value.startswith("'") and value.endswith("'"):
            value = value[1:-1].replace("''", "'").replace("\\\\", "\\")
        values[name.strip()] = value
    return values


def config_errors(stderr: str) -> str:
    """What ``postgres`` said about configuration files it refused, without its log
    prefixes: ``invalid value for parameter "work_mem": "lots"; configuration file
    ".../pgherd.conf" contains errors``."""
    said = []
    for line in stderr.splitlines():
        for level in ("LOG:", "FATAL:", "ERROR:", "HINT:", "DETAIL:"):
            if level in line:
                said.append(line.split(level, 1)[1].strip())
                break
    return "; ".join(said) or stderr.strip() or "no message"
