"""The cluster's secret files, one module per kind: the passfile (the roles' passwords),
the agents' API token — and, added beside them, whatever else a cluster keeps secret (a
cluster CA and per-node certificates).

A kind names its files in pgherd.yaml's terms and generates their contents;
:func:`pgherd.credentials.files.init` writes every kind's missing files once, mode 0600,
owned by the PostgreSQL OS user, and never replaces one without ``force``
(``pgherd secrets init [--force]``). The same files are then copied to every host
(docs/deploy.md): the passwords and the token must be the same everywhere.
"""

from __future__ import annotations

from pgherd.credentials import api_roles, api_token, passfile, tls
from pgherd.credentials.files import Kind

# In this order: the API roles' grants carry the digest of the token written before them.
KINDS: tuple[Kind, ...] = (passfile.KIND, api_token.KIND, api_roles.KIND, tls.KIND)
