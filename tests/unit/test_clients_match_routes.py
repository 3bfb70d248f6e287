"""The agents' clients (``pgherd/clients``) and the routes they call (``api/``) cannot drift.

The routes are read from the agent's own application (``api.app.agent_app``, the one the
agent serves) through its OpenAPI description; the clients' calls are read from their
source (each ``_request``/``call``/``request`` with a literal method and path). For every
call: the route exists with that method, the query parameters and JSON body fields it sends
are the route's (every required one included), and where the route answers with a model
the client reads the answer with that very model. Every route is called by a client, save
the load-balancer checks, which HAProxy calls.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from pydantic import BaseModel

import pgherd.clients
from pgherd.api.app import agent_app
from pgherd.ha.history_store import HistoryStore
from pgherd.lab import layout
from pgherd.model.ha_report import HaReport
from pgherd.model.ha_settings import Mode
from pgherd.model.reload import ReloadReport
from pgherd.model.serving import Serving
from pgherd.model.status import NodeStatus, PgState, Role
from pgherd.pg.archive_sql import WalSwitch
from pgherd.pg.local_node import LocalNode
from tests.unit.fake_agent import FakeAgent
from tests.unit.test_ops_api import FakeOperations
from tests.unit.test_routes_mesh import FakeMesh

CLIENTS = Path(pgherd.clients.__file__).parent


class _Reloader:
    def reload(self) -> ReloadReport:
        return ReloadReport(
            node="node1", unchanged=True, fingerprint_before="", fingerprint="", file_fingerprint=""
        )


CALLS = {"_request", "request", "call"}
# Readers of an answer without pydantic (the quick commands'), each standing for the model
# whose fields it reads (held equal by tests/unit/test_status_lite.py, test_wal_switch.py).
LITE_READERS: dict[str, type[BaseModel]] = {"read_status": NodeStatus, "read_wal_switch": WalSwitch}
# Called by load balancers (docs/haproxy.md), not by pgherd.
FOR_OTHER_TOOLS = {
    ("GET", "/primary"),
    ("GET", "/read-write"),
    ("GET", "/replica"),
    ("GET", "/read-only"),
    ("GET", "/liveness"),
    ("GET", "/readiness"),
    ("GET", "/failsafe"),
    ("GET", "/quorum"),
    # Patroni's documents, for tools written for Patroni (docs/haproxy.md)
    ("GET", "/cluster"),
    ("GET", "/history"),
    # Prometheus (docs/metrics.md); clients.agent.AgentClient.metrics reads it as text
    ("GET", "/metrics"),
}
# The only answers that are not a model, and why.
FREE_FORM = {
    ("GET", "/health"): "its status code (200 or 503) is the answer, for service managers",
    ("GET", "/primary"): "a load-balancer check: the status code is the answer",
    ("GET", "/replica"): "a load-balancer check: the status code is the answer",
    ("GET", "/read-only"): "a load-balancer check: the status code is the answer",
    ("GET", "/read-write"): "a load-balancer check: the status code is the answer",
    ("GET", "/liveness"): "a load-balancer check: the status code is the answer",
    ("GET", "/readiness"): "a load-balancer check: the status code is the answer",
    ("GET", "/failsafe"): "a load-balancer check: the status code is the answer",
    ("GET", "/quorum"): "a load-balancer check: the status code is the answer",
    ("GET", "/cluster"): "Patroni's /cluster document, in Patroni's shape",
    ("GET", "/history"): "Patroni's /history: lists of [timeline, lsn, reason]",
    ("GET", "/metrics"): "Prometheus's text format, not JSON",
}


class _Agent(FakeAgent):
    """The fake agent, with the load-balancer port too (never called here)."""

    def serving(self) -> Serving:
        return Serving(PgState.RUNNING, Role.PRIMARY, may_write=True, streaming=False)

    def ha_state(self) -> HaReport:
        return HaReport(mode=Mode.MANUAL, state=PgState.RUNNING)

    def members(self) -> dict[str, Any]:
        return {"scope": "lab", "members": []}

    def timeline_history(self) -> list[list[Any]]:
        return []

    def failsafe_state(self) -> tuple[bool, dict[str, Any]]:
        return False, {}

    def quorum_state(self) -> tuple[bool, dict[str, Any]]:
        return False, {}

    def cycle_now(self) -> None:
        pass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    query: dict[str, bool]  # name: required
    body: dict[str, Any] | None  # the JSON schema of the body
    answer: dict[str, Any]  # the JSON schema of a 200 answer


@dataclass
class Call:
    where: str  # module.Class.method, for the failure message
    method: str
    path: str
    query_keys: set[str] | None = None  # None: no params= given
    body_keys: set[str] | None = None  # the keys of a dict body
    body_model: type[BaseModel] | None = None  # a model sent as the body
    reads: set[type[BaseModel]] = field(default_factory=set)  # models validated


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _schema(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    found: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def _routes(tmp_path: Path) -> dict[tuple[str, str], Route]:
    config = layout.lab_config(
        Path("/var/tmp/pgherd-lab"), layout.LabShape(2, 5440, "postgres", None)
    )
    local = LocalNode.open(config, "node1")
    history = HistoryStore(tmp_path / "history.sqlite", "node1")
    agent = _Agent()
    app = agent_app(
        agent, None, FakeMesh(), local, FakeOperations(), history, 5.0, _Reloader(), agent, []
    )
    spec = app.openapi()
    routes = {}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            query = {
                p["name"]: bool(p.get("required"))
                for p in op.get("parameters", [])
                if p["in"] == "query"
            }
            content = op.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            answer = op["responses"].get("200", {}).get("content", {})
            answer = answer.get("application/json", {}).get("schema", {})
            routes[(method.upper(), _template(path))] = Route(
                method.upper(),
                path,
                query,
                None if body is None else _schema(spec, body),
                answer,
            )
    return routes


def _keys(expr: ast.expr, function: ast.FunctionDef) -> set[str] | None:
    """The string keys of a dict built in ``expr`` (a literal, ``a | b`` of literals, or a
    name assigned such a dict in ``function`` and then given more keys by subscript)."""
    if isinstance(expr, ast.Name):
        found: set[str] = set()
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == expr.id for t in node.targets
            ):
                keys = _keys(node.value, function)
                if keys is None:
                    return None
                found |= keys
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.targets[0].value, ast.Name)
                and node.targets[0].value.id == expr.id
                and isinstance(node.targets[0].slice, ast.Constant)
            ):
                found.add(str(node.targets[0].slice.value))
        return found
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        left, right = _keys(expr.left, function), _keys(expr.right, function)
        return None if left is None or right is None else left | right
    if isinstance(expr, ast.IfExp):
        body, orelse = _keys(expr.body, function), _keys(expr.orelse, function)
        return None if body is None or orelse is None else body | orelse
    if isinstance(expr, ast.Dict):
        if any(k is None or not isinstance(k, ast.Constant) for k in expr.keys):
            return None  # **spread or a computed key: cannot be checked here
        return {str(k.value) for k in expr.keys if isinstance(k, ast.Constant)}
    return None


def _sent_model(expr: ast.expr, function: ast.FunctionDef, hints: dict[str, Any]) -> Any:
    """``x.model_dump(...)`` for a parameter ``x: Model``: that model."""
    if isinstance(expr, ast.Name):
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == expr.id for t in node.targets
            ):
                return _sent_model(node.value, function, hints)
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "model_dump"
        and isinstance(expr.func.value, ast.Name)
    ):
        return hints.get(expr.func.value.id)
    return None


def _checking_names(tree: ast.Module) -> dict[str, Any]:
    """What a module imports under ``if TYPE_CHECKING:`` (the agents' client imports its
    pydantic models only inside the methods that use them: the quick commands' start-up),
    for resolving its annotations here."""
    names: dict[str, Any] = {}
    for block in tree.body:
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING":
            for statement in block.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    imported = importlib.import_module(statement.module)
                    for alias in statement.names:
                        names[alias.asname or alias.name] = getattr(imported, alias.name)
    return names


def _calls() -> Iterator[Call]:
    for source in sorted(CLIENTS.glob("*.py")):
        module = importlib.import_module(f"pgherd.clients.{source.stem}")
        tree = ast.parse(source.read_text())
        names = vars(module) | _checking_names(tree)
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for function in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
                hints = get_type_hints(
                    getattr(getattr(module, cls.name), function.name),
                    localns=names,
                )
                reads = {
                    names[n.func.value.id]
                    for n in ast.walk(function)
                    if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and n.func.attr == "model_validate"
                    and isinstance(n.func.value, ast.Name)
                } | {
                    LITE_READERS[n.func.id]
                    for n in ast.walk(function)
                    if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Name)
                    and n.func.id in LITE_READERS
                }
                for node in ast.walk(function):
                    if not (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr in CALLS
                        and len(node.args) >= 2
                        and isinstance(node.args[0], ast.Constant)
                    ):
                        continue
                    path = node.args[1]
                    if isinstance(path, ast.JoinedStr):
                        text = "".join(
                            str(v.value) if isinstance(v, ast.Constant) else "{}"
                            for v in path.values
                        )
                    elif isinstance(path, ast.Constant):
                        text = str(path.value)
                    else:
                        continue  # the generic transport itself (a path passed in)
                    call = Call(
                        f"{source.stem}.{cls.name}.{function.name}",
                        str(node.args[0].value),
                        text,
                        reads=reads,
                    )
                    for kw in node.keywords:
                        if kw.arg == "params":
                            call.query_keys = _keys(kw.value, function)
                            assert call.query_keys is not None, f"{call.where}: params= unread"
                        if kw.arg == "body":
                            call.body_model = _sent_model(kw.value, function, hints)
                            if call.body_model is None:
                                call.body_keys = _keys(kw.value, function)
                                assert call.body_keys is not None, f"{call.where}: body unread"
                    yield call


def _component_names(model: type[BaseModel]) -> set[str]:
    """The names FastAPI gives a model's schema (qualified when two models share one)."""
    return {model.__name__, f"{model.__module__}.{model.__qualname__}".replace(".", "__")}


def _answer_models(answer: dict[str, Any]) -> set[str]:
    if answer.get("type") == "array":
        answer = answer.get("items", {})
    ref = answer.get("$ref")
    return set() if ref is None else {ref.rsplit("/", 1)[1]}


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Route]:
    return _routes(tmp_path_factory.mktemp("routes"))


