"""``pgherd node check NODE``: reads what ``model/nagios.py`` judges, through the agents.

Every agent's status at once (a standby's lag is measured against the primary, as in
``cluster show``), and the node's archiver when it runs as a primary.
"""

from __future__ import annotations

from pgherd.clients.agent import statuses
from pgherd.clients.archive import ArchiveAgentClient
from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.model import cluster as cluster_model
from pgherd.model import nagios
from pgherd.model.status import PgState, Role


def check_node(config: ClusterConfig, node: str, limits: nagios.Thresholds) -> nagios.CheckResult:
    found = statuses(config.nodes)

    def node_at(host: str | None, port: int | None) -> str | None:
        at = config.node_at(host, port)
        return at.name if at else None

    view = cluster_model.view(found, node_at, config.independent)
    index = config.node_names.index(node)
    status = found[index]
    row = next((r for r in view.rows if r.name == status.name), None)
    archive = None
    if status.state is PgState.RUNNING and status.role is Role.PRIMARY:
        try:
            state = ArchiveAgentClient(config.node(node), timeout=5).archiver()
        except PgherdError:
            state = None
        if state is not None:
            archive = nagios.ArchiveFacts(
                mode=state.archive_mode,
                failed_count=state.failed_count,
                ready_count=state.ready_count,
                last_failed=state.last_failed_time,
                last_archived=state.last_archived_time,
            )
    return nagios.check(status, row, archive, limits)
