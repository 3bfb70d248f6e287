"""Talking to agents: the only way the CLI reaches a node.

Plain ``http.client`` from the standard library: the CLI starts in a fraction of the time
it takes with httpx (0.2 s of imports here). This module imports no pydantic either: the
quick commands (``cluster show``, ``standby clone``) read statuses as
:class:`~pgherd.model.status_lite.LiteStatus` (:func:`lite_statuses`), and the pydantic
models are imported only by the methods that return them. With the cluster's TLS on
(``node.api_ca``), HTTPS: the agent must show a certificate the cluster CA signed for the
address dialled (the SSL context is built once per CA file: pgherd.tls.context).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from pgherd.clients.credential import Credential, token_of
from pgherd.config_lite import AgentMember, LiteConfig, read_token_file
from pgherd.errors import AgentError, AgentUnreachable, Refused
from pgherd.model.status_lite import LiteStatus, lite_unreachable, read_status
from pgherd.tls.context import client_context

if TYPE_CHECKING:
    from pgherd.config import ClusterConfig
    from pgherd.model.doctor import NodeFacts
    from pgherd.model.ha_report import HaReport
    from pgherd.model.reload import ReloadReport
    from pgherd.model.status import NodeStatus

T = TypeVar("T")


ItemT = TypeVar("ItemT")


class AgentClient:
    # (certificate, key) this process presents to agents that ask for one (tls.client_certs):
    # an agent sets its own node's pair at start-up; the CLI presents none.
    client_cert: tuple[Path, Path] | None = None
    # The credential this process sends when a call names none (reads, which need one under
    # api.auth_reads): an agent's own node token, the console's, the CLI's viewer token.
    default_token: Credential | None = None

    def __init__(
        self,
        node: AgentMember,
        token: Credential | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.node = node
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        """Send one request; returns the HTTP status and the decoded JSON body."""
        status, raw = self.request_raw(method, path, timeout, params, body)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = {"error": raw.decode(errors="replace").strip()}
        return status, data

    def request_raw(
        self,
        method: str,
        path: str,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
        body: Any = None,
        accept: str = "application/json",
    ) -> tuple[int, bytes]:
        """Send one request; returns the HTTP status and the body as it came."""
        headers = {"Accept": accept}
        token = token_of(self.token if self.token is not None else AgentClient.default_token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if params:
            path = f"{path}?{urlencode(params)}"
        conn = self._connection(timeout or self.timeout)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except ssl.SSLCertVerificationError as exc:
            raise AgentError(
                f"the agent of {self.node.name} at {self.node.api_url} is not who it should "
                f"be: {exc.verify_message}",
                "its certificate must be signed by the cluster CA for that address "
                "(pgherd secrets init issues them)",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnreachable(
                f"the agent of {self.node.name} at {self.node.api_url} did not answer "
                f"({type(exc).__name__}: {exc})",
                f"is it running? start it with `pgherd agent run --node {self.node.name}`",
            ) from None
        finally:
            conn.close()
        return response.status, raw

    def metrics(self, timeout: float | None = None) -> str:
        """``GET /metrics``: the Prometheus page (docs/metrics.md), as text."""
        status, raw = self.request_raw("GET", "/metrics", timeout, accept="text/plain")
        if status != 200:
            raise AgentError(
                f"{self.node.name}: /metrics answered HTTP {status}", "see the agent's log"
            )
        return raw.decode()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        node = self.node
        if node.api_ca is None:
            return http.client.HTTPConnection(node.api_host, node.api_port, timeout=timeout)
        context = client_context(node.api_ca, *(self.client_cert or (None, None)))
        return http.client.HTTPSConnection(
            node.api_host, node.api_port, timeout=timeout, context=context
        )

    def _request(self, method: str, path: str, timeout: float | None = None, **kw: Any) -> Any:
        status, data = self.request(method, path, timeout, **kw)
        if status >= 400:
            raise _error_from(self.node.name, status, data)
        return data

    def call(self, method: str, path: str, timeout: float | None = None, **kw: Any) -> Any:
        """One request; the decoded JSON body, or the agent's error raised as ours."""
        return self._request(method, path, timeout, **kw)

    def healthy(self, timeout: float = 2.0) -> tuple[bool, str]:
        """Whether the node's PostgreSQL runs, as ``GET /health`` says, and its state."""
        status, data = self.request("GET", "/health", timeout)
        state = data.get("state", "?") if isinstance(data, dict) else "?"
        return status == 200, str(state)

    def status(self) -> NodeStatus:
        from pgherd.model.status import NodeStatus  # pydantic: not on the quick commands' path

        return NodeStatus.model_validate(self._request("GET", "/status"))

    def lite_status(self) -> LiteStatus:
        """``GET /status`` without pydantic, for the quick commands."""
        try:
            return read_status(self._request("GET", "/status"))
        except ValueError as exc:
            raise AgentError(
                f"{self.node.name}: the agent's status could not be read ({exc})",
                "is the agent a different pgherd version? upgrade both to the same one",
            ) from None

    def ha(self, timeout: float | None = None) -> HaReport:
        """The agent's HA loop (under manual failover: only the mode and the state)."""
        from pgherd.model.ha_report import HaReport  # pydantic: not on the quick path

        return HaReport.model_validate(self._request("GET", "/ha", timeout))

    def facts(self) -> NodeFacts:
        from pgherd.model.doctor import NodeFacts  # pydantic: not on the quick commands' path

        return NodeFacts.model_validate(self._request("GET", "/facts"))

    def start_postgres(self, timeout: float = 90) -> NodeStatus:
        from pgherd.model.status import NodeStatus

        return NodeStatus.model_validate(self._request("POST", "/postgres/start", timeout))

    def stop_postgres(self, mode: str = "fast", timeout: float = 90) -> NodeStatus:
        from pgherd.model.status import NodeStatus

        return NodeStatus.model_validate(
            self._request("POST", "/postgres/stop", timeout, params={"mode": mode})
        )

    def restart_postgres(self, timeout: float = 150) -> NodeStatus:
        from pgherd.model.status import NodeStatus

        return NodeStatus.model_validate(self._request("POST", "/postgres/restart", timeout))

    def reload(self, timeout: float = 60) -> ReloadReport:
        """The agent reads pgherd.yaml again (as on SIGHUP) and says what changed."""
        from pgherd.model.reload import ReloadReport  # pydantic: not on the quick path

        return ReloadReport.model_validate(self._request("POST", "/agent/reload", timeout))


