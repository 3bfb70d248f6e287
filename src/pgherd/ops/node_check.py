"""``pgherd node check NODE``: reads what ``model/nagios.py`` judges, through the agents.

Every agent's status at once (a standby's lag is measured against the primary, as in
``cluster show``), and the node's archiver when it runs as a primary. Monitoring systems
run it every minute or so, on every node: it is a quick command (cli/quick), so the
statuses are read as LiteStatus and the archiver's answer as plain JSON (the fields of
pg/archive_sql.ArchiverState it judges; tests/unit/test_node_check.py reads what that
model wrote).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pgherd.clients.agent import AgentClient, lite_statuses
from pgherd.config_lite import LiteConfig, as_lite
from pgherd.errors import PgherdError
from pgherd.model import cluster as cluster_model
from pgherd.model import nagios
from pgherd.model.json_values import integer, mapping, optional, text
from pgherd.model.status_lite import PgState, Role

if TYPE_CHECKING:
    from pgherd.config import ClusterConfig


def check_node(
    config: ClusterConfig | LiteConfig, node: str, limits: nagios.Thresholds
) -> nagios.CheckResult:
    config = as_lite(config)
    found = lite_statuses(config.nodes)

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
            archive = archive_facts(
                AgentClient(config.node(node), timeout=5).call("GET", "/archiver")
            )
        except (PgherdError, ValueError):
            archive = None
    return nagios.check(status, row, archive, limits)


def archive_facts(doc: object) -> nagios.ArchiveFacts:
    """``GET /archiver``'s answer, as the check judges it; ValueError when it is not one."""
    try:
        data = mapping(doc)
        return nagios.ArchiveFacts(
            mode=text(data["archive_mode"]),
            failed_count=integer(data["failed_count"]),
            ready_count=integer(data["ready_count"]),
            last_failed=optional(data, "last_failed_time", _time),
            last_archived=optional(data, "last_archived_time", _time),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an archiver's state: {exc}") from None


def _time(value: object) -> datetime:
    return datetime.fromisoformat(text(value))
