"""How the etcd store sends its requests to etcd's JSON gateway: POST a JSON body, get the
HTTP status and the answer's bytes.

Two ways, one contract. :class:`PooledTransport` (httpx: kept-alive connections, safe to
share between threads) serves the agents, which talk to etcd every HA cycle for as long
as they run. :class:`OneShotTransport` (the standard library's http.client) serves the
quick commands (``cluster show``, ``cluster events``), which make two or three requests
and exit: importing httpx alone takes them ~0.15 s. It keeps its connection to an
endpoint for the command's next request (``cluster show``'s three requests cost one TCP
connection and one TLS handshake, not three).

Both verify an ``https://`` endpoint the same way: ``verify`` is the SSL context the store
was given (the CA that signs etcd's certificates and, for etcd's ``--client-cert-auth``,
the client's certificate: :func:`pgherd.dcs.open.etcd_verify`), or True for the system's
CAs.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("pgherd.dcs")


class TransportError(Exception):
    """The endpoint did not answer (refused, timed out, cut off, or not who it should be
    over TLS); the text names how."""


class Transport(Protocol):
    def post(
        self,
        url: str,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """POST ``body`` as JSON (with ``headers``: etcd's auth token); the HTTP status and
        the answer, within ``timeout`` seconds (default: the transport's). Raises
        :class:`TransportError` when the endpoint did not answer."""
        ...

    def close(self) -> None: ...


def _endpoint(url: str) -> str:
    """The endpoint (scheme, host and port) a request's URL goes to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class PooledTransport:
    """httpx, kept-alive connections: for a store used for long.

    **Warm connections.** Given ``endpoints``, a thread keeps a connection open to each of
    them, so that a call moving to another endpoint when its preferred one does not
    answer pays no TCP and TLS handshake inside its share of ``retry_timeout``
    (model/store_budget.py): a lost SYN alone costs a second, longer than that share. It
    opens them at once with ``GET /version`` (answered by the member itself: no Raft, no
    read of the key space), then:

    - a connection is never closed for being idle (etcd does not close idle ones either);
    - an endpoint whose request failed has lost its connection (httpx closes it): the
      thread opens a new one ``rewarm`` seconds later, and again every ``rewarm`` seconds
      until it answers;
    - an endpoint no request used for ``idle_ping`` seconds gets a ``GET /version``, which
      proves its connection still works (a path cut silently leaves it looking open) or
      replaces it off the calls' path.

    So a healthy store sees no extra request while its endpoints are used, and otherwise
    at most one ``GET /version`` per idle endpoint every ``idle_ping`` seconds (10 s: with
    three endpoints and ``loop_wait`` 0.5 s, 0.1 per HA cycle, independent of the
    cluster's size), none of them through Raft.

    **One deadline per request.** httpx limits each phase of a request (connect, TLS,
    write, read) separately; a hook on httpcore's ``trace`` extension sets every phase's
    limit to what is left of the request's ``timeout`` as the phase starts, so a new
    connection's handshake and the answer's wait share one limit instead of getting one
    each. (It relies on httpcore 1.0 reading a phase's limit after announcing the phase;
    were that to change, each phase would again get the whole ``timeout``. Within the
    answer's phase, each read may wait what was left when the phase started: etcd's
    answers come in one or two segments.)

    ``connects`` counts the TCP connections opened, by endpoint (tests, and what an
    operator reads in a debugger)."""

    def __init__(
        self,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
        endpoints: Sequence[str] = (),
        rewarm: float = 1.0,
        idle_ping: float = 10.0,
    ) -> None:
        import httpx  # only the agents' long-lived stores need it (~0.15 s to import)

        self._httpx = httpx
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=timeout, verify=verify, limits=httpx.Limits(keepalive_expiry=None)
        )
        self.connects: dict[str, int] = {}
        self._lock = threading.Lock()
        # endpoint → (monotonic time of its last request, whether it answered)
        self._last: dict[str, tuple[float, bool]] = {
            _endpoint(e): (-math.inf, False) for e in endpoints
        }
        self._rewarm = rewarm
        self._idle_ping = idle_ping
        self._stop = threading.Event()
        self._warmer: threading.Thread | None = None
        if self._last:
            self._warmer = threading.Thread(
                target=self._keep_warm, name="pgherd-etcd-warm", daemon=True
            )
            self._warmer.start()

    def post(
        self,
        url: str,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        return self._send("POST", url, body, headers, self.timeout if timeout is None else timeout)

    def _send(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        headers: Mapping[str, str] | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        endpoint = _endpoint(url)
        deadline = time.monotonic() + timeout
        phases = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete":
                with self._lock:
                    self.connects[endpoint] = self.connects.get(endpoint, 0) + 1
            if event.endswith(".started"):
                left = max(deadline - time.monotonic(), 0.001)
                for phase in phases:  # read by the next phases of the request
                    phases[phase] = left
                if "timeout" in info:  # the TLS handshake's limit, read after this hook
                    info["timeout"] = left

        request = self._client.build_request(
            method, url, json=body, headers=headers, extensions={"timeout": phases, "trace": trace}
        )
        try:
            response = self._client.send(request)
        except self._httpx.HTTPError as exc:
            self._note(endpoint, answered=False)
            raise TransportError(type(exc).__name__) from None
        self._note(endpoint, answered=True)
        return response.status_code, response.content

    def _note(self, endpoint: str, answered: bool) -> None:
        with self._lock:
            if endpoint in self._last:
                self._last[endpoint] = (time.monotonic(), answered)

    def due(self, now: float) -> list[str]:
        """The endpoints whose connection the warming thread opens or checks now."""
        with self._lock:
            return [
                endpoint
                for endpoint, (at, answered) in self._last.items()
                if now - at >= (self._idle_ping if answered else self._rewarm)
            ]

    def _keep_warm(self) -> None:
        while not self._stop.is_set():
            for endpoint in self.due(time.monotonic()):
                if self._stop.is_set():
                    return
                if self._client.is_closed:
                    return
                try:
                    self._send("GET", f"{endpoint}/version", None, None, self.timeout)
                except TransportError:
                    pass  # noted: tried again in ``rewarm`` seconds
                except Exception as exc:  # a helper thread: never dies of one endpoint
                    log.debug("keeping %s's connection open: %r", endpoint, exc)
            self._stop.wait(min(self._rewarm, self._idle_ping) / 2)

    def close(self) -> None:
        """Closes every connection; the warming thread stops (not waited for: a request of
        its own to a member that does not answer ends with the closed client)."""
        self._stop.set()
        self._client.close()


class OneShotTransport:
    """http.client, for a command's few calls from one thread: one connection per endpoint,
    kept while the server keeps it (HTTP/1.1 keep-alive), closed by :meth:`close`.

    A kept connection the server closed meanwhile fails the next request before any answer
    arrives (``RemoteDisconnected``, a reset, a broken pipe): that request is sent again
    once, on a new connection, as connection pools do; etcd never saw it."""

    def __init__(self, timeout: float, verify: ssl.SSLContext | bool = True) -> None:
        self.timeout = timeout
        # http.client verifies with the system's CAs when given no context, as httpx does
        # for verify=True; an explicit False (never pgherd's own choice) turns it off.
        if isinstance(verify, ssl.SSLContext):
            self._context: ssl.SSLContext | None = verify
        elif verify:
            self._context = None
        else:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self._kept: dict[tuple[str, str, int | None], http.client.HTTPConnection] = {}

    def post(
        self,
        url: str,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        limit = self.timeout if timeout is None else timeout
        parts = urlsplit(url)
        if parts.hostname is None:
            raise TransportError(f"no host in {url}")
        endpoint = (parts.scheme, parts.hostname, parts.port)
        request = (
            parts.path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )
        conn = self._kept.pop(endpoint, None)
        if conn is not None:
            if conn.sock is not None:
                conn.sock.settimeout(limit)
            try:
                return self._exchange(endpoint, conn, *request)
            except (ConnectionResetError, BrokenPipeError):  # RemoteDisconnected is one
                pass  # the server closed it while it was kept: a new connection
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(type(exc).__name__) from None
        try:
            return self._exchange(endpoint, self._connect(endpoint, limit), *request)
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(type(exc).__name__) from None

    def _connect(
        self, endpoint: tuple[str, str, int | None], timeout: float
    ) -> http.client.HTTPConnection:
        scheme, host, port = endpoint
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _exchange(
        self,
        endpoint: tuple[str, str, int | None],
        conn: http.client.HTTPConnection,
        path: str,
        payload: bytes,
        headers: dict[str, str],
    ) -> tuple[int, bytes]:
        """One request on ``conn``; kept for the next one unless the server closes it."""
        try:
            conn.request("POST", path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._kept[endpoint] = conn
        return response.status, raw

    def close(self) -> None:
        for conn in self._kept.values():
            conn.close()
        self._kept.clear()
