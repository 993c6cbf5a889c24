"""duckfleet's version: the installed distribution's (`duckfleet --version`, GetSqlInfo)."""

from __future__ import annotations

import importlib.metadata

UNKNOWN = "0.0.0+unknown"


def version() -> str:
    try:
        return importlib.metadata.version("duckfleet")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return UNKNOWN
