"""The splits of a table: what one task of a split stage reads of it.

A split is about `PlannerSettings.split_bytes` on storage: a file larger than that
is cut at row-group boundaries into pieces of about equal size, so one big file
still spreads over the fleet; smaller files (and pieces) are packed together, in
file order, while the split stays within the size, so a table of many small files
costs a task per split's worth of data, not a task per file, and a table smaller
than one split is one split (the planner then gives it one task). Packing stops at
`PlannerSettings.pack_bytes` (0: off). Row groups that a
`RowGroupFilter` rules out (min/max pruning) are left out; a run stops at each of
them. Without row-group information in the catalog, a file is whole or nothing.
"""

from __future__ import annotations

import math

from duckfleet.catalog import DataFile, Table
from duckfleet.planner.plan import RowRange, TableBinding
from duckfleet.planner.prune import RowGroupFilter
from duckfleet.planner.settings import PlannerSettings


def splits_of(
    table: Table, settings: PlannerSettings, keep: RowGroupFilter | None = None
) -> list[TableBinding]:
    """The table's splits, in file order; at least one (an empty range if every row
    group is pruned, so that the stage still has a task and a schema)."""
    pieces = [
        (file, piece, _bytes(file, piece))
        for file in table.files
        for piece in _pieces(file, settings.split_bytes, keep)
    ]
    out = [_binding(table.name, group) for group in _packed(pieces, settings.pack_bytes)]
    if not out and table.files:
        out.append(TableBinding(table.name, (table.files[0].path,), (RowRange(0, 0, 0, 0),)))
    return out


_Piece = tuple[DataFile, RowRange | None, int]  # a file, its rows (None: whole), bytes


def _packed(pieces: list[_Piece], target: int) -> list[list[_Piece]]:
    """Consecutive pieces grouped while a group stays within `target` bytes (a piece
    larger than that stands alone)."""
    groups: list[list[_Piece]] = []
    size = 0
    for piece in pieces:
        if groups and size + piece[2] <= target:
            groups[-1].append(piece)
            size += piece[2]
        else:
            groups.append([piece])
            size = piece[2]
    return groups


def _binding(name: str, group: list[_Piece]) -> TableBinding:
    files = tuple(f.path for f, _, _ in group)
    ranges = tuple(r for _, r, _ in group)
    return TableBinding(name, files, ranges if any(r is not None for r in ranges) else ())


def _bytes(file: DataFile, piece: RowRange | None) -> int:
    if piece is None:
        return file.bytes
    return sum(g.bytes for g in file.groups[piece.first_group : piece.end_group])


def split_count(table: Table, settings: PlannerSettings, keep: RowGroupFilter | None = None) -> int:
    return len(splits_of(table, settings, keep))


def _pieces(file: DataFile, target: int, keep: RowGroupFilter | None) -> list[RowRange | None]:
    groups = file.groups
    if not groups or len(groups) != file.row_groups:
        return [None]  # the whole file: the catalog does not know its row groups
    starts = [0]
    for g in groups:
        starts.append(starts[-1] + g.rows)
    runs: list[list[int]] = [[]]
    for i, g in enumerate(groups):
        if keep is None or keep(g):
            runs[-1].append(i)
        elif runs[-1]:
            runs.append([])
    pieces: list[RowRange | None] = []
    for run in runs:
        if not run:
            continue
        if len(run) == len(groups) and file.bytes <= target:
            pieces.append(None)  # one whole file: no range to filter on
            continue
        for part in _cut(run, [groups[i].bytes for i in run], target):
            pieces.append(RowRange(part[0], part[-1] + 1, starts[part[0]], starts[part[-1] + 1]))
    return pieces


def _cut(run: list[int], sizes: list[int], target: int) -> list[list[int]]:
    """`run` cut into ceil(total / target) pieces of about equal bytes, in order."""
    total = sum(sizes)
    count = min(len(run), max(1, math.ceil(total / max(target, 1))))
    pieces: list[list[int]] = [[] for _ in range(count)]
    done = 0
    for i, size in zip(run, sizes, strict=True):
        # the piece this row group's middle falls in
        index = min(count - 1, int((done + size / 2) * count / total)) if total else 0
        pieces[index].append(i)
        done += size
    return [p for p in pieces if p]
