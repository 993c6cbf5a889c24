"""What a person sees when a `duckfleet` command fails: one line, and an exit status.

    duckfleet: error: <message>

Exit status 2 for a usage error (a flag or argument argparse refuses, a missing
setting: ``UsageError``), 1 for everything else (the server refused the request, the
address does not answer, a file is missing, ...). ``--verbose`` prints the traceback
before that line. Nothing else reaches the terminal: no traceback, and for a Flight
error not pyarrow's wrapping of the server's message (``error_message``).
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from typing import Any, NoReturn, TextIO

from duckfleet.errors import DuckfleetError

USAGE_STATUS = 2
FAILURE_STATUS = 1
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report it


class UsageError(DuckfleetError):
    """The command line asks for something that cannot be done as written."""


class CommandFailed(DuckfleetError):
    """A command that ran and failed, with the message to print (exit status 1)."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (and the --help to read) instead of the
    usage block, and ``--verbose`` on every command and subcommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--verbose", action="store_true", help="print the traceback of an error too"
        )

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# pyarrow's client puts the status in front of the server's message and its detail
# after it: "Flight returned invalid argument error, with message: <msg>. Detail: ..."
_FLIGHT_PREFIX = re.compile(
    r"^(?:Flight returned [a-z ]+ error|Flight cancelled call|Flight RPC failed), with message: "
)
_DETAIL = ". Detail: "


def error_message(exc: BaseException) -> str:
    """The one-line message of an error: for a Flight error, the server's own words."""
    text = str(exc)
    if _from_pyarrow(exc):
        text = _FLIGHT_PREFIX.sub("", text).split(_DETAIL)[0]
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    text = " ".join(text.split())  # DuckDB's and sqlglot's messages span lines
    return text or type(exc).__name__


def _from_pyarrow(exc: BaseException) -> bool:
    # pyarrow is imported lazily by the commands that need it (`--help` stays fast):
    # if it was never imported, the error is not one of its.
    pa = sys.modules.get("pyarrow")
    fl = sys.modules.get("pyarrow.flight")
    return (pa is not None and isinstance(exc, pa.ArrowException)) or (
        fl is not None and isinstance(exc, fl.FlightError)
    )


def report(exc: BaseException, verbose: bool, stream: TextIO | None = None) -> int:
    """Print ``exc`` for a person; the exit status that goes with it."""
    out = stream or sys.stderr
    if isinstance(exc, KeyboardInterrupt):
        print("duckfleet: interrupted", file=out)
        return INTERRUPTED_STATUS
    if verbose:
        traceback.print_exception(exc, file=out)
    print(f"duckfleet: error: {error_message(exc)}", file=out)
    return USAGE_STATUS if isinstance(exc, UsageError) else FAILURE_STATUS
