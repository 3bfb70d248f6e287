"""How an agent serves its API: HTTPS with its member certificate unless ``tls: off``;
with ``tls.client_certs``, the certificate a client presented reaches the guard.

uvicorn (0.55) verifies a client certificate against the CA but does not give it to the
application: the ASGI TLS extension (``scope["extensions"]["tls"]``) is not implemented
yet (Kludex/uvicorn#1119, #2586, #3132 open). So the agent serves through
:class:`TlsScopeProtocol`, uvicorn's own h11 protocol that, once a connection's TLS
handshake is done, adds that extension to every request's scope from the connection's
``ssl_object`` (``client_cert_chain``: the verified client certificate, PEM; Python 3.11
gives the leaf only, as the spec allows). Once uvicorn fills it itself, the subclass goes
and the guard (api/guard.py) reads the same key.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from pgherd.config import ClusterConfig
from pgherd.errors import ConfigError

TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def uvicorn_tls(config: ClusterConfig, member: str) -> dict[str, Any]:
    """uvicorn's TLS settings for ``member``'s API; ``{}`` (plain HTTP) with ``tls: off``.

    With ``tls.client_certs`` a client may present a certificate, which must then be one
    the cluster CA signed (agents present theirs when they call each other); a client
    without one (the CLI, a load balancer) still gets in with its credential, but a node's
    credential counts only with that node's certificate (api/guard.py).
    """
    if config.ca_file is None:
        return {}
    cert, key = config.cert_files(member)
    for path in (config.ca_file, cert, key):
        if not path.is_file():
            raise ConfigError(
                f"TLS is on but {path} is missing",
                "create the cluster's certificates with `pgherd secrets init` (or set tls: off)",
            )
    client_certs = config.tls_settings.client_certs
    served: dict[str, Any] = {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_ca_certs": str(config.ca_file),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL if client_certs else ssl.CERT_NONE,
    }
    if client_certs:
        served["http"] = TlsScopeProtocol
    return served


def tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, object] | None:
    """The ASGI TLS extension's entry for a connection (None: not TLS)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    return {
        "server_cert": None,  # Python's ssl module cannot give it back
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,  # a certificate that fails verification ends the handshake
        "tls_version": TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
    }


class TlsScopeProtocol(H11Protocol):
    """uvicorn's h11 protocol, with the ASGI TLS extension in every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        extension = tls_extension(transport.get_extra_info("ssl_object"))
        if extension is None:
            return
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = extension
            await app(scope, receive, send)

        self.app = with_tls
