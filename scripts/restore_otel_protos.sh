#!/usr/bin/env bash
# xds-protos (a dev extra: tests/test_compose.py checks compose/envoy.yaml against
# Envoy's protos) ships old copies of opentelemetry/proto/*, and whichever of it and
# opentelemetry-proto pip installs last owns those files. The OTLP exporter of the
# traces (duckfleet/tracing.py) needs opentelemetry-proto's own: put them back.
# Usage: bash scripts/restore_otel_protos.sh PYTHON
set -euo pipefail
PY="${1:?usage: restore_otel_protos.sh PYTHON}"
if "$PY" -m pip show --quiet xds-protos >/dev/null 2>&1; then
    version="$("$PY" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
    "$PY" -m pip install --quiet --force-reinstall --no-deps "opentelemetry-proto==$version"
fi
