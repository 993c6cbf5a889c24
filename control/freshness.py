"""Whether something read from etcd under a prefix is still current, told by a watch
instead of asked by a read (issue 14: "nothing is read that a watch already told").

A `Freshness` holds a watch on the prefix and a generation number, bumped by every
change under the prefix and by every reconnect of the watch (it may have missed
changes). A reader takes `token()` before it reads and keeps it with what it read;
while `token()` still returns the same number, nothing under the prefix changed. No
token (None) while the watch is not connected: read again every time.

A watch tells after the change committed, within milliseconds: a process that
changes the prefix itself calls `changed()` so that it reads its own writes.
"""

from __future__ import annotations

import threading

from duckfleet.control.store import PrefixWatch, Store


class Freshness:
    def __init__(self, store: Store, prefix: str, name: str) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self.watch = PrefixWatch(
            store, prefix, lambda *_: self.changed(), self.changed, f"fresh-{name}"
        )

    def start(self) -> Freshness:
        self.watch.start()
        return self

    def stop(self) -> None:
        self.watch.stop()

    def changed(self) -> None:
        with self._lock:
            self._generation += 1

    def token(self) -> int | None:
        """The current generation, or None while the watch cannot vouch for it."""
        if not self.watch.connected.is_set():
            return None
        with self._lock:
            return self._generation
