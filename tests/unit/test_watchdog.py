"""The watchdog: when to arm, ping and disarm it (model/watchdog.py, table-driven), the
settings that allow one, decide()'s refusals for a node that cannot arm it, and the
device driver on a FIFO stand-in (what it writes, when)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.errors import ConfigError
from pgherd.ha.fence import Fence
from pgherd.ha.watchdog import Watchdog, WatchdogError
from pgherd.model.ha import Do, Local, Peer, World, candidate_verdict, decide
from pgherd.model.ha_settings import Settings
from pgherd.model.lsn import Lsn
from pgherd.model.status import PgState, Role
from pgherd.model.watchdog import Dog, order, timeout_for, timing_problem

S = Settings()


@pytest.mark.parametrize(
    ("case", "armed", "until", "now", "expected"),
    [
        ("not a primary, never armed", False, None, 10.0, Dog.NOTHING),
        ("may take writes: arm", False, 13.0, 10.0, Dog.ARM),
        ("renewed: ping", True, 13.0, 10.0, Dog.PING),
        ("pinged now it would outlive the lease: let it fire", True, 13.0, 11.5, Dog.NOTHING),
        ("too late to arm it now", False, 13.0, 11.5, Dog.NOTHING),
        ("just in time", True, 13.0, 11.0, Dog.PING),
        ("writes must stop: magic close", True, None, 10.0, Dog.DISARM),
        ("the lease ran out: magic close", True, 13.0, 13.0, Dog.DISARM),
    ],
)
def test_order(case: str, armed: bool, until: float | None, now: float, expected: Dog) -> None:
    assert order(armed, until, now, timeout=2) is expected, case


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry", "timeout", "ok"),
    [
        (3.0, 0.5, 1.0, 2, True),  # the defaults: a 2 s device
        (2.0, 0.25, 0.5, 1, True),  # the tightest settings
        (2.0, 0.5, 1.0, 1, False),  # a slow store call would let a healthy leader's device fire
        (1.2, 0.2, 0.3, 0, False),  # no whole second left
        (30.0, 10.0, 10.0, 29, True),  # Patroni's defaults
    ],
)
def test_timeout_and_timing(
    ttl: float, loop_wait: float, retry: float, timeout: int, ok: bool
) -> None:
    assert timeout_for(ttl) == timeout
    assert (timing_problem(ttl, loop_wait, retry) is None) is ok


def test_config_refuses_a_watchdog_the_timings_cannot_serve(tmp_path: Path) -> None:
    raw = {
        "cluster": "c",
        "passfile": "/p/pgpass",
        "api_token_file": "/p/token",
        "failover": "automatic",
        "ha": {
            "dcs": {"sqlite": "/p/dcs"},
            "ttl": 2,
            "loop_wait": 0.5,
            "retry_timeout": 0.75,
            "watchdog": "/dev/watchdog",
        },
        "nodes": [{"name": "node1", "data_dir": "/p/n1/data"}],
    }
    with pytest.raises((ConfigError, ValueError), match=r"raise ttl to at least 2\.5 s"):
        config_mod.parse(raw)
    raw["ha"]["ttl"] = 3  # type: ignore[index]
    config = config_mod.parse(raw)
    assert config.ha is not None and config.ha.watchdog == Path("/dev/watchdog")


PRIMARY = Local("node1", PgState.RUNNING, Role.PRIMARY, 1, Lsn(5000), holds_lease=True)
STANDBY = Local("node2", PgState.RUNNING, Role.STANDBY, 1, Lsn(5000), upstream="node1")
UNFIT = "cannot open /dev/watchdog: Permission denied"


def dos(actions: tuple[object, ...]) -> list[Do]:
    return [a.do for a in actions]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "me", "world", "expected"),
    [
        ("a leader that cannot arm it demotes", PRIMARY, World(True, "node1"), [Do.DEMOTE]),
        (
            "a running primary does not take a free lease",
            PRIMARY,
            World(True, None),
            [Do.DEMOTE],
        ),
        (
            "a standby holding the lease gives it back",
            STANDBY,
            World(True, "node2"),
            [Do.RELEASE_LEASE],
        ),
        (
            "a crashed leader gives the lease up rather than restart as the primary",
            replace(PRIMARY, pg=PgState.CRASHED, crashed_for=1.0),
            World(True, "node1"),
            [Do.RELEASE_LEASE],
        ),
        (
            "a primary by its files does not start as one at a cold start",
            replace(PRIMARY, pg=PgState.STOPPED, crashed_for=0.0, never_ran=True),
            World(True, None),
            [Do.WAIT],
        ),
    ],
)
def test_a_node_that_cannot_arm_its_watchdog_never_leads(
    case: str, me: Local, world: World, expected: list[Do]
) -> None:
    actions = decide(S, replace(me, watchdog_problem=UNFIT), world)
    assert dos(actions) == expected, case
    assert "my watchdog cannot be armed (cannot open /dev/watchdog" in actions[0].reason


def test_a_standby_that_cannot_arm_its_watchdog_does_not_take_over() -> None:
    world = World(True, None, (Peer("node3", True, PgState.RUNNING, Role.STANDBY, 1, Lsn(1)),))
    assert candidate_verdict(S, STANDBY, world) is None
    unfit = replace(STANDBY, watchdog_problem=UNFIT)
    assert candidate_verdict(S, unfit, world) == (
        f"my watchdog cannot be armed ({UNFIT}) and a leader needs one"
    )
    assert dos(decide(S, unfit, world)) == [Do.WAIT]


# ---- the driver, on a FIFO stand-in ------------------------------------------------------


def armed(dog: Watchdog) -> bool:
    return dog.armed


class Device:
    """The test's end of a FIFO: what the agent wrote, and whether it closed."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o600)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def read(self) -> bytes:
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""  # a writer is there, nothing written


