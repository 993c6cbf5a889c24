"""The etcd keyspace: the only module that builds or parses duckfleet's keys.

Every key lives under a namespace (default ``/duckfleet``)::

    members/<kind>/<member>     member record            member lease
    catalog/tables/<name>       Table JSON               -
    catalog/views/<name>        View JSON                -
    sessions/<id>               client session options   session lease
    access/grants/<name>/<kind>/<principal>
                                a SELECT grant (JSON)    -
    access/ungranted            who reads a name nobody  -
                                was granted: public|admins
    admission/groups            resource groups (JSON)   -
    admission/queue/<g>/<id>    a query of group g that  front door's
                                runs or waits (Ticket)   admission lease
    queries/<q>                 QueryRecord (immutable)  query lease
    status/<q>                  QueryStatus (mutable)    query lease
    tasks/<q>/<t>               TaskPlan JSON            query lease
    pending/<q>/<t>             inputs still unfinished  query lease
                                (only consumers of more than FEW_INPUTS inputs;
                                the others: their inputs' done keys decide)
    pending/<q>/_query          output tasks unfinished  query lease
                                (likewise)
    runnable/<q>/<t>            present = may be claimed query lease
    attempts/<q>/<t>            version = claims so far  query lease
    claims/<q>/<t>              Claim JSON               worker lease
    copies/<q>/<t>              Claim of a second copy   worker lease
    done/<q>/<t>                task finished            query lease
    results/<q>/<t>             where the result lives   worker lease
    fingerprints/<f>/<q>        the front door waiting   query lease
                                for it (until answered)

The query lease's TTL is the query timeout plus the result retention time: etcd
removes a query's keys by itself, and workers drop its results when they see
``queries/<q>`` deleted. Claims and results index entries vanish with the worker
that holds them. A copy is a speculative second run of a straggling task
(control/speculation.py): whichever of claim and copy completes first wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from duckfleet.ids import QueryId, TaskId

QUERY_SINK = TaskId("_query")  # the pending counter of a query's output tasks


@dataclass(frozen=True)
class Keyspace:
    namespace: str = "/duckfleet"

    def _k(self, *parts: str) -> str:
        return "/".join((self.namespace.rstrip("/"), *parts))

    def _prefix(self, *parts: str) -> str:
        return self._k(*parts) + "/"

    # membership
    def member(self, kind: str, member_id: str) -> str:
        return self._k("members", kind, member_id)

    def members(self, kind: str) -> str:
        return self._prefix("members", kind)

    # catalog
    def table(self, name: str) -> str:
        return self._k("catalog", "tables", name.lower())

    def tables(self) -> str:
        return self._prefix("catalog", "tables")

    def view(self, name: str) -> str:
        return self._k("catalog", "views", name.lower())

    def views(self) -> str:
        return self._prefix("catalog", "views")

    def catalog(self) -> str:
        return self._prefix("catalog")

    # client sessions (Flight SetSessionOptions)
    def session(self, session_id: str) -> str:
        return self._k("sessions", session_id)

    def sessions(self) -> str:
        return self._prefix("sessions")

    # access: SELECT grants and the ungranted setting (control/grants.py)
    def access(self) -> str:
        return self._prefix("access")

    def grants(self) -> str:
        return self._prefix("access", "grants")

    def grant(self, name: str, kind: str, principal: str) -> str:
        return self._k("access", "grants", name.lower(), kind, principal)

    def ungranted(self) -> str:
        return self._k("access", "ungranted")

    # admission: resource groups and their queues (control/resource_groups.py)
    def admission(self) -> str:
        return self._prefix("admission")

    def resource_groups(self) -> str:
        return self._k("admission", "groups")

    def admission_queues(self) -> str:
        return self._prefix("admission", "queue")

    def admission_queue(self, group: str) -> str:
        return self._prefix("admission", "queue", group)

    def admission_ticket(self, group: str, ticket: str) -> str:
        return self._k("admission", "queue", group, ticket)

    # queries
    def query(self, q: QueryId) -> str:
        return self._k("queries", q)

    def queries(self) -> str:
        return self._prefix("queries")

    def status(self, q: QueryId) -> str:
        return self._k("status", q)

    def all_statuses(self) -> str:
        return self._prefix("status")

    def task(self, q: QueryId, t: TaskId) -> str:
        return self._k("tasks", q, t)

    def tasks(self, q: QueryId) -> str:
        return self._prefix("tasks", q)

    def all_tasks(self) -> str:
        return self._prefix("tasks")

    def pending(self, q: QueryId, t: TaskId) -> str:
        return self._k("pending", q, t)

    def runnable(self, q: QueryId, t: TaskId) -> str:
        return self._k("runnable", q, t)

    def all_runnable(self) -> str:
        return self._prefix("runnable")

    def runnable_of(self, q: QueryId) -> str:
        return self._prefix("runnable", q)

    def attempts(self, q: QueryId, t: TaskId) -> str:
        return self._k("attempts", q, t)

    def all_attempts(self) -> str:
        return self._prefix("attempts")

    def attempts_of(self, q: QueryId) -> str:
        return self._prefix("attempts", q)

    def claim(self, q: QueryId, t: TaskId) -> str:
        return self._k("claims", q, t)

    def all_claims(self) -> str:
        return self._prefix("claims")

    def claims_of(self, q: QueryId) -> str:
        return self._prefix("claims", q)

    def copy(self, q: QueryId, t: TaskId) -> str:
        return self._k("copies", q, t)

    def all_copies(self) -> str:
        return self._prefix("copies")

    def done(self, q: QueryId, t: TaskId) -> str:
        return self._k("done", q, t)

    def all_done(self) -> str:
        return self._prefix("done")

    def done_of(self, q: QueryId) -> str:
        return self._prefix("done", q)

    def result(self, q: QueryId, t: TaskId) -> str:
        return self._k("results", q, t)

    def all_results(self) -> str:
        return self._prefix("results")

    def results_of(self, q: QueryId) -> str:
        return self._prefix("results", q)

    def fingerprint(self, f: str, q: QueryId) -> str:
        return self._k("fingerprints", f, q)

    def fingerprints(self, f: str) -> str:
        return self._prefix("fingerprints", f)

    # parsing
    def split_task_key(self, key: str | bytes, prefix: str) -> tuple[QueryId, TaskId]:
        """``<prefix><q>/<t>`` -> (q, t), for keys under runnable/, claims/, ..."""
        text = key.decode() if isinstance(key, bytes) else key
        q, _, t = text[len(prefix) :].partition("/")
        return QueryId(q), TaskId(t)

    def tail(self, key: str | bytes, prefix: str) -> str:
        text = key.decode() if isinstance(key, bytes) else key
        return text[len(prefix) :]
