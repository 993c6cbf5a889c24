#!/usr/bin/env bash
# Install (if needed) and run the whole test suite: real etcd, real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV="${DUCKFLEET_VENV:-.venv}"
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