CALLED = list(_calls())


def test_the_clients_are_read_from_their_source() -> None:
    assert len(CALLED) >= 40  # a broken reader would find none and pass the rest


@pytest.mark.parametrize("call", CALLED, ids=lambda c: f"{c.method} {c.path}")
def test_each_call_matches_its_route(call: Call, routes: dict[tuple[str, str], Route]) -> None:
    route = routes.get((call.method, _template(call.path)))
    assert route is not None, f"{call.where}: no route {call.method} {call.path}"
    sent = call.query_keys or set()
    assert sent <= set(route.query), f"{call.where}: sends {sent - set(route.query)}"
    required = {name for name, needed in route.query.items() if needed}
    assert required <= sent, f"{call.where}: leaves out {required - sent}"
    if route.body is None:
        assert call.body_keys is None and call.body_model is None, f"{call.where}: a body?"
    elif call.body_model is not None:
        assert route.body.get("title") == call.body_model.__name__, (
            f"{call.where}: sends {call.body_model.__name__}, the route takes "
            f"{route.body.get('title')}"
        )
    else:
        fields = set(route.body.get("properties", {}))
        needed = set(route.body.get("required", []))
        keys = call.body_keys or set()
        assert keys <= fields, f"{call.where}: sends {keys - fields}, not in {fields}"
        assert needed <= keys, f"{call.where}: leaves out {needed - keys}"
    wanted = _answer_models(route.answer)
    if wanted:
        read = set().union(*(_component_names(m) for m in call.reads))
        assert wanted <= read, f"{call.where}: answered with {wanted}, reads {call.reads}"


def test_every_route_has_a_client(routes: dict[tuple[str, str], Route]) -> None:
    called = {(c.method, _template(c.path)) for c in CALLED}
    others = {(m, _template(p)) for m, p in FOR_OTHER_TOOLS}
    missing = sorted(f"{r.method} {r.path}" for k, r in routes.items() if k not in called | others)
    assert not missing, f"routes no client calls: {missing}"


def test_every_other_route_answers_with_a_model(routes: dict[tuple[str, str], Route]) -> None:
    untyped = {key for key, route in routes.items() if not _answer_models(route.answer)}
    assert untyped == set(FREE_FORM), "answer with a model (model/), or say why not here"


def test_the_reader_sees_through_to_the_models() -> None:
    """The checks above rest on this: a client method's body model and read models are
    found (one example each way)."""
    by_where = {c.where: c for c in CALLED}
    create = by_where["logical.LogicalClient.create_publication"]
    assert create.body_model is not None and create.body_model.__name__ == "PublicationSpec"
    assert {m.__name__ for m in create.reads} == {"PublicationResult"}
    assert inspect.isclass(create.body_model)
