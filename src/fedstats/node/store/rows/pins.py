"""Which segment files open snapshots still read, so that a retired file outlives them.

A compaction, a merge or a drop retires files the catalog no longer names; a snapshot
taken before may still be reading them. `FilePins` counts the snapshots per file and
removes a retired file when its count reaches zero (at once if nobody holds it).

A snapshot may be released from `__del__`, by the garbage collector, in whatever thread
allocates at that moment, maybe one that holds the database's lock, which `pin` waits
for while holding this one. A release that would block is therefore deferred (kept in a
list, taken up by the next pin or release) instead of waiting: no lock-order deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class FilePins:
    """Pin counts of the files of `directory`; `on_idle` runs when the last pin goes."""

    def __init__(self, directory: Path, on_idle: Callable[[], None]) -> None:
        self.directory = directory
        self._on_idle = on_idle
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}
        self._retired: set[str] = set()
        self._deferred: list[list[str]] = []

    def pin(self, read: Callable[[], tuple[T, list[str]]]) -> tuple[T, list[str]]:
        """Run `read` (answering a value and the files it names) and pin those files,
        atomically with respect to `retire`."""
        with self._lock:
            self._take_deferred()
            value, files = read()
            for f in files:
                self._count[f] = self._count.get(f, 0) + 1
            return value, files

    def release(self, files: list[str], *, blocking: bool = True) -> None:
        if not self._lock.acquire(blocking=blocking):
            self._deferred.append(files)  # list.append is atomic
            return
        try:
            self._take_deferred()
            self._unpin(files)
        finally:
            self._lock.release()

    def retire(self, files: Iterable[str]) -> None:
        """Files no catalog row names any more: removed now, or when their last pin goes."""
        with self._lock:
            self._take_deferred()
            for f in files:
                if self._count.get(f):
                    self._retired.add(f)
                else:
                    (self.directory / f).unlink(missing_ok=True)

    def when_idle(self) -> None:
        """Run `on_idle` now if no file is pinned, else when the last pin goes."""
        with self._lock:
            self._take_deferred()
            if not self._count:
                self._on_idle()

    def _take_deferred(self) -> None:
        while self._deferred:
            self._unpin(self._deferred.pop())

    def _unpin(self, files: list[str]) -> None:
        for f in files:
            self._count[f] -= 1
            if self._count[f]:
                continue
            del self._count[f]
            if f in self._retired:
                self._retired.discard(f)
                (self.directory / f).unlink(missing_ok=True)
        if files and not self._count:
            self._on_idle()
