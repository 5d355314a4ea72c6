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
# Browser tests drive Debian's Chromium (Playwright with executable_path=/usr/bin/chromium; Playwright's own
# browser downloads are never used). Install it when we can; without it those tests skip and say why.
if [ "$(id -u)" = "0" ]; then
  command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null 2>&1) \
    || echo "chromium not installed: browser tests will skip"
elif ! command -v chromium >/dev/null; then
  echo "chromium not installed (not root, so not installing it): browser tests will skip"
fi
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
