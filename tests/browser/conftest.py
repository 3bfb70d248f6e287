"""The console in headless Chromium: a console process per lab, a browser per module.

Playwright drives Debian's chromium (``apt-get install chromium``, done by
scripts/bootstrap.sh); ``playwright install`` is never run, because it downloads a
browser of its own, which these machines cannot.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from pgherd.pg import process
from tests.conftest import free_port_base
from tests.e2e.conftest import Lab

# Assertions wait up to 20 s: a 2-core CI machine running servers is slow at times.
expect.set_options(timeout=20_000)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
OPERATOR = ("alice", "alice-operator-pw")
VIEWER = ("bob", "bob-viewer-pw1")


@dataclass
class Console:
    url: str
    proc: subprocess.Popen[bytes]


def set_password(lab: Lab, user: str, password: str, role: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pgherd",
            "console",
            "passwd",
            user,
            "--role",
            role,
            "--config",
            str(lab.config_path),
        ],
        input=f"{password}\n".encode(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def start_console(lab: Lab, tls: tuple[Path, Path] | None = None) -> Console:
    set_password(lab, *OPERATOR, "operator")
    set_password(lab, *VIEWER, "viewer")
    port = free_port_base(1)
    extra = ["--cert", str(tls[0]), "--key", str(tls[1])] if tls else []
    with (lab.directory / "console.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgherd",
                "console",
                "--listen",
                f"127.0.0.1:{port}",
                "--config",
                str(lab.config_path),
                *extra,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    context = ssl._create_unverified_context() if tls else None  # noqa: S323 (self-signed)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/login", timeout=2, context=context).read()  # noqa: S310
            return Console(url, proc)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(
                    f"the console did not start: {(lab.directory / 'console.log').read_text()}"
                ) from None
            time.sleep(0.1)


def stop_console(console: Console) -> None:
    console.proc.terminate()
    try:
        console.proc.wait(10)
    except subprocess.TimeoutExpired:
        console.proc.kill()
        console.proc.wait(5)
    process.reap_zombie_children()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: scripts/bootstrap.sh installs it")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield found
        found.close()
