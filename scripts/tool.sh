#!/usr/bin/env bash
# Runs one of the project's checkers (ruff, mypy, lint-imports) from its virtualenv, as
# pre-commit does (.pre-commit-config.yaml): the versions scripts/test.sh and CI run, not
# copies of their own. Usage: scripts/tool.sh TOOL [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/bootstrap.sh")
cd "$here"
tool=$1
shift
# import-linter reads the contracts' packages from src/, not the virtualenv's installed copy.
[ "$tool" = lint-imports ] && export PYTHONPATH="$here/src"
exec "$venv/bin/$tool" "$@"
