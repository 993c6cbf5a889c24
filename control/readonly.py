"""Read-only transactions that a cancelled client cannot turn into an etcd crash.

etcd 3.5.0 to 3.5.4 apply a read-only transaction with the calling client's gRPC
context; when that context is cancelled mid-apply (the client was killed, its
deadline passed) the member panics with "unexpected error during txn" and exits
(etcd issue 14110, fixed in 3.5.5 by pull request 14178). Plain Range calls take a
path that returns the cancellation as an error instead. Earlier releases (3.4 and
before) apply transactions without the client's context.

So on an affected member, a transaction with no Put or Delete in it is never sent:
it runs here as Range calls at one revision (the same snapshot the transaction
would have read) and its comparisons are evaluated as etcd evaluates them. On an
unaffected member it is sent as one transaction, one round trip.

Pure parts (version parsing, comparisons, op classification) are separate from the
one function that talks to etcd, `run_as_ranges`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import grpc
from etcd3 import etcdrpc, transactions  # type: ignore[import-untyped]
from etcd3.client import KVMetadata  # type: ignore[import-untyped]
from etcd3.utils import to_bytes  # type: ignore[import-untyped]

# [first affected, first fixed): etcd issue 14110
AFFECTED = ((3, 5, 0), (3, 5, 5))
FIXED_IN = "3.5.5"

Responses = list[list[tuple[bytes, Any]]]


def parse_version(text: str) -> tuple[int, int, int] | None:
    """'3.5.16' -> (3, 5, 16); None for anything else."""
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def has_readonly_txn_bug(version: str) -> bool:
    """True for an etcd that panics on a cancelled read-only transaction, and for a
    version that cannot be read (assume the worst)."""
    v = parse_version(version)
    return v is None or AFFECTED[0] <= v < AFFECTED[1]


def writes(ops: Sequence[Any] | None) -> bool:
    """Does any op (nested transactions included) put or delete?"""
    for op in ops or ():
        if isinstance(op, transactions.Put | transactions.Delete):
            return True
        if isinstance(op, transactions.Txn) and (writes(op.success) or writes(op.failure)):
            return True
    return False


def is_readonly(success: Sequence[Any] | None, failure: Sequence[Any] | None) -> bool:
    """etcd's own test (isTxnReadonly): no op of either branch writes."""
    return not writes(success) and not writes(failure)


def compare_holds(compare: Any, kv: Any | None) -> bool:
    """One comparison as etcd applies it to the key's current state (`kv` None: the
    key does not exist, whose version and revisions are 0; a VALUE comparison on a
    missing key is always false)."""
    if compare.range_end is not None:
        raise NotImplementedError("comparisons over a key range are not evaluated here")
    op = compare.op
    if isinstance(compare, transactions.Value):
        if kv is None:
            return False
        ours, theirs = bytes(kv.value), to_bytes(compare.value)
    else:
        field = {
            transactions.Version: "version",
            transactions.Create: "create_revision",
            transactions.Mod: "mod_revision",
        }[type(compare)]
        ours, theirs = (int(getattr(kv, field)) if kv is not None else 0), int(compare.value)
    if op == etcdrpc.Compare.EQUAL:
        return bool(ours == theirs)
    if op == etcdrpc.Compare.NOT_EQUAL:
        return bool(ours != theirs)
    if op == etcdrpc.Compare.LESS:
        return bool(ours < theirs)
    if op == etcdrpc.Compare.GREATER:
        return bool(ours > theirs)
    raise ValueError(f"comparison without an operator: {compare!r}")


def _range_request(key: Any, range_end: Any, revision: int) -> Any:
    req = etcdrpc.RangeRequest(key=to_bytes(key))
    if range_end is not None:
        req.range_end = to_bytes(range_end)
    if revision:
        req.revision = revision
    return req


def _ranges(client: Any, requests: list[tuple[Any, Any]], revision: int) -> list[Any]:
    """Range responses for (key, range_end) pairs, sent at once, all at `revision`
    (0: the latest)."""
    stub, timeout = client.kvstub, client.timeout
    try:
        futures = [
            stub.Range.future(
                _range_request(k, e, revision),
                timeout,
                credentials=client.call_credentials,
                metadata=client.metadata,
            )
            for k, e in requests
        ]
        return [f.result() for f in futures]
    except grpc.RpcError as exc:
        client._manage_grpc_errors(exc)  # marks the endpoint failed, raises etcd3's error
        raise


def _snapshot(client: Any, requests: list[tuple[Any, Any]]) -> list[Any]:
    """Ranges that saw one revision: sent together; if etcd moved on between them
    (their headers differ), read again, all pinned to the newest revision seen."""
    responses = _ranges(client, requests, 0)
    revisions = {int(r.header.revision) for r in responses}
    if len(revisions) > 1:
        responses = _ranges(client, requests, max(revisions))
    return responses


def _pairs(responses: list[Any]) -> Responses:
    return [[(kv.value, KVMetadata(kv, r.header)) for kv in r.kvs] for r in responses]


def run_as_ranges(
    client: Any, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any]
) -> tuple[bool, Responses]:
    """A read-only transaction, answered as etcd would (succeeded, and each Get's
    (value, metadata) pairs) but read with Range calls at one revision: one round of
    reads without comparisons; with them, the compared keys first, then the chosen
    branch's Gets at the revision the comparisons saw."""
    for op in (*success, *failure):
        if not isinstance(op, transactions.Get):
            raise NotImplementedError(f"a read-only transaction may hold Gets only, not {op!r}")
    if not compare:
        return True, _pairs(_snapshot(client, [(g.key, g.range_end) for g in success]))
    seen = _snapshot(client, [(c.key, None) for c in compare])
    ok = all(
        compare_holds(c, r.kvs[0] if r.kvs else None) for c, r in zip(compare, seen, strict=True)
    )
    branch = success if ok else failure
    if not branch:
        return ok, []
    revision = int(seen[0].header.revision)
    return ok, _pairs(_ranges(client, [(g.key, g.range_end) for g in branch], revision))
