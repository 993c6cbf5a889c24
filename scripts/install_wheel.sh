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
bash scripts/restore_otel_protos.sh "$DIR/venv/bin/python"
# an etcd that scripts/install.sh put beside the dev venv's python: the same one here
for binary in etcd etcdctl; do
    if [ -x "$VENV/bin/$binary" ]; then ln -sf "$(realpath "$VENV/bin/$binary")" "$DIR/venv/bin/"; fi
done
echo "installed $(basename "$WHEEL") into $DIR/venv"
