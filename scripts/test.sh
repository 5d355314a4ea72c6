#!/usr/bin/env bash
# The test command: sets up .venv (Python 3.11+), installs the project with its test extra and the browser
# for UI tests where it can, checks lint, then runs every test. PostgreSQL tests run when PostgreSQL answers
# at SGFLOW_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) and skip, saying
# why, when it does not.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
log=.venv/pip-install.log
install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }; }
install -e '.[test]'
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
