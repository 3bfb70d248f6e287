"""``pgherd console``: serve the console with uvicorn, on loopback unless told otherwise,
over HTTPS when given a certificate."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pgherd import config as config_mod
from pgherd.clients.agent import AgentClient
from pgherd.config import ConsoleRole
from pgherd.console import passwords
from pgherd.errors import ConfigError, InvalidInput

DEFAULT_LISTEN = "127.0.0.1:8080"
log = logging.getLogger("pgherd.console")


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--listen {text!r} is not ADDR:PORT", "e.g. --listen 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_tls(cert: Path | None, key: Path | None) -> None:
    if (cert is None) != (key is None):
        raise InvalidInput("--cert and --key go together", "give both, or neither")
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise InvalidInput(f"{path} is not a file", "give the PEM files' paths")


def serve(config_path: Path, listen: str, cert: Path | None, key: Path | None) -> None:
    # lazy: FastAPI and uvicorn (~1 s) for serving only, not for `pgherd console passwd`
    import uvicorn

    from pgherd.console.app import create_app

    host, port = parse_listen(listen)
    check_tls(cert, key)
    config = config_mod.load(config_path)
    token = config_mod.read_token(config)
    AgentClient.default_token = token  # its reads too, when the agents ask (api.auth_reads)
    if not config.console.users and not config.console.token_login:
        raise ConfigError(
            "the console has no way to log in: no console users and token_login is off",
            "add a user: pgherd console passwd NAME --role operator",
        )
    https = cert is not None
    if not is_loopback(host) and not https:
        log.warning(
            "the console listens on %s without HTTPS: passwords and cookies cross the "
            "network in clear; give --cert and --key",
            host,
        )
    app = create_app(config, token, https=https, sessions_file=config.console_sessions_file)
    scheme = "https" if https else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"pgherd console for cluster {config.cluster}: {scheme}://{shown}:{port}/", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )


def set_password(config_path: Path, user: str, role: ConsoleRole, password: str) -> bool:
    """Write ``user``'s scrypt hash and role into the config file; True if the user is new.

    The file is rewritten whole (as YAML, keeping its other keys and its mode), after the
    new content validated.
    """
    raw = _raw(config_path)
    console: dict[str, Any] = dict(raw.get("console") or {})
    users = [dict(u) for u in console.get("users") or []]
    entry = {"name": user, "role": role, "password_hash": passwords.hash_password(password)}
    new = not any(u.get("name") == user for u in users)
    users = [entry if u.get("name") == user else u for u in users] + ([entry] if new else [])
    console["users"] = users
    raw["console"] = console
    _write(config_path, raw)
    return new


def remove_user(config_path: Path, user: str) -> None:
    raw = _raw(config_path)
    console: dict[str, Any] = dict(raw.get("console") or {})
    users = [dict(u) for u in console.get("users") or []]
    if not any(u.get("name") == user for u in users):
        raise InvalidInput(f"the console has no user {user!r}", "see console.users in the config")
    console["users"] = [u for u in users if u.get("name") != user]
    raw["console"] = console
    _write(config_path, raw)


def _raw(config_path: Path) -> dict[str, Any]:
    config_mod.load(config_path)  # a config that does not load is not rewritten
    raw = yaml.safe_load(config_path.read_text())
    assert isinstance(raw, dict)
    return raw


def _write(config_path: Path, raw: dict[str, Any]) -> None:
    config_mod.parse(raw, source=str(config_path))
    text = yaml.safe_dump(raw, sort_keys=False)
    mode = config_path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=config_path.parent, prefix=".pgherd-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, config_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
