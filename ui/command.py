"""`duckfleet ui --listen HOST:PORT`: serve the query page until SIGINT/SIGTERM.

It reads the same settings as a front door (duckfleet/config.py): DUCKFLEET_ETCD and
DUCKFLEET_NAMESPACE for the fleet, DUCKFLEET_AUTH, DUCKFLEET_ADMIN_USER,
DUCKFLEET_ADMIN_PASSWORD(_FILE) and DUCKFLEET_USERS_FILE for who may log in.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from duckfleet.cli_errors import UsageError
from duckfleet.config import FrontDoorConfig, override

log = logging.getLogger("duckfleet.ui")

DEFAULT_LISTEN = "127.0.0.1:8080"


class ListenError(UsageError):
    """--listen is not HOST:PORT (exit status 2, like any usage error)."""


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' (port 0: any free one), '[::1]:PORT' or ':PORT' -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ListenError(f"--listen {text!r}: write HOST:PORT, e.g. 127.0.0.1:8080 (0: any port)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def cmd_ui(args: argparse.Namespace) -> int:
    from duckfleet.auth.setup import user_directory
    from duckfleet.control import Store
    from duckfleet.ui.access import Logins
    from duckfleet.ui.server import QueryPages, UiServer

    cfg = FrontDoorConfig()
    override(cfg, **vars(args))
    args.setup_logging(cfg.log_level)
    host, port = parse_listen(args.listen)
    logins = Logins(user_directory(cfg))  # None with DUCKFLEET_AUTH=none
    store = Store(cfg.etcd, namespace=cfg.namespace)
    server = UiServer(QueryPages(store, logins), host, port).start()
    who = "HTTP Basic login, the front doors' users" if logins.enabled else "auth off"
    log.info("query page at %s (%s; etcd %s)", server.url, who, cfg.etcd)
    print(f"query page: {server.url}", flush=True)

    class _Both:
        def stop(self) -> None:
            server.stop()
            store.close()

    return int(args.serve(_Both()))


def add_parser(
    sub: Any,
    common_flags: Callable[..., None],
    serve: Callable[[Any], int],
    setup_logging: Callable[[str], None],
) -> None:
    ui = sub.add_parser("ui", help="serve the query page (HTML) for the fleet in etcd")
    common_flags(ui)
    ui.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT to serve HTTP on (default {DEFAULT_LISTEN}; port 0: any free port)",
    )
    ui.set_defaults(fn=cmd_ui, serve=serve, setup_logging=setup_logging)
