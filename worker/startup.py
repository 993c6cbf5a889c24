"""When this process started (wall clock), for the worker's "first claim" log line.

On Linux from /proc (the kernel's start time of the process, before Python ran);
elsewhere the time this module was first imported, a little later.
"""

from __future__ import annotations

import os
import time

_IMPORTED = time.time()


def process_start_time() -> float:
    try:
        with open(f"/proc/{os.getpid()}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime: the 22nd field, in clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])  # seconds since boot, to 10 ms
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED
