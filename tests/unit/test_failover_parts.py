"""The pieces of automatic failover that need no server: the ha: config and its timing
rule, lab layouts with a store, the cluster state in the store, events in the store,
check-ins, the fence, the synchronous setting and the load-balancer endpoints."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgherd import config
from pgherd.config import EtcdDcs, SqliteDcs
from pgherd.dcs import checkin as checkin_mod
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Member, StoreUnavailable
from pgherd.dcs.checkin import CheckIn
from pgherd.dcs.memory import MemoryStore
from pgherd.dcs.state import ClusterState, Pause, SyncState
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import ConfigError, InvalidInput, Refused
from pgherd.ha import observe
from pgherd.ha.execute import Executor, LeaseWhileWaiting
from pgherd.ha.fence import Fence
from pgherd.ha.loop import HaLoop, settings_of
from pgherd.ha.supervisor import Supervisor
from pgherd.ha.sync import server_quorum
from pgherd.lab import layout
from pgherd.model.events import Event, Outcome
from pgherd.model.ha import Action, Do, Peer
from pgherd.model.ha_settings import Mode, Settings
from pgherd.model.lsn import Lsn
from pgherd.model.status import PgState, Role
from pgherd.ops import pause
from pgherd.pg.local_node import LocalNode
from tests.unit.fake_ha import FakeClock, executor_on

LAB = Path("/var/tmp/pgherd-lab")


def raw(**top: Any) -> dict[str, Any]:
    return {
        "cluster": "lab",
        "passfile": "/var/tmp/lab/secrets/pgpass",
        "api_token_file": "/var/tmp/lab/secrets/api-token",
        "nodes": [
            {"name": "node1", "port": 5441, "api_port": 6441, "data_dir": "/var/tmp/lab/n1/data"},
            {
                "name": "node2",
                "port": 5442,
                "api_port": 6442,
                "data_dir": "/var/tmp/lab/n2/data",
                "nofailover": True,
            },
        ],
        **top,
    }


# ---- config -------------------------------------------------------------------------


def test_an_ha_section_parses_into_typed_settings() -> None:
    parsed = config.parse(
        raw(
            failover="automatic",
            ha={"dcs": {"etcd": ["https://10.0.0.1:2379", "https://10.0.0.2:2379/"]}, "ttl": 10},
        )
    )
    assert parsed.automatic
    assert parsed.ha is not None and isinstance(parsed.ha.dcs, EtcdDcs)
    assert parsed.ha.ttl == 10 and parsed.ha.loop_wait == 0.5
    assert parsed.node("node2").nofailover
    assert config.parse(yaml.safe_load(config.dump(parsed))) == parsed


def test_the_ha_section_is_what_decide_takes() -> None:
    """Its defaults are decide()'s, and every field they share reaches the settings."""
    section = {"dcs": {"sqlite": "/var/tmp/lab/store.sqlite"}}
    default = config.parse(raw(failover="automatic", ha=section))
    assert default.ha is not None
    assert default.ha.settings(Mode.AUTOMATIC) == Settings()
    tuned = {
        "ttl": 20.0,
        "loop_wait": 2.0,
        "retry_timeout": 4.0,
        "maximum_lag": 1024,
        "primary_start_timeout": 30.0,
        "synchronous": True,
        "synchronous_quorum": 2,
        "failsafe": True,
    }
    parsed = config.parse(raw(failover="automatic", ha=section | tuned))
    assert parsed.ha is not None
    assert parsed.ha.settings(Mode.MANUAL) == Settings(
        mode=Mode.MANUAL,
        ttl=20.0,
        loop_wait=2.0,
        retry_timeout=4.0,
        maximum_lag=1024,
        primary_start_timeout=30.0,
        synchronous=True,
        sync_quorum=2,
        failsafe=True,
    )


