"""schemathesis against the agent's own OpenAPI document, bounded in time.

Every operation of the whole agent API (tests/unit/agent_app.py: the real routes, fakes
behind the ports) gets generated requests, valid and invalid, with the operator's token
and without any. What must hold for all of them:

- no 500, except the agent's own "cannot connect" for a valid request to a route that
  needs the (here absent) PostgreSQL: that is the server's state, not the input;
- every 4xx in the ``{error, hint}`` shape;
- without a credential, every acting operation is refused with 401, whatever the body.

Bounded: ``FUZZ_EXAMPLES`` examples per operation and mode (under a minute on a loaded
machine); raise it with ``PGHERD_FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from pgherd.model.access import ALWAYS_OPEN, READ_METHODS
from tests.unit.agent_app import full_app
from tests.unit.fake_agent import TOKEN

FUZZ_EXAMPLES = int(os.environ.get("PGHERD_FUZZ_EXAMPLES", "3"))
NEEDS_POSTGRES = ("/logical/", "/replay", "/wal/switch", "/restore-point", "/archiver")


HOME = Path(tempfile.mkdtemp(prefix="pgherd-fuzz-"))  # the history store's sqlite file
schema = schemathesis.openapi.from_asgi("/openapi.json", full_app(HOME))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=FUZZ_EXAMPLES,
    database="none",
)


@pytest.fixture(scope="module", autouse=True)
def _remove_home() -> Iterator[None]:
    yield
    shutil.rmtree(HOME, ignore_errors=True)


FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _check(case: Any, response: Any) -> None:
    status = response.status_code
    where = f"{case.method} {case.formatted_path}"
    if status == 503 and case.path in (*ALWAYS_OPEN, "/failsafe", "/quorum"):
        return  # a check saying "not me" (load balancers, failsafe, the quorum)
    if status >= 500:
        body = response.json()
        assert case.path.startswith(NEEDS_POSTGRES), (where, status, response.text)
        assert "cannot connect to PostgreSQL" in body["error"], (where, response.text)
    if 400 <= status < 500:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error", "hint"}, (where, body)


@schema.parametrize()
@FUZZ_SETTINGS
def test_any_input_with_the_token(case: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    _check(case, response)


@schema.parametrize()
@FUZZ_SETTINGS
def test_any_input_without_a_credential(case: Any) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = headers
    response = case.call()
    _check(case, response)
    if case.method.upper() not in READ_METHODS or case.path.startswith("/mesh"):
        assert response.status_code == 401, (case.method, case.formatted_path, response.text)
