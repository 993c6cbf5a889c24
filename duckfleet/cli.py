"""`duckfleet`: start fleet components, manage the catalog, run a query.

    duckfleet up [--workers N] [--frontdoors M] [--port P] [--demo tpch --scale SF --data-dir DIR]
                 [--no-auth] [--tls] [--storage DIR]
    duckfleet frontdoor --etcd URL --port P
    duckfleet worker --etcd URL --port P [--cores C] [--slots S]
    duckfleet table add NAME PATH_OR_GLOB | table list | table drop NAME
    duckfleet query "SQL" [--uri grpc://127.0.0.1:31337] [--user NAME] [--tls-ca FILE]
    duckfleet user add NAME [--role user|admin] | user list | user remove NAME
    duckfleet grant|revoke TABLE... (--user NAME | --role user)...   SELECT grants
    duckfleet grants [TABLE] [--ungranted public|admins]   list grants (duckfleet/cli_grants.py)
    duckfleet resource-groups set FILE | show | reset   admission control (cli_resource_groups.py)
    duckfleet health --target HOST:PORT [--service NAME]   exit 0 iff SERVING
    duckfleet demo-data [--scale SF] [--data-dir DIR]   generate and register TPC-H
    duckfleet balance --listen HOST:PORT --backend HOST:PORT --health HOST:PORT ...
    duckfleet ui [--listen HOST:PORT]   the query page, HTML over HTTP (ui/command.py)

Every flag has a DUCKFLEET_* environment variable (see duckfleet/config.py). Flags go
anywhere after the command (`duckfleet table add NAME PATH --etcd URL`). An error is one
line, `duckfleet: error: ...`, exit status 2 for usage and 1 otherwise; `--verbose`
adds the traceback (duckfleet/cli_errors.py).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from duckfleet.cli_errors import CommandFailed, Parser, UsageError, error_message, report
from duckfleet.config import (
    CommonConfig,
    DemoDataConfig,
    FrontDoorConfig,
    WorkerConfig,
    override,
)
from duckfleet.version import version

if TYPE_CHECKING:
    from duckfleet.control import Store
    from duckfleet.local_fleet import LocalFleet


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _until_signalled(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(0.5):
        pass


def _common_flags(*parsers: argparse.ArgumentParser) -> None:
    """--etcd and --namespace, on a command and each of its subcommands, so either
    place works (a flag given nowhere stays unset: the environment decides)."""
    for p in parsers:
        p.add_argument(
            "--etcd",
            default=argparse.SUPPRESS,
            help="etcd endpoints, comma-separated (DUCKFLEET_ETCD)",
        )
        p.add_argument(
            "--namespace", default=argparse.SUPPRESS, help="etcd key prefix (DUCKFLEET_NAMESPACE)"
        )


class _Component(Protocol):
    def stop(self) -> None: ...


def _serve(component: _Component) -> int:
    """Run a started component in the foreground until SIGINT/SIGTERM."""
    try:
        _until_signalled(threading.Event())
    finally:
        component.stop()
        from duckfleet import tracing

        tracing.shutdown()  # export the spans still buffered
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from duckfleet.worker.worker import Worker

    cfg = WorkerConfig()
    override(cfg, **vars(args))
    _setup_logging(cfg.log_level)
    from duckfleet import tracing

    tracing.setup("duckfleet-worker")  # when an OTLP endpoint is configured
    return _serve(Worker(cfg).start())


def cmd_frontdoor(args: argparse.Namespace) -> int:
    from duckfleet.flight.frontdoor import FrontDoor

    cfg = FrontDoorConfig()
    override(cfg, **vars(args))
    _setup_logging(cfg.log_level)
    from duckfleet import tracing

    tracing.setup("duckfleet-frontdoor")  # when an OTLP endpoint is configured
    return _serve(FrontDoor(cfg).start())


def cmd_up(args: argparse.Namespace) -> int:
    from duckfleet.auth.local import FleetSecurity
    from duckfleet.local_fleet import LocalFleet

    _setup_logging("INFO")
    security = FleetSecurity.from_environment(no_auth=args.no_auth, want_tls=args.tls)
    storage = args.storage or (os.path.abspath(args.data_dir) if args.demo else "")
    fleet = LocalFleet(
        etcd_url=args.etcd,
        frontdoors=args.frontdoors,
        workers=args.workers,
        port=args.port,
        # the machine's cores shared out among the workers, one task slot per core
        cores_per_worker=args.cores_per_worker or max(1, (os.cpu_count() or 1) // args.workers),
        # tables written through Flight SQL (ingest, CREATE TABLE AS) go here
        extra_env={
            "DUCKFLEET_DATA_DIR": os.environ.get("DUCKFLEET_DATA_DIR")
            or os.path.abspath(os.path.join(args.data_dir, "tables"))
        },
        security=security,
        storage=storage,
    )
    stop = threading.Event()
    try:
        fleet.start()
        if args.demo:
            store = fleet.store()
            try:
                data_root = _demo_data(store, args.data_dir, args.scale)
            finally:
                store.close()
            print(f"registered TPC-H scale {args.scale:g} tables from {data_root}", flush=True)
        print(f"etcd: {fleet.etcd_url} ({_etcd_versions(fleet)})", flush=True)
        if fleet.balancer_port:
            doors = ", ".join(fleet.frontdoor_uri(i) for i in range(len(fleet.frontdoor_ports)))
            print(f"front doors: {doors}, balanced at {fleet.uri}", flush=True)
        for line in security.describe():
            print(line, flush=True)
        for name, url in fleet.metrics_urls():
            print(f"metrics: {name} at {url}", flush=True)
        where = storage or "any local path (--storage DIR limits them to DIR)"
        print(f"storage: workers read and write table files under {where}", flush=True)
        fleet.supervise()  # a child that exits is started again, with backoff
        print(fleet.uri, flush=True)
        _until_signalled(stop)
    finally:
        fleet.stop()
    return 0


def _demo_data(store: Store, data_dir: str, scale: float, parts: int = 4) -> str:
    """Generate TPC-H (the tables not there yet) and register its tables, showing
    progress on stderr (duckfleet/progress.py): a bar on a terminal, else a line per
    step. The data's directory."""
    from duckfleet.local_fleet import (
        TPCH_TABLES,
        generate_tpch,
        missing_tpch_tables,
        register_tables,
    )
    from duckfleet.progress import Steps

    missing = missing_tpch_tables(data_dir, scale)
    with Steps(f"TPC-H scale {scale:g}", len(missing) + len(TPCH_TABLES)) as steps:
        root = generate_tpch(data_dir, scale, parts, lambda t: steps.step(f"generated {t}"))
        register_tables(store, root, on_table=lambda t: steps.step(f"registering {t}"))
    return root


