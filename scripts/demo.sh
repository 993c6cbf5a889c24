#!/usr/bin/env bash
# Install duckfleet and start a local fleet with TPC-H demo data (Ctrl-C stops it).
# SCALE=1 by default; DATA_DIR=./data; any extra flags go to `duckfleet up`.
set -euo pipefail
cd "$(dirname "$0")/.."
DUCKFLEET_EXTRAS=demo bash scripts/install.sh
VENV="${DUCKFLEET_VENV:-.venv}"
exec "$VENV/bin/duckfleet" up --demo tpch --scale "${SCALE:-1}" --data-dir "${DATA_DIR:-./data}" "$@"
