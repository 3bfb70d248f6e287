"""How the etcd store sends its requests to etcd's JSON gateway: POST a JSON body, get the
HTTP status and the answer's bytes.

Two ways, one contract. :class:`PooledTransport` (httpx: kept-alive connections, safe to
share between threads) serves the agents, which talk to etcd every HA cycle for as long
as they run. :class:`OneShotTransport` (the standard library's http.client, a connection
per request) serves the quick commands (``cluster show``, ``cluster events``), which make
two or three requests and exit: importing httpx alone takes them ~0.15 s.
"""

from __future__ import annotations

import http.client
import json
from typing import Any, Protocol
from urllib.parse import urlsplit


class TransportError(Exception):
    """The endpoint did not answer (refused, timed out, cut off); the text names how."""


class Transport(Protocol):
    def post(self, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """POST ``body`` as JSON; the HTTP status and the answer. Raises
        :class:`TransportError` when the endpoint did not answer."""
        ...

    def close(self) -> None: ...


class PooledTransport:
    def __init__(self, timeout: float) -> None:
        import httpx  # only the agents' long-lived stores need it (~0.15 s to import)

        self._httpx = httpx
        self._client = httpx.Client(timeout=timeout)

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
        try:
            response = self._client.post(url, json=body)
        except self._httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__) from None
        return response.status_code, response.content

    def close(self) -> None:
        self._client.close()


class OneShotTransport:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise TransportError(f"no host in {url}")
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = kind(parts.hostname, parts.port, timeout=self.timeout)
        payload = json.dumps(body).encode()
        try:
            conn.request(
                "POST", parts.path, body=payload, headers={"Content-Type": "application/json"}
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
