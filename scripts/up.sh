#!/usr/bin/env bash
# The run command: sets up .venv (Python 3.11+) with the engine installed, then `sgflow up`: the Temporal dev
# server (persistent file in .data/), the database (SQLite in .data/), the demo seed, the worker and the web
# app. Ctrl-C stops it all; running it again carries on with the same data.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
log=.venv/pip-install.log
install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }; }
install -e '.[dev-server]'
exec .venv/bin/sgflow up "$@"