def test_the_driver_arms_pings_and_closes_with_the_magic_character(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "watchdog"
    device = Device(path)
    dog = Watchdog(path, timeout=2, clock=lambda: now[0])
    assert dog.unfit() is None
    assert dog.follow(103.0) is Dog.ARM and armed(dog)
    assert device.read() == b"1"
    now[0] = 100.5
    assert dog.follow(103.5) is Dog.PING
    now[0] = 101.8
    assert dog.follow(103.5) is Dog.NOTHING  # pinged now, it would outlive the lease
    assert device.read() == b"1"
    assert dog.follow(None) is Dog.DISARM and not armed(dog)
    assert device.read() == b"V"
    assert device.read() == b""  # closed


def test_a_device_nobody_serves_cannot_be_armed_and_says_why(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "watchdog"
    os.mkfifo(path, 0o600)  # no reader: opening it for writing fails (ENXIO)
    dog = Watchdog(path, timeout=2, clock=lambda: now[0])
    with pytest.raises(WatchdogError, match="cannot open"):
        dog.follow(103.0)
    assert dog.unfit() == dog.problem and dog.problem is not None
    missing = Watchdog(tmp_path / "absent", timeout=2, clock=lambda: now[0])
    assert "No such file or directory (load softdog" in (missing.unfit() or "")


def test_the_fence_drives_the_watchdog(tmp_path: Path) -> None:
    """Armed and pinged as the lease moves on, closed when the fence fires or disarms, and
    when the agent stops; a deadline the watchdog cannot be armed for does not move."""
    now = [100.0]
    path = tmp_path / "watchdog"
    device = Device(path)
    stopped: list[float] = []
    dog = Watchdog(path, timeout=2, clock=lambda: now[0])
    fence = Fence(lambda: stopped.append(now[0]), clock=lambda: now[0], watchdog=dog)
    fence.allow_until(103.0)
    now[0] = 100.5
    fence.allow_until(103.5)
    assert device.read() == b"11"
    now[0] = 103.2  # nobody renewed: the fence fires, PostgreSQL stops, then the close
    assert fence.check() and stopped == [103.2]
    assert device.read() == b"V" and not armed(dog)
    nobody = Watchdog(tmp_path / "absent", timeout=2, clock=lambda: now[0])
    other = Fence(lambda: None, clock=lambda: now[0], watchdog=nobody)
    with pytest.raises(WatchdogError):
        other.allow_until(106.0)
    assert other.until is None
    fence.allow_until(106.0)
    assert device.read() == b"1"
    fence.close()
    assert device.read() == b"V"
