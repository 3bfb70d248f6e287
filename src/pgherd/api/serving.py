"""How an agent serves its API: HTTPS with its member certificate unless ``tls: off``."""

from __future__ import annotations

import ssl
from typing import Any

from pgherd.config import ClusterConfig
from pgherd.errors import ConfigError


def uvicorn_tls(config: ClusterConfig, member: str) -> dict[str, Any]:
    """uvicorn's TLS settings for ``member``'s API; ``{}`` (plain HTTP) with ``tls: off``.

    With ``tls.client_certs`` a client may present a certificate, which must then be one
    the cluster CA signed (agents present theirs when they call each other); a client
    without one (the CLI, a load balancer) still gets in with its credential.
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
    wanted = ssl.CERT_OPTIONAL if config.tls_settings.client_certs else ssl.CERT_NONE
    return {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_ca_certs": str(config.ca_file),
        "ssl_cert_reqs": wanted,
    }