@pytest.mark.parametrize(
    ("top", "says"),
    [
        (
            {"failover": "automatic", "ha": {"dcs": {"sqlite": "/x/dcs"}, "ttl": 2}},
            "ha: ttl (2 s) must be at least loop_wait + 2 × retry_timeout (0.5 + 2 × 1 = 2.5 s)",
        ),
        (
            {"ha": {"dcs": {"sqlite": "/x"}, "ttl": 30, "loop_wait": 10, "retry_timeout": 10.5}},
            "loop_wait + 2 × retry_timeout (10 + 2 × 10.5 = 31 s)",
        ),
        ({"failover": "automatic"}, "failover: automatic needs an ha: section"),
        (
            {
                "failover": "automatic",
                "topology": "independent",
                "ha": {"dcs": {"sqlite": "/x"}},
            },
            "cannot be used with topology: independent",
        ),
        (
            {"witnesses": [{"name": "w", "api_port": 7000, "home": "/var/tmp/w"}]},
            "witnesses take part in the coordination store",
        ),
        (
            {
                "ha": {"dcs": {"sqlite": "/x"}},
                "witnesses": [{"name": "node1", "api_port": 7000, "home": "/var/tmp/w"}],
            },
            "two nodes share the node name node1",
        ),
        (
            {
                "ha": {"dcs": {"sqlite": "/x"}},
                "witnesses": [{"name": "w", "api_port": 6441, "home": "/var/tmp/w"}],
            },
            "agent API address 127.0.0.1:6441",
        ),
        ({"ha": {"dcs": {"etcd": []}}}, "ha.dcs"),
        ({"ha": {"dcs": {"etcd": ["10.0.0.1:2379"]}}}, "ha.dcs"),
    ],
)
def test_bad_ha_settings_are_one_line_errors(top: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(raw(**top))
    line = caught.value.one_line()
    assert says in line
    assert "\n" not in line


# ---- labs ---------------------------------------------------------------------------


def test_an_automatic_lab_keeps_its_store_in_its_directory() -> None:
    lab = layout.lab_config(LAB, layout.LabShape(3, 5440, "postgres", None, failover="automatic"))
    assert lab.automatic and lab.ha is not None
    assert lab.ha.dcs == SqliteDcs(sqlite=LAB / "dcs.sqlite")
    assert not lab.ha.synchronous and lab.witnesses == ()
    assert layout.lab_etcd(lab) == []


def test_an_etcd_lab_with_a_witness_runs_an_etcd_member_per_host() -> None:
    lab = layout.lab_config(
        LAB,
        layout.LabShape(
            2, 5440, "postgres", None, failover="automatic", dcs="etcd", sync=True, witness=True
        ),
    )
    assert lab.ha is not None and lab.ha.synchronous
    tls = LAB / "secrets" / "tls"
    assert lab.ha.dcs == EtcdDcs(
        etcd=("https://127.0.0.1:7440", "https://127.0.0.1:7441", "https://127.0.0.1:7442"),
        cert=tls / "dcs-client.crt",
        key=tls / "dcs-client.key",
    )
    assert layout.lab_etcd(lab) == [
        ("etcd1", 7440, 8440),
        ("etcd2", 7441, 8441),
        ("etcd3", 7442, 8442),
    ]
    (witness,) = lab.witnesses
    assert (witness.name, witness.api_port, witness.home) == ("witness", 6442, LAB / "witness")
    wanted = {what for _, _, what in layout.wanted_ports(lab)}
    assert {"witness agent API", "etcd3 etcd", "etcd3 etcd peer"} <= wanted


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"failover": "automatic", "independent": True}, "cannot be combined"),
        (
            {"failover": "manual", "sync": True},
            "--sync, --witness and --failsafe need automatic failover",
        ),
        ({"failover": "automatic", "dcs": "zookeeper"}, "--dcs 'zookeeper' is not a store"),
        ({"failover": "sometimes"}, "--failover 'sometimes' is not a mode"),
    ],
)
def test_lab_options_that_do_not_fit_are_refused(kw: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        layout.lab_config(LAB, layout.LabShape(3, 5440, "postgres", None, **kw))


def test_an_etcd_lab_needs_room_for_its_ports() -> None:
    with pytest.raises(InvalidInput, match="outside 1024-65535"):
        layout.lab_config(
            LAB, layout.LabShape(3, 63000, "postgres", None, failover="automatic", dcs="etcd")
        )
    layout.lab_config(LAB, layout.LabShape(3, 63000, "postgres", None, failover="automatic"))


# ---- the cluster state in the store --------------------------------------------------


def test_the_cluster_state_is_changed_by_compare_and_set() -> None:
    store = MemoryStore()
    assert dcs_state.parse(store.config()) == ClusterState()
    sync = SyncState(leader="node1", members=("node2",), quorum=1)
    dcs_state.update(store, lambda s: s.model_copy(update={"sync": sync}))
    dcs_state.update(store, lambda s: s.model_copy(update={"last_leader": "node1"}))
    state = dcs_state.parse(store.config())
    assert state.sync == sync and state.last_leader == "node1"
    # an unchanged state is not written again
    version = store.config()
    dcs_state.update(store, lambda s: s)
    assert store.config() == version


def test_a_value_from_elsewhere_reads_as_the_empty_state() -> None:
    store = MemoryStore()
    assert store.set_config("{not json", 0)
    assert dcs_state.parse(store.config()) == ClusterState()


def test_a_pause_ends_by_itself() -> None:
    state = ClusterState(pause=Pause(reason="switchover", until=1000.0))
    assert state.paused(now=999.0) == "switchover"
    assert state.paused(now=1000.5) is None


def test_an_operation_pauses_failover_and_lifts_the_pause(tmp_path: Path) -> None:
    lab = layout.lab_config(
        tmp_path, layout.LabShape(2, 5440, "postgres", None, failover="automatic")
    )
    with pause.paused(lab, "switchover to node2", 60) as store:
        assert store is not None
        assert dcs_state.parse(store.config()).paused() == "switchover to node2"
        with (
            pytest.raises(Refused, match="paused by another operation"),
            pause.paused(lab, "promotion of node2", 60),
        ):
            pass
    with pause.paused(lab, "check", 60) as again:
        assert again is not None
    manual = layout.lab_config(tmp_path, layout.LabShape(2, 5440, "postgres", None))
    with pause.paused(manual, "x", 60) as nothing:
        assert nothing is None


def test_the_lease_is_handed_to_the_new_primary(tmp_path: Path) -> None:
    lab = layout.lab_config(
        tmp_path, layout.LabShape(2, 5440, "postgres", None, failover="automatic")
    )
    from pgherd.dcs.open import open_store

    store = open_store(lab)
    assert store.acquire_leader("node1", 30)
    # The new primary's HA loop takes the free lease; here a second client plays it.
    other = open_store(lab)

    def take() -> None:
        while not other.acquire_leader("node2", 30):
            time.sleep(0.02)

    thread = threading.Thread(target=take)
    thread.start()
    assert pause.hand_over(store, lab, "node2", timeout=5) == "node2 holds the leader lease"
    thread.join()


# ---- events in the store ------------------------------------------------------------


def test_events_in_the_store_show_each_operation_once_with_its_last_state() -> None:
    log = StoreEventLog(MemoryStore())
    first = Event(operation="failover", node="node2", requested_by="pgherd-agent@node2")
    log.save(first)
    log.save(first.finish(Outcome.SUCCEEDED, "the lease expired"))
    second = Event(operation="rejoin", node="node1")
    log.save(second)
    found = log.recent()
    assert [(e.operation, e.outcome) for e in found] == [
        ("failover", Outcome.SUCCEEDED),
        ("rejoin", Outcome.RUNNING),
    ]
    assert log.recent(limit=1) == [second]


# ---- check-ins ----------------------------------------------------------------------


def member(name: str, **kw: Any) -> Member:
    values: dict[str, Any] = {"name": name, "api_url": "http://x", "at": time.time()}
    values.update(kw)
    return Member(name, CheckIn(**values).model_dump_json())


def test_peers_come_from_fresh_check_ins_and_stale_ones_are_unreachable() -> None:
    lab = layout.lab_config(LAB, layout.LabShape(3, 5440, "postgres", None, failover="automatic"))
    members = (
        member("node1", state=PgState.RUNNING, role=Role.PRIMARY, position=Lsn(900), leader=True),
        member("node2", state=PgState.RUNNING, role=Role.STANDBY, position=Lsn(800)),
        member("node3", at=time.time() - 60),
        Member("garbage", "{"),
    )
    store = MemoryStore()
    for m in members:
        store.touch_member(m.name, m.data, 300)
    view = observe.StoreView(True, store.snapshot())
    world = observe.world(lab, "node2", view, None, fresh_within=3.0)
    by = {p.name: p for p in world.peers}
    assert set(by) == {"node1", "node3"}
    assert by["node1"].reachable and by["node1"].role is Role.PRIMARY
    assert not by["node3"].reachable
    assert world.last_primary_position == Lsn(900)
    assert checkin_mod.checkins(members).keys() == {"node1", "node2", "node3"}


def test_an_unreachable_store_gives_an_empty_world() -> None:
    lab = layout.lab_config(LAB, layout.LabShape(2, 5440, "postgres", None, failover="automatic"))
    world = observe.world(lab, "node1", observe.StoreView(False, problem="x"), None, 3.0)
    assert not world.store_ok and world.leader is None and world.paused is None


# ---- the fence ----------------------------------------------------------------------


def test_the_fence_stops_postgres_before_the_lease_can_expire() -> None:
    """...and publishes the moment it would fire to the keeper, which holds PostgreSQL
    to it when the agent is gone: always the same as the fence's own."""
    now = [100.0]
    stopped: list[float] = []
    published: list[float | None] = []
    fence = Fence(
        lambda: stopped.append(now[0]),
        margin=0.3,
        clock=lambda: now[0],
        publish=published.append,
    )
    assert not fence.check()  # disarmed: nothing to fence
    fence.allow_until(103.0)
    assert published == [pytest.approx(102.7)]
    now[0] = 102.6
    assert not fence.check()
    now[0] = 102.7
    assert fence.check()
    assert stopped == [102.7]
    assert published[-1] is None  # fired: like the fence, the keeper holds nothing now
    assert not fence.check()  # once
    fence.allow_until(110.0)
    assert published[-1] == pytest.approx(109.7)
    fence.disarm()
    assert published[-1] is None
    now[0] = 200.0
    assert not fence.check()
    fence.allow_until(300.0)
    fence.close()  # the agent stops: what was published stays for the keeper
    assert published[-1] == pytest.approx(299.7)


class _StoreThatStops(MemoryStore):
    """Answers the cycle's read, then stops answering, as etcd stopped (SIGSTOP) between
    a cycle's read and its renewal; counts the calls made after that."""

    def __init__(self) -> None:
        super().__init__()
        self.calls_after_stop = 0

    def renew_leader(self, name: str, ttl: float) -> bool:
        self.calls_after_stop += 1
        raise StoreUnavailable("no etcd endpoint answered: 127.0.0.1: ReadTimeout")

    def touch_member(self, name: str, data: str, ttl: float) -> None:
        self.calls_after_stop += 1
        raise StoreUnavailable("no etcd endpoint answered: 127.0.0.1: ReadTimeout")


class _Primary:
    """This node's PostgreSQL, as a reader of it would find it: a running primary."""

    def read(self) -> observe.LocalState:
        return observe.LocalState(PgState.RUNNING, Role.PRIMARY, timeline=1)


class _Standbys:
    """The peers' agents: every other member answers, as a standby."""

    def __init__(self, *names: str) -> None:
        self.peers = tuple(
            Peer(name, reachable=True, pg=PgState.RUNNING, role=Role.STANDBY) for name in names
        )
        self.asked = 0

    def read(self) -> tuple[Peer, ...]:
        self.asked += 1
        return self.peers


class _NeverDiverged:
    def diverged(self, leader: str, running: bool = True) -> bool:
        raise AssertionError("a primary never compares its WAL with a leader's")


def test_a_store_lost_during_the_renewal_is_met_by_failsafe_in_the_same_cycle() -> None:
    """The renewal fails after its full timeout; the next cycle's read would wait as long
    again, and the fence fires at the old lease's end before that cycle is over (the e2e
    failsafe test met this now and then). The cycle that lost the store asks the peers at
    once, makes no more store calls, and failsafe extends the fence."""
    cfg = layout.lab_config(
        LAB,
        layout.LabShape(
            3, 25000, "postgres", None, failover="automatic", dcs="etcd", failsafe=True
        ),
    )
    assert cfg.ha is not None
    local = LocalNode.open(cfg, "node1")
    stopped: list[float] = []
    published: list[float | None] = []
    fence = Fence(lambda: stopped.append(time.monotonic()), publish=published.append)
    store = _StoreThatStops()
    assert store.acquire_leader("node1", 3.0)
    supervisor = Supervisor(local.instance, auto_restart=False)  # never started here
    settings = settings_of(cfg)
    executor = Executor(
        local, supervisor, settings, "token", fence, threading.Lock(), lambda: store
    )
    peers = _Standbys("node2", "node3")
    loop = HaLoop(cfg, local, executor, _Primary(), peers, lambda: store, _NeverDiverged())
    lease_end = time.monotonic() + 1.0  # renewed two seconds ago
    executor.lease.valid_until = lease_end
    fence.allow_until(lease_end)

    actions = loop.cycle()

    assert [a.do for a in actions] == [Do.RENEW_LEASE]
    assert store.calls_after_stop == 1  # the renewal; no check-in that would wait again
    assert peers.asked == 1  # once the store was lost, not before
    assert fence.until is not None
    assert fence.until >= lease_end + cfg.ha.ttl - 1.0
    assert published[-1] == pytest.approx(fence.until - fence.margin)  # the keeper's moment
    assert not stopped


# ---- synchronous_standby_names ------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "quorum"),
    [
        ("", 0),
        ('ANY 2 ("node2", "node3")', 2),
        ("any 1 (a)", 1),
        ("node2, node3", 1),
        ("2 (a, b)", 2),
    ],
)
def test_how_many_standbys_a_commit_waits_for(names: str, quorum: int) -> None:
    assert server_quorum(names) == quorum


