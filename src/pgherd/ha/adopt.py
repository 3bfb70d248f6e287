"""The agent adopts a PostgreSQL it did not make (physical/adopt.py decided what changes).

The order matters: pgherd's peer rule must be in pg_hba.conf, and the server reloaded,
before pgherd can connect to it (over its own socket: it runs with the operator's
``unix_socket_directories`` until a restart); a restart happens only when the server says
a changed setting needs one, and the log names them. The agent restarts it as its own
child (the supervisor), so that from then on it watches and fences it like any other.
"""

from __future__ import annotations

import logging

from pgherd.ha.supervisor import Supervisor
from pgherd.pg.local_node import LocalNode
from pgherd.physical import adopt

log = logging.getLogger("pgherd.bootstrap")


def carry_out(local: LocalNode, supervisor: Supervisor, adoption: adopt.Adoption) -> str:
    """Adopt the node's data; returns the sentence that sums it up."""
    for change in adoption.changes:
        log.info(
            "adopt: %s %s → %s (%s%s)",
            change.name,
            change.old or "(unset)",
            change.new,
            change.via,
            ", needs a restart" if change.restart else "",
        )
    adopt.write_files(local, adoption)
    if adoption.running_pid is not None:
        if supervisor.pid is None:
            supervisor.adopt()
        adopt.reload(adoption.running_pid)
        instance = adopt.running_instance(local, adoption)
    else:
        supervisor.start()  # with pgherd's settings already in its files
        instance = local.instance
    for sentence in adopt.apply_sql(local, instance, adoption):
        log.info("adopt: %s", sentence)
    pending = adopt.pending_restart(instance, adoption.changes)
    if pending:
        log.info("adopt: restarting PostgreSQL: %s need a restart", ", ".join(pending))
        supervisor.stop("fast")
        supervisor.start()
    elif adoption.running_pid is not None:
        log.info("adopt: no restart needed (the changed settings took effect on reload)")
    restarted = f", restarted for {', '.join(pending)}" if pending else ", not restarted"
    return (
        f"adopted {local.node.data_dir} (system identifier {adoption.system_identifier}): "
        f"{len(adoption.changes)} settings changed{restarted}; pgherd's pg_hba block added "
        f"above the operator's {adoption.hba_kept} rules"
    )
