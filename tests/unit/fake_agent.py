"""A fake agent for the API tests: it implements AgentPort, records what it was asked and
fails when told to. PostgreSQL itself is not faked anywhere: these tests are about HTTP."""

from __future__ import annotations

from pgherd.model.doctor import NodeFacts
from pgherd.model.lsn import Lsn
from pgherd.model.status import Desired, NodeStatus, PgState, ReplicationRow, Role

TOKEN = "t0ken-for-tests"


class FakeAgent:
    """An AgentPort that records what it was asked and fails when told to."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.state = PgState.RUNNING
        self.calls: list[str] = []
        self.fail_with: Exception | None = None

    def status(self) -> NodeStatus:
        return NodeStatus(
            name="node1",
            state=self.state,
            desired=Desired.RUNNING if self.state is PgState.RUNNING else Desired.STOPPED,
            role=Role.PRIMARY,
            pid=4242 if self.state is PgState.RUNNING else None,
            version_num=150018,
            system_identifier="7642011472967116994",
            timeline=1,
            current_lsn=Lsn.parse("0/3000148"),
            replication=(
                ReplicationRow(
                    application_name="node2",
                    client_addr="127.0.0.1",
                    state="streaming",
                    sent_lsn=Lsn.parse("0/3000148"),
                    write_lsn=Lsn.parse("0/3000148"),
                    flush_lsn=Lsn.parse("0/3000148"),
                    replay_lsn=Lsn.parse("0/3000100"),
                    write_lag_s=0.001,
                    flush_lag_s=0.001,
                    replay_lag_s=0.002,
                    sync_state="async",
                ),
            ),
        )

    def facts(self) -> NodeFacts:
        return NodeFacts(
            name="node1",
            os_user="postgres",
            data_dir="/var/tmp/lab/node1/data",
            data_dir_exists=True,
            data_dir_mode=0o700,
            settings={"wal_level": "logical"},
        )

    def _act(self, what: str, state: PgState) -> None:
        self.calls.append(what)
        if self.fail_with is not None:
            raise self.fail_with
        self.state = state

    def start_postgres(self) -> None:
        self._act("start", PgState.RUNNING)

    def stop_postgres(self, mode: str) -> None:
        self._act(f"stop {mode}", PgState.STOPPED)

    def restart_postgres(self) -> None:
        self._act("restart", PgState.RUNNING)
