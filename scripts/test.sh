#!/usr/bin/env bash
# The whole test suite: lint, types, the layer contracts, unit, integration (real
# PostgreSQL), e2e (lab clusters).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/bootstrap.sh")
cd "$here"
echo "== ruff"; "$venv/bin/ruff" check src tests bench
echo "== ruff format"; "$venv/bin/ruff" format --check src tests bench
echo "== mypy"; "$venv/bin/mypy"
# The contracts in pyproject.toml, checked on src/ (the venv holds an installed copy).
echo "== import-linter"; PYTHONPATH="$here/src" "$venv/bin/lint-imports" --no-cache
echo "== pytest"; exec "$venv/bin/python" -m pytest "$@"
