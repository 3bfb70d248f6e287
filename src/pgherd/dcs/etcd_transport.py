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
import ssl
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit


class TransportError(Exception):
    """The endpoint did not answer (refused, timed out, cut off, or not who it should be
    over TLS); the text names how."""


class Transport(Protocol):
    def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST ``body`` as JSON (with ``headers``: etcd's auth token); the HTTP status and
        the answer. Raises :class:`TransportError` when the endpoint did not answer."""
        ...

    def close(self) -> None: ...


class PooledTransport:
    def __init__(self, timeout: float, verify: ssl.SSLContext | bool = True) -> None:
        import httpx  # only the agents' long-lived stores need it (~0.15 s to import)

        self._httpx = httpx
        self._client = httpx.Client(timeout=timeout, verify=verify)

    def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        try:
            response = self._client.post(url, json=body, headers=headers)
        except self._httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__) from None
        return response.status_code, response.content

    def close(self) -> None:
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
        self, url: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
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
            try:
                return self._exchange(endpoint, conn, *request)
            except (ConnectionResetError, BrokenPipeError):  # RemoteDisconnected is one
                pass  # the server closed it while it was kept: a new connection
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(type(exc).__name__) from None
        try:
            return self._exchange(endpoint, self._connect(endpoint), *request)
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(type(exc).__name__) from None

    def _connect(self, endpoint: tuple[str, str, int | None]) -> http.client.HTTPConnection:
        scheme, host, port = endpoint
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._context
            )
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

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
