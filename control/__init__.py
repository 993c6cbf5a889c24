"""The control plane: duckfleet's etcd keyspace and every operation on it."""

from duckfleet.control.catalog_store import CatalogStore
from duckfleet.control.membership import Membership
from duckfleet.control.queries import QueryStore
from duckfleet.control.store import PrefixWatch, Store
from duckfleet.control.task_queue import ClaimedTask, TaskQueue

__all__ = [
    "CatalogStore",
    "ClaimedTask",
    "Membership",
    "PrefixWatch",
    "QueryStore",
    "Store",
    "TaskQueue",
]
