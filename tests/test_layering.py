"""The packages' imports, read from the source: no cycle between `flight/`,
`worker/`, `wire/`, `control/` and `planner/`, and the front door and the workers
share only `wire/` (issue 14: neither imports the other)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flight", "worker", "wire", "control", "planner")


# `from duckfleet.X...` or `import duckfleet.X...`, at the top or indented (a lazy
# import inside a function, TYPE_CHECKING included). Read as text: ast.parse of every
# module in one process hit a CPython 3.11 SystemError in CI.
IMPORT = re.compile(r"^\s*(?:from|import)\s+duckfleet\.(\w+)", re.MULTILINE)


def imports_of(package: str) -> dict[str, set[str]]:
    """For each module of `package`, the other layered packages it imports."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        found = {m for m in IMPORT.findall(path.read_text()) if m in PACKAGES}
        out[str(path.relative_to(ROOT))] = found - {package}
    return out


def graph() -> dict[str, set[str]]:
    return {p: set().union(*imports_of(p).values()) for p in PACKAGES}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of packages, if there is one."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_import_reader_sees_lazy_and_top_level_imports():
    text = "from duckfleet.wire.auth import X\n    import duckfleet.planner.plan\nimport os\n"
    assert IMPORT.findall(text) == ["wire", "planner"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_between_the_layered_packages():
    edges = graph()
    assert all(edges[p] for p in ("flight", "worker")), edges  # the walk sees imports
    assert cycle(edges) is None, f"import cycle: {' -> '.join(cycle(edges) or [])}"


def test_front_doors_and_workers_share_only_wire():
    offenders = {
        module: sorted(found & {"flight", "worker"})
        for package in ("flight", "worker", "wire")
        for module, found in imports_of(package).items()
        if found & {"flight", "worker"}
    }
    assert offenders == {}, offenders
