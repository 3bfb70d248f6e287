"""How the etcd store sends its requests to etcd's JSON gateway: POST a JSON body, get the
HTTP status and the answer's bytes.

Two ways, one contract. :class:`PooledTransport` (httpx: kept-alive connections, safe to
share between threads) serves the agents, which talk to etcd every HA cycle for as long
as they run. :class:`OneShotTransport` (the standard library's http.client, a connection
per request) serves the quick commands (``cluster show``, ``cluster events``), which make
two or three requests and exit: importing httpx alone takes them ~0.15 s.

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

    def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise TransportError(f"no host in {url}")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        payload = json.dumps(body).encode()
        try:
            conn.request(
                "POST",
                parts.path,
                body=payload,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(type(exc).__name__) from None
        finally:
            conn.close()
        return response.status, raw

    def close(self) -> None:
        pass
