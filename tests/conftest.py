"""Fixtures shared by every test: the PostgreSQL OS user, directories it can reach, free
ports, and the reaping of what tests start (processes, and the tmpfs fence files of their
data directories: tests/fences.py).

Servers run as the OS user ``postgres`` (as they do in production when pgherd runs as
root); their directories live under /var/tmp, because a checkout or pytest's own tmp_path
may sit under a 0700 directory that ``postgres`` cannot enter.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections import defaultdict
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from pgherd.pg import keeper, osuser, process
from tests.fences import FenceWatch, forget_fences_under

TEST_ROOT = Path(os.environ.get("PGHERD_TEST_ROOT", "/var/tmp/pgherd-tests"))


def pytest_configure(config: pytest.Config) -> None:
    # Agents started through `pgherd lab up` outlive that command; as a subreaper this
    # process inherits them and can reap them (PID 1 here never does).
    process.become_subreaper()


_MODULE_SECONDS: defaultdict[str, float] = defaultdict(float)
_FENCES = FenceWatch()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Note the data directories under the test's own directories as its body ends,
    before any teardown removes them (see _no_fence_file_left_behind)."""
    try:
        return (yield)
    finally:
        values = getattr(item, "funcargs", {})
        user = values.get("os_user")
        if isinstance(user, osuser.OsUser):
            for name in ("workdir", "module_dir"):
                directory = values.get(name)
                if isinstance(directory, Path):
                    _FENCES.note(directory, user.uid, item.nodeid)


@pytest.fixture(scope="session", autouse=True)
def _no_fence_file_left_behind() -> Iterator[None]:
    """Fail the run when a data directory that a test had was removed and its tmpfs fence
    file was not (pg/keeper.py's forget_fence, or tests/fences.py's forget_fences_under,
    belongs in that teardown); the files are removed here, being this run's own. Torn
    down last: after session_root, which removes every directory the tests made."""
    yield
    left = _FENCES.left_behind()
    for seen in left:
        keeper.forget_fence(seen.data_dir, seen.uid)
    assert not left, "fence files left behind on tmpfs (now removed): " + "; ".join(
        f"{seen.fence_file} of {seen.data_dir}, first had by {seen.test}" for seen in left
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _MODULE_SECONDS[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The slowest modules, set-up and tear-down included: where the suite's time budget
    goes (--durations lists tests, and hides a module's shared cluster in its first one)."""
    if not _MODULE_SECONDS:
        return
    terminalreporter.section("slowest modules")
    slowest = sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1])[:15]
    for module, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.1f}s  {module}")


@pytest.fixture(scope="session")
def os_user() -> osuser.OsUser:
    return osuser.resolve("postgres")


@pytest.fixture(scope="session")
def session_root(os_user: osuser.OsUser) -> Iterator[Path]:
    TEST_ROOT.mkdir(mode=0o755, exist_ok=True)
    os.chmod(TEST_ROOT, 0o755)  # noqa: S103 - postgres must traverse it; it holds only dirs
    root = TEST_ROOT / f"run-{os.getpid()}"
    os_user.make_dir(root)
    yield root
    if not os.environ.get("PGHERD_KEEP_TEST_DIRS"):  # set it to read logs after a failure
        forget_fences_under(root, os_user.uid)
        shutil.rmtree(root, ignore_errors=True)
    process.reap_zombie_children()


def _short_name(request: pytest.FixtureRequest) -> str:
    # Unix socket paths are limited to 107 bytes: keep directory names short.
    name = str(request.node.name).replace("[", "-").replace("]", "").replace("/", "-")
    return name[:24]


@pytest.fixture
def workdir(session_root: Path, os_user: osuser.OsUser, request: pytest.FixtureRequest) -> Path:
    """A fresh directory owned by the PostgreSQL OS user, for one test."""
    path = session_root / f"{_short_name(request)}-{random.randrange(1 << 16):04x}"
    os_user.make_dir(path)
    return path


@pytest.fixture(scope="module")
def module_dir(session_root: Path, os_user: osuser.OsUser, request: pytest.FixtureRequest) -> Path:
    """A directory owned by the PostgreSQL OS user, shared by one module's tests."""
    path = session_root / f"{request.module.__name__.rsplit('.', 1)[-1][:20]}"
    os_user.make_dir(path)
    return path


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(count: int, spread: tuple[int, ...] = (0,)) -> int:
    """A port P such that P+offset+i is free for every offset in ``spread``, i < count."""
    for _ in range(200):
        # Below the kernel's ephemeral range (32768+ here): a port picked there may be taken
        # by an outgoing connection between the check and the bind.
        base = random.randrange(20000, 31000)
        if all(port_is_free(base + off + i) for off in spread for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


@pytest.fixture
def free_port() -> int:
    return free_port_base(1)
