"""Progress lines on stderr, so a long run shows where it is."""

from __future__ import annotations

import sys
import time

_started = time.monotonic()


def say(message: str) -> None:
    """One progress line on stderr, stamped with seconds since the run started."""
    print(f"[bench {time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)
