"""Resource groups, as pure values: which group a query falls in, and what its
group's limits decide for it (run now, wait in the queue, or be refused).

A configuration is an ordered list of groups (JSON, kept in etcd by
control/resource_groups.py, set with `duckfleet resource-groups set FILE`)::

    {"groups": [
      {"name": "etl", "users": ["loader"], "max_running": 2, "max_queued": 20,
       "max_run_time": 3600},
      {"name": "adhoc", "roles": ["user"], "max_running": 4, "max_queued": 10,
       "max_run_time": 120, "max_memory": "2GB"},
      {"name": "global", "max_run_time": 300}
    ]}

* A query is in the first group, in order, whose selector matches who runs it: a
  user named in ``users`` or a role named in ``roles``; a group with neither matches
  everyone.
* ``global`` always matches everyone. A configuration without a ``global`` group
  gets the default one (``DEFAULT_GLOBAL``: no limit on running queries, 300 s run
  time) appended, so every query has a group; out of the box it is the only group.
* ``max_running``: queries of the group running at once, fleet-wide (absent or null:
  no limit, and admission costs nothing). Past it a query waits in its group's queue
  in etcd, first come first served; ``max_queued`` (default 100) queries may wait,
  the next one is refused.
* ``max_run_time``: seconds a query may run (absent: DUCKFLEET_QUERY_TIMEOUT alone);
  the smaller of the two applies.
* ``max_memory``: DuckDB memory limit of each task of the query, bytes (an integer,
  or text such as "512MB", "2GiB"); the smaller of it and
  DUCKFLEET_QUERY_MEMORY_LIMIT applies.

Pure: no I/O. Errors are ResourceGroupError with a message saying what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

GLOBAL = "global"
DEFAULT_MAX_QUEUED = 100
DEFAULT_RUN_TIME = 300.0  # the out-of-the-box group's run-time limit, seconds

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?|bytes?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "byte": 1, "bytes": 1}
for _i, _p in enumerate("kmgt", start=1):
    _UNITS[f"{_p}b"] = _UNITS[_p] = 1000**_i
    _UNITS[f"{_p}ib"] = _UNITS[f"{_p}i"] = 1024**_i

FIELDS = ("name", "users", "roles", "max_running", "max_queued", "max_run_time", "max_memory")


class ResourceGroupError(ValueError):
    """A configuration that cannot be: the message names the group and the field."""


@dataclass(frozen=True)
class ResourceGroup:
    name: str
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    max_running: int | None = None  # None: no limit
    max_queued: int = DEFAULT_MAX_QUEUED
    max_run_time: float | None = None  # seconds; None: DUCKFLEET_QUERY_TIMEOUT alone
    max_memory: int | None = None  # bytes per task; None: DUCKFLEET_QUERY_MEMORY_LIMIT

    @property
    def matches_everyone(self) -> bool:
        return not self.users and not self.roles

    def matches(self, user: str, role: str) -> bool:
        return self.matches_everyone or user in self.users or role in self.roles

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.users:
            d["users"] = sorted(self.users)
        if self.roles:
            d["roles"] = sorted(self.roles)
        if self.max_running is not None:
            d["max_running"] = self.max_running
            d["max_queued"] = self.max_queued
        if self.max_run_time is not None:
            d["max_run_time"] = self.max_run_time
        if self.max_memory is not None:
            d["max_memory"] = self.max_memory
        return d


DEFAULT_GLOBAL = ResourceGroup(GLOBAL, max_run_time=DEFAULT_RUN_TIME)


@dataclass(frozen=True)
class ResourceGroups:
    """The groups in selection order, the last one matching everyone."""

    groups: tuple[ResourceGroup, ...] = (DEFAULT_GLOBAL,)
    version: int = 0  # etcd mod revision of the configuration; 0: the default

    def select(self, user: str, role: str) -> ResourceGroup:
        """The first group whose selector matches ``user`` with ``role``."""
        for group in self.groups:
            if group.matches(user, role):
                return group
        return self.groups[-1]  # never reached: the last group matches everyone

    def group(self, name: str) -> ResourceGroup | None:
        return next((g for g in self.groups if g.name == name), None)

    def to_json(self) -> str:
        return json.dumps({"groups": [g.to_dict() for g in self.groups]}, indent=2)


def parse_groups(text: str | bytes, version: int = 0) -> ResourceGroups:
    """A configuration from its JSON text, checked (ResourceGroupError)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResourceGroupError(f"the resource groups are not valid JSON: {exc}") from None
    if isinstance(doc, list):
        doc = {"groups": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise ResourceGroupError(
            'the resource groups must be a JSON object {"groups": [...]} (a list of groups)'
        )
    unknown = set(doc) - {"groups"}
    if unknown:
        raise ResourceGroupError(f"unknown top-level field(s) {sorted(unknown)}: only 'groups'")
    return make_groups((_group(g, i) for i, g in enumerate(doc["groups"])), version)


def make_groups(groups: Iterable[ResourceGroup], version: int = 0) -> ResourceGroups:
    """Groups in order, checked: unique names, nothing after a group that matches
    everyone, ``global`` matching everyone; the default ``global`` appended if absent."""
    out: list[ResourceGroup] = []
    for g in groups:
        if any(o.name == g.name for o in out):
            raise ResourceGroupError(f"resource group {g.name!r} is defined twice")
        if g.name == GLOBAL and not g.matches_everyone:
            raise ResourceGroupError(
                f"resource group {GLOBAL!r} matches everyone: give it no users or roles"
            )
        catch_all = next((o for o in out if o.matches_everyone), None)
        if catch_all is not None:
            raise ResourceGroupError(
                f"resource group {g.name!r} comes after {catch_all.name!r}, which matches "
                "everyone, so no query would ever be in it: move it up"
            )
        out.append(g)
    if not any(g.matches_everyone for g in out):
        out.append(DEFAULT_GLOBAL)
    return ResourceGroups(tuple(out), version)


def _group(d: Any, index: int) -> ResourceGroup:
    if not isinstance(d, dict):
        raise ResourceGroupError(f"group {index + 1} is not a JSON object")
    name = d.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ResourceGroupError(
            f"group {index + 1} needs a name of letters, digits, '_', '.' or '-' "
            f"(1 to 64 of them), not {name!r}"
        )
    where = f"resource group {name!r}"
    unknown = set(d) - set(FIELDS)
    if unknown:
        raise ResourceGroupError(
            f"{where}: unknown field(s) {sorted(unknown)}; the fields are {', '.join(FIELDS)}"
        )
    max_running = _count(d, "max_running", where, minimum=1)
    max_queued = _count(d, "max_queued", where, minimum=0)
    if max_queued is not None and max_running is None:
        raise ResourceGroupError(f"{where}: max_queued needs max_running (the queue's reason)")
    run_time = d.get("max_run_time")
    if run_time is not None and (
        isinstance(run_time, bool) or not isinstance(run_time, int | float) or run_time <= 0
    ):
        raise ResourceGroupError(f"{where}: max_run_time is seconds > 0, not {run_time!r}")
    return ResourceGroup(
        name,
        _names(d, "users", where),
        _names(d, "roles", where),
        max_running,
        DEFAULT_MAX_QUEUED if max_queued is None else max_queued,
        None if run_time is None else float(run_time),
        None if d.get("max_memory") is None else parse_bytes(d["max_memory"], where),
    )


def _count(d: Mapping[str, Any], key: str, where: str, minimum: int) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ResourceGroupError(f"{where}: {key} is a whole number >= {minimum}, not {v!r}")
    return v


def _names(d: Mapping[str, Any], key: str, where: str) -> frozenset[str]:
    v = d.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in v):
        raise ResourceGroupError(f"{where}: {key} is a list of names, not {v!r}")
    return frozenset(v)


