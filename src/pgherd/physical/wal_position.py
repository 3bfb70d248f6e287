"""Where this node's WAL ends and which timeline history it holds (for follow and rejoin).

Read from SQL when the server runs, else from pg_controldata and the history files in
pg_wal, which are there whether the server runs or not.
"""

from __future__ import annotations

from pgherd.errors import PgherdError
from pgherd.model.node_ops import NodeWal, timeline_at
from pgherd.model.status import Role
from pgherd.model.timeline import History, parse_history
from pgherd.pg import queries, replication
from pgherd.pg.controldata import ControlData
from pgherd.pg.local_node import LocalNode

CLEAN_PRIMARY = "shut down"
CLEAN_STANDBY = "shut down in recovery"
REWOUND = "in archive recovery"  # the state pg_rewind leaves in the control file


def rewound_not_started(local: LocalNode, cluster_state: str) -> bool:
    """pg_rewind left its backup_label (the server renames it when recovery starts) and
    a control file that says archive recovery."""
    if cluster_state != REWOUND:
        return False
    try:
        label = (local.node.data_dir / "backup_label").read_text()
    except OSError:
        return False
    return "BACKUP METHOD: pg_rewind" in label


def newest_history(local: LocalNode) -> tuple[int, str]:
    """The newest timeline that has a history file in pg_wal, and the file's text."""
    wal = local.node.data_dir / "pg_wal"
    newest = 1
    for path in wal.glob("*.history"):
        stem = path.name.removesuffix(".history")
        if len(stem) == 8:
            try:
                newest = max(newest, int(stem, 16))
            except ValueError:
                continue
    if newest == 1:
        return 1, ""
    return newest, (wal / f"{newest:08X}.history").read_text()


def read(local: LocalNode, running: bool) -> NodeWal:
    control = local.instance.controldata()
    history_tli, history_text = newest_history(local)
    history = parse_history(history_tli, history_text)
    base = {
        "name": local.node.name,
        "cluster_state": control.cluster_state,
        "history_timeline": history_tli,
        "history": history_text,
        "rewindable": rewindable(control),
    }
    if running:
        try:
            with local.instance.connect() as conn:
                server = queries.server_state(conn)
        except PgherdError:
            running = False
        else:
            if server.in_recovery:
                return _running_standby(local, server, history, control, base)
            return NodeWal(
                **base,
                running=True,
                role=Role.PRIMARY,
                timeline=server.timeline,
                lsn=server.current_lsn,
            )
    return _stopped(local, control, history, base)


def _running_standby(
    local: LocalNode,
    server: queries.ServerState,
    history: History,
    control: ControlData,
    base: dict[str, object],
) -> NodeWal:
    """A running standby's replay position, and the timeline it is on when that is known.

    Streaming, the wal receiver says which timeline it receives. Otherwise a position
    past a switch point in the history the standby knows is ambiguous: it may have
    switched there, or it may have replayed its old timeline further (diverged). The
    standby's own walsender settles that (IDENTIFY_SYSTEM answers with the replay
    timeline); only if it cannot be asked does it stay unknown until the standby is shut
    down and its control file read, as pg_rewind reads it.
    """
    replayed = server.replay_lsn
    receiver = server.wal_receiver
    fields: dict[str, object] = {**base, "running": True, "role": Role.STANDBY}
    if replayed is None:
        return NodeWal(
            **fields, timeline=control.timeline, lsn=None, unknown="it has replayed nothing yet"
        )
    if receiver is not None and receiver.status == "streaming" and receiver.received_tli:
        return NodeWal(**fields, timeline=receiver.received_tli, lsn=replayed)
    if not history.switches or replayed <= history.switches[0].lsn:
        return NodeWal(**fields, timeline=timeline_at(history, replayed), lsn=replayed)
    try:
        replaying = replication.replay_timeline(local.instance.conninfo())
    except PgherdError:
        pass
    else:
        return NodeWal(**fields, timeline=replaying, lsn=replayed)
    return NodeWal(
        **fields,
        timeline=timeline_at(history, replayed),
        lsn=None,
        unknown=(
            f"it is not streaming, and whether its replay (at {replayed}) took the switch to "
            "a later timeline is unknown until it is shut down"
        ),
    )


def _stopped(
    local: LocalNode, control: ControlData, history: History, base: dict[str, object]
) -> NodeWal:
    standby = local.instance.standby_configured or control.in_recovery
    role = Role.STANDBY if standby else Role.PRIMARY
    state = control.cluster_state
    if state == CLEAN_PRIMARY:
        # Nothing follows the shutdown checkpoint record that starts here.
        return NodeWal(
            **base,
            running=False,
            role=role,
            timeline=control.timeline,
            lsn=control.checkpoint_lsn,
            exact=False,
        )
    if state == CLEAN_STANDBY:
        # As pg_rewind reckons: the checkpoint record, or the minimum recovery point if
        # replay had gone further.
        minimum = control.min_recovery_end_lsn
        if minimum > control.checkpoint_lsn:
            tli = max(control.min_recovery_end_timeline, control.timeline)
            return NodeWal(**base, running=False, role=role, timeline=tli, lsn=minimum)
        return NodeWal(
            **base,
            running=False,
            role=role,
            timeline=control.timeline,
            lsn=control.checkpoint_lsn,
            exact=False,
        )
    if rewound_not_started(local, state):
        # pg_rewind is done and the server has not started since (the rejoin stopped
        # before it): its WAL is the source's up to the minimum recovery point pg_rewind
        # set. Rewinding it again would first run crash recovery in single-user mode,
        # which writes a checkpoint record of its own on the source's timeline.
        return NodeWal(
            **base,
            running=False,
            role=role,
            timeline=control.min_recovery_end_timeline,
            lsn=control.min_recovery_end_lsn,
        )
    # Crashed or killed: only crash recovery finds where its WAL ends.
    return NodeWal(
        **base,
        running=False,
        role=role,
        timeline=control.timeline,
        lsn=None,
        unknown=f"it was not shut down cleanly (state {state!r})",
    )


def rewindable(control: ControlData) -> bool:
    """pg_rewind needs hint bits WAL-logged: data checksums or wal_log_hints."""
    return control.data_checksums or control.wal_log_hints