def _etcd_versions(fleet: LocalFleet) -> str:
    from duckfleet.control.readonly import has_readonly_txn_bug

    store = fleet.store()
    try:
        versions = sorted(set(store.check_versions().values()))
    finally:
        store.close()
    text = ", ".join(versions) or "version unknown"
    if any(has_readonly_txn_bug(v) for v in versions):
        return f"{text}, which has etcd issue 14110: duckfleet reads it with Range calls"
    return text


def _store(args: argparse.Namespace):  # noqa: ANN202 - lazy import keeps the CLI light
    from duckfleet.control import Store

    cfg = CommonConfig()
    override(cfg, **vars(args))
    return Store(cfg.etcd, namespace=cfg.namespace)


def cmd_table(args: argparse.Namespace) -> int:
    from duckfleet.control import CatalogStore
    from duckfleet.table_files import describe_table

    store = _store(args)
    try:
        catalog = CatalogStore(store)
        if args.action == "add":
            table = describe_table(args.name, args.path)
            catalog.put_table(table)
            print(
                f"{table.name}: {len(table.files)} file(s), {table.rows} rows, {table.bytes} bytes"
            )
        elif args.action == "drop":
            if not catalog.drop_table(args.name):
                raise CommandFailed(f"no table {args.name!r}")
            print(f"dropped {args.name}")
        else:
            for t in sorted(catalog.read().tables.values(), key=lambda t: t.name):
                print(f"{t.name}\t{len(t.files)} file(s)\t{t.rows} rows\t{t.bytes} bytes")
    finally:
        store.close()
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import pyarrow.flight as fl

    from duckfleet.client import execute, format_table
    from duckfleet.progress import ProgressSource, QueryProgress, etcd_progress

    password = ""
    if args.user:
        password = os.environ.get("DUCKFLEET_PASSWORD", "")
        if not password and sys.stdin.isatty():
            password = getpass.getpass(f"password of {args.user}: ")
    roots = None
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            roots = f.read()
    cfg = CommonConfig()
    override(cfg, **vars(args))
    since = time.time()

    def source() -> ProgressSource | None:  # task counts from etcd, if it answers here
        return etcd_progress(cfg.etcd, cfg.namespace, args.sql, since)

    try:
        with QueryProgress(source):  # on a terminal, for queries longer than a second
            table = execute(
                args.uri, args.sql, user=args.user, password=password, tls_root_certs=roots
            )
    except fl.FlightUnavailableError as exc:  # no answer at all, or the fleet cannot serve
        raise CommandFailed(f"{args.uri} is unavailable: {error_message(exc)}") from exc
    print(format_table(table))
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from duckfleet.auth.users import add_user, read_users_file, remove_user

    path = getattr(args, "users_file", "") or os.environ.get("DUCKFLEET_USERS_FILE", "")
    if not path:
        raise UsageError(
            f"--users-file or DUCKFLEET_USERS_FILE is needed (see duckfleet user {args.action} "
            "--help)"
        )
    if args.action == "add":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password of {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise CommandFailed("the passwords differ")
        new = add_user(path, args.name, args.role, password)
        print(f"{'added' if new else 'updated'} {args.name} ({args.role}) in {path}")
    elif args.action == "remove":
        if not remove_user(path, args.name):
            raise CommandFailed(f"no user {args.name!r} in {path}")
        print(f"removed {args.name} from {path}")
    else:
        for user in sorted(read_users_file(path).values(), key=lambda u: u.name):
            print(f"{user.name}\t{user.role}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from duckfleet.health import check

    status = check(args.target, args.service, args.timeout)
    print(status)
    return 0 if status == "SERVING" else 1


def cmd_demo_data(args: argparse.Namespace) -> int:
    from duckfleet.control import Store
    from duckfleet.local_fleet import TPCH_TABLES

    cfg = DemoDataConfig()
    override(cfg, **vars(args))
    _setup_logging(cfg.log_level)
    store = Store(cfg.etcd, namespace=cfg.namespace)
    try:
        store.wait_ready(args.wait)
        root = _demo_data(store, cfg.demo_dir, cfg.demo_scale, cfg.demo_parts)
    finally:
        store.close()
    print(f"registered TPC-H scale {cfg.demo_scale:g} ({', '.join(TPCH_TABLES)}) from {root}")
    return 0


def cmd_balance(args: argparse.Namespace) -> int:
    import asyncio

    from duckfleet.balancer import Balancer, BalancerError, parse_backend
    from duckfleet.netutil import host_port

    _setup_logging(CommonConfig().log_level)
    healths = args.health or []
    if healths and len(healths) != len(args.backend):
        raise BalancerError(
            f"{len(args.backend)} --backend but {len(healths)} --health: give one "
            "--health per --backend, in the same order, or none"
        )
    backends = [
        parse_backend(b, healths[i] if healths else None) for i, b in enumerate(args.backend)
    ]
    host, port = host_port(args.listen, 31337)
    balancer = Balancer(host, port, backends, interval=args.interval)

    async def run() -> None:
        import signal as signals

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signals.SIGINT, signals.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with balancer:
            await stop.wait()

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="duckfleet", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"duckfleet {version()}")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start a local fleet in the foreground")
    up.add_argument("--etcd", help="use this etcd instead of starting one")
    up.add_argument("--frontdoors", type=int, default=1)
    up.add_argument("--workers", type=int, default=2)
    up.add_argument(
        "--port", type=int, default=31337, help="the one address (a balancer if --frontdoors > 1)"
    )
    up.add_argument(
        "--cores-per-worker",
        type=int,
        default=None,
        help="DuckDB threads and task slots of each worker (default: the cores shared out)",
    )
    up.add_argument("--demo", choices=["tpch"], help="generate and register demo data")
    up.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor")
    up.add_argument("--data-dir", default="./data", help="where demo data is written")
    up.add_argument("--no-auth", action="store_true", help="no login (local play only)")
    up.add_argument("--tls", action="store_true", help="TLS with a self-signed certificate")
    up.add_argument(
        "--storage",
        help="workers read and write table files under this directory only "
        "(default with --demo: --data-dir; else anywhere)",
    )
    up.set_defaults(fn=cmd_up)

    fd = sub.add_parser("frontdoor", help="run one Flight SQL front door")
    _common_flags(fd)
    fd.add_argument("--port", type=int)
    fd.add_argument("--host", help="bind address")
    fd.add_argument("--advertise-host", dest="advertise_host")
    fd.set_defaults(fn=cmd_frontdoor)

    wk = sub.add_parser("worker", help="run one DuckDB worker")
    _common_flags(wk)
    wk.add_argument("--port", type=int)
    wk.add_argument("--host", help="bind address")
    wk.add_argument("--advertise-host", dest="advertise_host")
    wk.add_argument("--cores", type=int, help="cores this worker may use (DuckDB threads)")
    wk.add_argument("--slots", type=int, help="tasks run at once (default: cores)")
    wk.add_argument("--scheduling", choices=["fair", "fifo"], help="which runnable task first")
    wk.set_defaults(fn=cmd_worker)

    tb = sub.add_parser("table", help="manage the catalog")
    tsub = tb.add_subparsers(dest="action", required=True)
    add = tsub.add_parser("add", help="register Parquet files as a table")
    add.add_argument("name")
    add.add_argument("path", help="a file, a directory or a glob")
    tlist = tsub.add_parser("list", help="list tables")
    drop = tsub.add_parser("drop", help="remove a table from the catalog (files stay)")
    drop.add_argument("name")
    _common_flags(tb, add, tlist, drop)
    tb.set_defaults(fn=cmd_table)

    q = sub.add_parser("query", help="run SQL and print the result")
    q.add_argument("sql")
    q.add_argument("--uri", default="grpc://127.0.0.1:31337")
    q.add_argument(
        "--user",
        default=os.environ.get("DUCKFLEET_USER") or None,
        help="log in as this user (DUCKFLEET_USER); password from DUCKFLEET_PASSWORD or a prompt",
    )
    q.add_argument(
        "--tls-ca",
        default=os.environ.get("DUCKFLEET_TLS_CA_FILE") or None,
        help="PEM file of the roots to trust for grpc+tls:// (DUCKFLEET_TLS_CA_FILE)",
    )
    _common_flags(q)  # the fleet's etcd, read for the progress bar only
    q.set_defaults(fn=cmd_query)

    us = sub.add_parser("user", help="manage the users file (DUCKFLEET_USERS_FILE)")
    usub = us.add_subparsers(dest="action", required=True)
    uadd = usub.add_parser("add", help="add a user or set a user's password and role")
    uadd.add_argument("name")
    uadd.add_argument("--role", choices=["user", "admin"], default="user")
    uadd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    ulist = usub.add_parser("list", help="list users and roles")
    urm = usub.add_parser("remove", help="remove a user")
    urm.add_argument("name")
    for p_ in (us, uadd, ulist, urm):
        p_.add_argument(
            "--users-file", default=argparse.SUPPRESS, help="default: DUCKFLEET_USERS_FILE"
        )
    us.set_defaults(fn=cmd_user)

    from duckfleet.cli_grants import add_parsers as add_grant_parsers

    add_grant_parsers(sub, _common_flags, _store)

    from duckfleet.cli_resource_groups import add_parsers as add_resource_group_parsers

    add_resource_group_parsers(sub, _common_flags, _store)

    hc = sub.add_parser("health", help="check a front door's or worker's gRPC health service")
    hc.add_argument("--target", required=True, help="HOST:PORT of its health service")
    hc.add_argument("--service", default="", help='service name ("" = the whole server)')
    hc.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    hc.set_defaults(fn=cmd_health)

    dd = sub.add_parser("demo-data", help="generate TPC-H Parquet and register its tables")
    _common_flags(dd)
    dd.add_argument("--scale", dest="demo_scale", type=float, help="TPC-H scale factor")
    dd.add_argument("--parts", dest="demo_parts", type=int, help="files per table")
    dd.add_argument(
        "--data-dir", dest="demo_dir", help="where the Parquet files go (DUCKFLEET_DEMO_DIR)"
    )
    dd.add_argument("--wait", type=float, default=60.0, help="seconds to wait for etcd")
    dd.set_defaults(fn=cmd_demo_data)

    bl = sub.add_parser("balance", help="one address, round-robin over healthy front doors")
    bl.add_argument("--listen", default="127.0.0.1:31337", help="HOST:PORT to listen on")
    bl.add_argument(
        "--backend", action="append", required=True, help="HOST:PORT of a front door (repeat)"
    )
    bl.add_argument(
        "--health", action="append", help="HOST:PORT of that front door's health service"
    )
    bl.add_argument("--interval", type=float, default=1.0, help="seconds between health polls")
    bl.set_defaults(fn=cmd_balance)

    from duckfleet.ui.command import add_parser as add_ui_parser

    add_ui_parser(sub, _common_flags, _serve, _setup_logging)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return int(args.fn(args))
    except (Exception, KeyboardInterrupt) as exc:  # the one place errors leave the CLI
        return report(exc, verbose="--verbose" in argv)


if __name__ == "__main__":
    sys.exit(main())