def parse_bytes(value: Any, where: str = "a memory size") -> int:
    """Bytes from an integer or text such as "512MB" (1000s) or "2GiB" (1024s)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if m is None or m.group(2).lower() not in _UNITS or float(m.group(1)) <= 0:
        raise ResourceGroupError(
            f"{where}: max_memory is bytes (an integer) or a size such as 512MB or 2GiB, "
            f"not {value!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


# --- admission decisions ----------------------------------------------------------


class Admit(StrEnum):
    RUN = "run"  # among the first max_running of its group: it runs now
    QUEUE = "queue"  # it waits in its group's queue
    REFUSE = "refuse"  # the queue is full


@dataclass(frozen=True)
class Decision:
    admit: Admit
    running: int = 0  # queries of the group running, as counted for the decision
    queued: int = 0  # ... waiting ahead of this one

    def refusal(self, group: ResourceGroup) -> str:
        return (
            f"resource group {group.name!r} is full: {self.running} queries running, "
            f"{self.queued} queued (limit {group.max_queued}); retry later, or ask an "
            "admin to raise its max_queued or max_running (duckfleet resource-groups set)"
        )


def decide(group: ResourceGroup, ahead: int, *, new: bool) -> Decision:
    """What a query with ``ahead`` queries of its group before it in the group's queue
    (the running ones and the waiting ones, in arrival order) may do. A ``new`` query
    (just arrived) is refused when the queue is full; one already waiting keeps its
    place until it may run."""
    if group.max_running is None or ahead < group.max_running:
        return Decision(Admit.RUN, min(ahead, group.max_running or ahead), 0)
    running, queued = group.max_running, ahead - group.max_running
    if new and queued >= group.max_queued:
        return Decision(Admit.REFUSE, running, queued)
    return Decision(Admit.QUEUE, running, queued)


@dataclass(frozen=True)
class QueryLimits:
    """What a query's group and the front door's settings give it: its timeout, its
    tasks' memory limit, and which of them set each (for the error messages)."""

    group: str = GLOBAL
    timeout: float = 600.0
    memory_limit: str = ""  # DuckDB memory_limit text; "": none
    timeout_by_group: bool = False  # max_run_time, not DUCKFLEET_QUERY_TIMEOUT, set it

    def timeout_message(self) -> str:
        if self.timeout_by_group:
            return (
                f"the query ran longer than the max_run_time of resource group "
                f"{self.group!r} ({self.timeout:g}s) and was cancelled"
            )
        return (
            f"the query ran longer than DUCKFLEET_QUERY_TIMEOUT={self.timeout:g}s and was cancelled"
        )


def limits_for(
    group: ResourceGroup, query_timeout: float, query_memory_limit: str = ""
) -> QueryLimits:
    """The limits of a query of ``group`` on a front door whose DUCKFLEET_QUERY_TIMEOUT
    and DUCKFLEET_QUERY_MEMORY_LIMIT are given: the smaller of each pair."""
    timeout, by_group = query_timeout, False
    if group.max_run_time is not None and group.max_run_time < query_timeout:
        timeout, by_group = group.max_run_time, True
    memory = query_memory_limit
    if group.max_memory is not None:
        try:
            own = parse_bytes(query_memory_limit) if query_memory_limit.strip() else None
        except ResourceGroupError:  # "50%": not comparable; the group's applies
            own = None
        if own is None or group.max_memory < own:
            memory = f"{group.max_memory}B"
    return QueryLimits(group.name, timeout, memory, by_group)