def _error_from(node: str, status: int, body: Any) -> Exception:
    detail = body.get("detail", body) if isinstance(body, dict) else {}
    if isinstance(detail, dict):
        message, hint = detail.get("error"), detail.get("hint", "")
    else:  # FastAPI's validation errors: a list of problems
        message, hint = str(detail), ""
    text = f"{node}: {message or f'HTTP {status}'}"
    if status == 409:
        return Refused(text, hint)
    return AgentError(text, hint or f"HTTP {status} from the agent of {node}")


def fan_out(nodes: Sequence[ItemT], call: Callable[[ItemT], T]) -> list[T]:
    """``call`` for every node at once, a thread each; results in the nodes' order. Once
    every call ended, the exception of the first node (in order) that raised one is raised.

    Plain threads, not concurrent.futures: its import (logging with it) costs ~10 ms of
    every quick command's start-up."""
    return fanned_out(nodes, call)()


def fanned_out(nodes: Sequence[ItemT], call: Callable[[ItemT], T]) -> Callable[[], list[T]]:
    """:func:`fan_out` begun: the threads start now, and the function returned waits for
    them and gives what :func:`fan_out` gives, for a caller with work of its own to do
    while the nodes answer."""
    results: dict[int, T] = {}
    errors: dict[int, BaseException] = {}

    def one(index: int, node: ItemT) -> None:
        try:
            results[index] = call(node)
        except BaseException as exc:  # raised again in the caller's thread
            errors[index] = exc

    threads = [
        threading.Thread(target=one, args=(i, node), daemon=True) for i, node in enumerate(nodes)
    ]
    for thread in threads:
        thread.start()

    def wait() -> list[T]:
        for thread in threads:
            thread.join()
        if errors:
            raise errors[min(errors)]
        return [results[i] for i in range(len(nodes))]

    return wait


def statuses(nodes: Sequence[AgentMember], timeout: float = 3.0) -> list[NodeStatus]:
    """Every node's status; a node whose agent does not answer is marked unreachable."""
    from pgherd.model.status import unreachable

    def one(node: AgentMember) -> NodeStatus:
        try:
            return AgentClient(node, timeout=timeout).status()
        except (AgentUnreachable, AgentError) as exc:
            return unreachable(node.name, exc.message)

    return fan_out(nodes, one)


def lite_statuses(nodes: Sequence[AgentMember], timeout: float = 3.0) -> list[LiteStatus]:
    """:func:`statuses` for the quick commands: the same, read without pydantic."""
    return asked_lite_statuses(nodes, timeout)()


def asked_lite_statuses(
    nodes: Sequence[AgentMember], timeout: float = 3.0
) -> Callable[[], list[LiteStatus]]:
    """:func:`lite_statuses` begun (:func:`fanned_out`): the function returned waits for
    the answers."""

    def one(node: AgentMember) -> LiteStatus:
        try:
            return AgentClient(node, timeout=timeout).lite_status()
        except (AgentUnreachable, AgentError) as exc:
            return lite_unreachable(node.name, exc.message)

    return fanned_out(nodes, one)


def read_as_viewer(config: ClusterConfig | LiteConfig) -> None:
    """When the agents ask every read for a credential (``api.auth_reads``), this process
    reads as the viewer if it may read that token (least privilege), else as the operator
    (``$PGHERD_API_TOKEN`` or the token file): the CLI, its quick commands and ``lab up``
    call this."""
    if not config.api.auth_reads:
        return
    try:
        viewer = config.viewer_token_file.read_text().strip()
    except OSError:
        viewer = ""
    AgentClient.default_token = viewer or read_token_file(config.api_token_file)
