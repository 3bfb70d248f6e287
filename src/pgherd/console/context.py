"""What every route of the console shares: the :class:`Console` (config, sessions, the
cluster state cache, jobs, templates), kept apart from ``app.py`` so that the routers
(``pages.py``, ``posts.py``) and the application that includes them import it, not each
other."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pgherd.config import ClusterConfig
from pgherd.console import state
from pgherd.console.forms import table_value
from pgherd.console.jobs import Job, Jobs
from pgherd.console.sessions import Session, Sessions
from pgherd.console.throttle import Failures
from pgherd.errors import PgherdError
from pgherd.model.events import Event, Outcome
from pgherd.model.readable import human_bytes, human_seconds
from pgherd.ops.context import Operation
from pgherd.ops.events import event_log

TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger("pgherd.console")


@dataclass
class Console:
    """Everything the routes share."""

    config: ClusterConfig
    token: str
    sessions: Sessions
    cache: state.StateCache
    jobs: Jobs
    templates: Jinja2Templates
    https: bool = False
    failures: Failures = field(default_factory=Failures)

    def audit(self, what: str, user: str, address: str, outcome: Outcome, reason: str) -> None:
        """A console action (a login, a logout) as a cluster event, written off the
        request's path; a log that cannot be reached loses it, said in the console's log."""
        event = Event(
            operation=f"console {what}",
            node="-",
            requested_by=f"{user[:64]}@console from {address}",
        ).finish(outcome, reason)

        def write() -> None:
            try:
                event_log(self.config, self.token).save(event)
            except PgherdError as exc:
                log.warning("audit: console %s by %s not recorded: %s", what, user, exc.one_line())

        threading.Thread(target=write, name="console-audit", daemon=True).start()

    def operation(self, user: str, job: Job | None = None) -> Operation:
        """An operation as the CLI runs it, recorded as asked by ``user`` on the console,
        where the CLI records it (the store under automatic failover: ops/events.py)."""
        op = Operation(
            config=self.config,
            token=self.token,
            events=event_log(self.config, self.token),
            requested_by=f"{user}@console",
        )
        if job is not None:
            op.reporter = job
        return op

    def render(
        self, request: Request, template: str, session: Session | None, **context: Any
    ) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request,
            template,
            {
                "session": session,
                "cluster": self.config.cluster,
                "nodes": self.config.node_names,
                "archive": self.config.archive is not None,
                **context,
            },
        )


def _local_time(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value).astimezone()
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=str(TEMPLATES))
    found.env.filters["bytes"] = human_bytes
    found.env.filters["seconds"] = human_seconds
    found.env.filters["time"] = _local_time
    found.env.globals["table_value"] = table_value
    return found
