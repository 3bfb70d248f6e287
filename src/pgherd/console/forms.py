"""Console forms → the same requests the CLI builds, with the same rules.

Form bodies are ``application/x-www-form-urlencoded`` (htmx's default) and parsed with the
standard library, so the console needs no multipart package. Every check is the CLI's:
``model.publication.build_spec`` and ``logical.source.subscription_spec``; the agent
checks the rest, as it does for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from pgherd.config import ClusterConfig
from pgherd.errors import InvalidInput
from pgherd.logical.source import subscription_spec
from pgherd.model.names import QualifiedName
from pgherd.model.publication import PUBLISH_OPERATIONS, PublicationSpec, build_spec
from pgherd.model.subscription import SubscriptionSpec

MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Form:
    """A decoded form: every value of every field, in order."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, body: bytes) -> Form:
        if len(body) > MAX_BODY:
            raise InvalidInput("the form is too large", "send less")
        text = body.decode("utf-8", errors="replace")
        return cls(tuple(parse_qsl(text, keep_blank_values=True)))

    def get(self, key: str, default: str = "") -> str:
        for k, v in self.pairs:
            if k == key:
                return v.strip()
        return default

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]

    def flag(self, key: str) -> bool:
        return self.get(key) in ("on", "true", "1", "yes")

    def lines(self, key: str) -> list[str]:
        return [line.strip() for line in self.get(key).splitlines() if line.strip()]


def table_value(schema: str, name: str) -> str:
    """How a table checkbox names its table: quoted as ``--tables`` reads it."""
    return QualifiedName(schema, name).short


def publication(form: Form) -> tuple[str, PublicationSpec]:
    """(node, spec) from the create-publication form."""
    node = form.get("node")
    if not node:
        raise InvalidInput("choose the publishing node", "pick a node in the form")
    chosen = [t for t in form.all("table") if t.strip()]
    typed = form.get("tables")
    tables = ",".join([*chosen, typed] if typed else chosen) or None
    preset = form.get("preset") or None
    publish = None
    if preset == "custom":
        preset = None
        ops = [op for op in PUBLISH_OPERATIONS if op in form.all("publish")]
        publish = ",".join(ops) if ops else ""
    schemas = [s.strip() for s in form.get("schemas").split(",") if s.strip()]
    return node, build_spec(
        form.get("name"),
        dbname=form.get("dbname") or "postgres",
        tables=tables,
        all_tables=form.flag("all_tables"),
        schemas=schemas,
        publish=publish,
        preset=preset,
        row_filters=form.lines("row_filters"),
        columns=form.lines("columns"),
    )


def subscription(config: ClusterConfig, form: Form) -> tuple[str, SubscriptionSpec]:
    """(node, spec) from the create-subscription form."""
    node = form.get("node")
    if not node:
        raise InvalidInput("choose the subscribing node", "pick a node in the form")
    source = form.get("source")
    if source == "uri":
        source = form.get("uri")
    if not source:
        raise InvalidInput("say where to subscribe from", "pick a node or give a libpq URI")
    publications = [form.get("publications")] if form.get("publications") else []
    if not publications:
        raise InvalidInput("no publication given", "name the publication(s) to receive")
    return node, subscription_spec(
        config,
        node,
        form.get("name"),
        source,
        publications,
        copy_data=form.flag("copy_data"),
        sync_schema=form.flag("sync_schema"),
        enabled=True,
        dbname=form.get("dbname") or "postgres",
        source_dbname=form.get("source_dbname") or None,
    )
