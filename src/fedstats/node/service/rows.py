"""Kept rows: the row store of each project created with `sml_project_keep_rows`.

A GLM is not a function of one exchange of co-moments, so a project that will fit one
keeps its learned rows on the node's volume (`store.rows.RowStore`, one per project for
the node's lifetime, files under `<data_dir>/rows/<cid>/<pid>/`, catalog in the node's
SQLite). Whether a project keeps rows is the existence of its store in the catalog: no
second flag to disagree with it.

Durability beside the accumulator's log (`updates.update` calls `append` / `forget`
under the project's lock):

* learn: the rows are appended (committed) before the batch's statistics are logged;
* forget: the rows are deleted as a multiset first — a row that matches no kept row is
  `UnmatchedRow` (a 400 naming it) and nothing changes, in the accumulator either — and
  the statistics are logged after.

A crash between the two commits leaves the kept rows one batch ahead of the statistics
(the batch was never acknowledged). At start `reconcile` finds that by the row count and
rebuilds the project's statistics from its kept rows, so the two never disagree and no
acknowledged row is lost or doubled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ..engine.accumulator import Accumulator
from ..engine.frame import Batch
from ..store import Database
from ..store.rows import RowStore, stored_names

log = logging.getLogger("fedstats.node.service")

PREFIX = "project/"
BATCH_ROWS = 65536


def store_name(cid: str, pid: str) -> str:
    """The catalog name of a project's row store."""
    return f"{PREFIX}{quote(cid, safe='')}/{quote(pid, safe='')}"


def _parse(name: str) -> tuple[str, str]:
    from urllib.parse import unquote

    cid, pid = name[len(PREFIX):].split("/", 1)
    return unquote(cid), unquote(pid)


def _segment(part: str) -> str:
    """A path segment for an id (quoted; '.' and '..' never name a directory)."""
    q = quote(part, safe="")
    return q if q not in (".", "..") else q.replace(".", "%2E")


class KeptRows:
    """The row stores of this node's keep-rows projects, by (customer, project)."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.root = Path(data_dir) / "rows"
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str], RowStore] = {}

    def directory(self, cid: str, pid: str) -> Path:
        return self.root / _segment(cid) / _segment(pid)

    def load(self) -> list[tuple[str, str]]:
        """Open every kept store in the catalog; answers their (cid, pid)."""
        found = []
        for name in stored_names(self.db, PREFIX):
            cid, pid = _parse(name)
            self._stores[(cid, pid)] = RowStore(self.db, self.directory(cid, pid), name)
            found.append((cid, pid))
        return found

    def create(self, cid: str, pid: str) -> RowStore:
        """A new, empty store for the project (committed in the catalog when this returns)."""
        with self._lock:
            existing = self._stores.get((cid, pid))
            if existing is not None:
                return existing
            store = RowStore(self.db, self.directory(cid, pid), store_name(cid, pid))
            self._stores[(cid, pid)] = store
            return store

    def get(self, cid: str, pid: str) -> RowStore | None:
        """The project's store, or None when the project does not keep rows."""
        return self._stores.get((cid, pid))

    def keeps(self, cid: str, pid: str) -> bool:
        return (cid, pid) in self._stores

    def drop(self, cid: str, pid: str) -> None:
        """Delete the project's kept rows (nothing if it keeps none)."""
        with self._lock:
            store = self._stores.pop((cid, pid), None)
        if store is not None:
            store.drop()

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for s in stores:
            s.close()

    # ------------------------------------------------------------------ start
    def batches(self, cid: str, pid: str) -> Iterator[Batch]:
        """The project's kept rows as row-major engine batches (one snapshot)."""
        store = self._stores[(cid, pid)]
        with store.snapshot() as snap:
            yield from snap.batches(BATCH_ROWS)

    def rebuilt(self, cid: str, pid: str, engine: str) -> Accumulator:
        """The statistics of the project's kept rows, computed afresh."""
        acc = Accumulator(engine)
        for batch in self.batches(cid, pid):
            acc.learn(batch)
        return acc

    def count(self, cid: str, pid: str) -> int:
        return self._stores[(cid, pid)].count()


def undo_rows(store: RowStore, batch: Batch, kind: str) -> None:
    """Revert the row store's part of a learn/forget whose statistics could not be logged."""
    try:
        if kind == "learn":
            store.delete_matching(batch)
        else:
            store.append(batch)
    except Exception as e:  # the next start's reconcile repairs the statistics
        log.error("row store %s: could not revert a %s whose statistics failed: %s: %s",
                  store.name, kind, type(e).__name__, e)
