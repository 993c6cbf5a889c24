#!/usr/bin/env bash
# Install (if needed) and run the whole test suite: real etcd, real processes.
# The suite runs against duckfleet as users install it: the wheel built from this tree,
# installed into a fresh venv outside it (scripts/install_wheel.sh), once a fleet
# started from that install has answered a join (scripts/check_install.py).
# DUCKFLEET_TEST_INSTALL=editable runs the suite on ./.venv's editable install instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
bash scripts/install.sh
VENV="${DUCKFLEET_VENV:-.venv}"
"$VENV/bin/ruff" check .
if [ "${DUCKFLEET_TEST_INSTALL:-wheel}" = editable ]; then
    exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
fi
WHEEL_DIR="$(mktemp -d "${TMPDIR:-/tmp}/duckfleet-wheel.XXXXXX")"
trap 'rm -rf "$WHEEL_DIR"' EXIT
started=$SECONDS
bash scripts/install_wheel.sh "$WHEEL_DIR"
PY="$WHEEL_DIR/venv/bin/python"
(cd "$WHEEL_DIR" && "$PY" -P "$ROOT/scripts/check_install.py")
echo "wheel built, installed and checked in $((SECONDS - started)) s"
# The suite: this tree's tests, importing duckfleet from the install. No source folder
# on sys.path (PYTHONSAFEPATH, inherited by every process a test starts) but bench/,
# which the benchmark tests run and which is not part of the package.
mkdir "$WHEEL_DIR/path"
ln -s "$ROOT/bench" "$WHEEL_DIR/path/bench"
PYTHONSAFEPATH=1 PYTHONPATH="$WHEEL_DIR/path" DUCKFLEET_TEST_INSTALL=wheel \
    "$PY" -m pytest -q -p no:cacheprovider "$@"
