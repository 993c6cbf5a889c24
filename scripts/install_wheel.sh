#!/usr/bin/env bash
# Build duckfleet's wheel from this tree and install it, with the development extras,
# into a fresh venv outside the tree: duckfleet as `pip install` gives it to users.
# Usage: bash scripts/install_wheel.sh DIR  ->  DIR/dist/duckfleet-*.whl, DIR/venv
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:?usage: install_wheel.sh DIR}"
VENV="${DUCKFLEET_VENV:-.venv}"
mkdir -p "$DIR"
rm -rf build "$DIR/dist" "$DIR/venv"  # build/: setuptools' in-tree staging, stale files included
"$VENV/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$DIR/dist" .
rm -rf build
python3 -m venv "$DIR/venv"
"$DIR/venv/bin/python" -m pip install --quiet --upgrade pip
WHEEL="$(ls "$DIR"/dist/duckfleet-*.whl)"
"$DIR/venv/bin/python" -m pip install --quiet "${WHEEL}[dev]"
echo "installed $(basename "$WHEEL") into $DIR/venv"