def test_a_promotion_keeps_the_lease_renewed_while_it_waits() -> None:
    """A promotion on a loaded machine took longer than the lease (restore_command runs for
    every timeline history it looks for): the fence fired half-way and every member was
    left a standby (the fault suite found it). While the executor waits for PostgreSQL to
    leave recovery, the lease is renewed every loop_wait, as the cycles would have."""
    clock = FakeClock(100.0)
    store = MemoryStore(clock=clock.monotonic)
    published: list[float | None] = []
    fence = Fence(lambda: None, clock=clock.monotonic, publish=published.append)
    executor = executor_on(clock, store, fence)
    assert executor.perform(Action(Do.ACQUIRE_LEASE, "take it"), primary_ahead=True)
    assert executor.lease.valid_until == 103.0 and fence.until == 103.0
    waiting = LeaseWhileWaiting(executor, every=0.5)
    clock.at = 100.4
    waiting.tick()  # not yet a cycle's time
    assert executor.lease.valid_until == 103.0
    clock.at = 102.5  # past what the first lease would have allowed the fence
    waiting.tick()
    assert executor.lease.valid_until == 105.5 and fence.until == 105.5
    assert published[-1] == pytest.approx(105.2)
    assert executor.least_left == pytest.approx(0.5)  # what pgherd_lease_left_min_seconds says
    store.release_leader("node1")
    assert store.acquire_leader("node2", 3.0)
    clock.at = 103.1
    with pytest.raises(Refused, match="another member holds it"):
        waiting.tick()  # the wait ends; the fence keeps its deadline
    assert not executor.lease.held()
    assert fence.until == 105.5
