"""`duckfleet resource-groups`: the fleet's resource groups in etcd
(duckfleet/resource_groups.py has the format and the rules).

    duckfleet resource-groups set FILE     check FILE (JSON; "-": stdin) and store it
    duckfleet resource-groups show         the groups in force, and each queue now
    duckfleet resource-groups reset        back to the default (one `global` group)

They write etcd directly, as `duckfleet grant` does: whoever reaches the fleet's
etcd administers it. Every front door sees the change at its next query, and queries
waiting in a queue at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duckfleet.cli_errors import CommandFailed
from duckfleet.resource_groups import ResourceGroupError, ResourceGroups, parse_groups

StoreOf = Callable[[argparse.Namespace], Any]  # opens the fleet's etcd (a control Store)


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], None], store: StoreOf
) -> None:
    """The command; ``common(parser)`` adds --etcd and --namespace, ``store(args)``
    opens the fleet's etcd."""
    rg = sub.add_parser(
        "resource-groups", help="admission control: limits on running and queued queries"
    )
    rsub = rg.add_subparsers(dest="verb", required=True, metavar="{set,show,reset}")
    st = rsub.add_parser("set", help="check a JSON file of resource groups and store it")
    st.add_argument("file", metavar="FILE", help='the groups as JSON ("-": standard input)')
    sh = rsub.add_parser("show", help="the resource groups in force and their queues")
    rs = rsub.add_parser("reset", help="back to the default: one `global` group")
    for p in (st, sh, rs):
        common(p)
    rg.set_defaults(fn=lambda args: cmd_resource_groups(args, store))


def read_file(name: str) -> ResourceGroups:
    """The groups in file ``name``, checked; CommandFailed says what is wrong."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise CommandFailed(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        return parse_groups(text)
    except ResourceGroupError as exc:
        raise CommandFailed(f"{name}: {exc}") from None


def cmd_resource_groups(args: argparse.Namespace, store_of: StoreOf) -> int:
    from duckfleet.control.resource_groups import GroupStore

    groups = read_file(args.file) if args.verb == "set" else None  # checked before etcd
    store = store_of(args)
    try:
        gs = GroupStore(store)
        if groups is not None:
            gs.write(groups)
        elif args.verb == "reset":
            gs.reset()
        current = gs.read()
        tickets = gs.all_tickets() if args.verb == "show" else []
    finally:
        store.close()
    print(current.to_json())
    if args.verb != "show":
        print(f"# {len(current.groups)} resource group(s) in force on every front door")
        return 0
    for group in current.groups:
        now = time.time()
        mine = [t for t in tickets if t.ticket.group == group.name and t.ticket.until > now]
        if group.max_running is None:
            print(f"# {group.name}: no limit on running queries")
            continue
        running = min(len(mine), group.max_running)
        print(
            f"# {group.name}: {running} running (limit {group.max_running}), "
            f"{len(mine) - running} queued (limit {group.max_queued})"
        )
    return 0
