"""`RowStore`: one project's (or table's) learned rows, durable on the node's volume.

Layout: Arrow IPC segment files in the store's directory and a catalog in SQLite
(`catalog.py`). The catalog commit is the acknowledgement of every change:

- append: a small batch becomes an inline segment (its IPC bytes in the catalog row); a
  larger one a segment file, written, fsynced and renamed before the commit that names
  it. Inline segments are merged into files once they add up (`inline_merge_bytes`).
- delete_matching: the rows to forget are matched as a multiset against a snapshot
  (`matching.py`); if any has no match nothing changes, else the deletion vectors of the
  segments touched are written in one transaction. A segment left mostly deleted
  (`compact_below`) is rewritten with its live rows, keeping its place in the order.
- open: files the catalog does not name (an append, merge or compaction that crashed
  before its commit, or a retired file not yet removed) are garbage and are removed.

Appends, forgets, merges and compactions are serialized by the store's lock; scans take
a `Snapshot` and never block them. One handle per directory: the directory is locked
(`flock`, released by the kernel if the process dies), so a second open is refused.

Schema: fixed by the first append (names and C/B/T/S/L types, the batch's X attributes
are not stored). A later batch must have exactly the same attributes and types, in any
order; a new, missing or retyped attribute is refused (`RowSchemaError`), since stored
rows would have no value for it. New category values are not a schema change.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from fedstats.node.engine.frame import Batch
from fedstats.node.store.db import Database

from . import catalog
from .catalog import Segment
from .errors import CorruptStore, RowStoreClosed, RowStoreLocked, UnmatchedRow
from .matching import Matcher
from .pins import FilePins
from .schema import RowSchema, to_rows
from .segments import (
    SUFFIX,
    chunks,
    fsync_dir,
    inline_bytes,
    pack_mask,
    unpack_mask,
    write_file,
)
from .snapshot import Snapshot

LOCK_FILE = ".lock"


class RowStore:
    """The rows of one store `name`, files under `directory`, catalog in `db`."""

    def __init__(
        self,
        db: Database,
        directory: Path,
        name: str,
        *,
        chunk_bytes: int = 8 << 20,
        inline_max_bytes: int = 1 << 20,
        inline_merge_bytes: int = 8 << 20,
        inline_merge_count: int = 256,
        compact_below: float = 0.5,
    ) -> None:
        self.db = db
        self.directory = Path(directory)
        self.name = name
        self.chunk_bytes = chunk_bytes
        self.inline_max_bytes = inline_max_bytes
        self.inline_merge_bytes = inline_merge_bytes
        self.inline_merge_count = inline_merge_count
        self.compact_below = compact_below
        self._write = threading.Lock()
        self._pins = FilePins(self.directory, self._sweep_dropped)
        self._state = "open"  # then "closed" or "dropped"
        self._swept = False  # a dropped store's files and directory are gone
        self._lock_fd = self._take_directory()
        try:
            self._schema = catalog.ensure(db, name)
            self._collect_garbage()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- opening -------------------------------------------------------------------

    def _take_directory(self) -> int:
        parent_existed = self.directory.parent.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.directory.parent)
        if not parent_existed:
            fsync_dir(self.directory.parent.parent)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RowStoreLocked(f"row store directory {self.directory} is already open") from None
        owner = os.pread(fd, 4096, 0).decode()
        if owner and owner != self.name:
            os.close(fd)
            raise CorruptStore(
                f"row store directory {self.directory} belongs to store {owner!r}, not {self.name!r}"
            )
        if not owner:
            os.pwrite(fd, self.name.encode(), 0)
            os.fsync(fd)
        return fd

    def _collect_garbage(self) -> None:
        with self.db.read() as c:
            named = {s.file for s in catalog.segments(c, self.name, bodies=False) if s.file}
        present = {p.name for p in self.directory.iterdir()} - {LOCK_FILE}
        if missing := sorted(named - present):
            raise CorruptStore(
                f"row store {self.name!r}: segment files missing from {self.directory}: "
                f"{', '.join(missing[:5])}"
            )
        garbage = present - named
        for g in garbage:
            path = self.directory / g
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        if garbage:
            fsync_dir(self.directory)

    # -- the interface -------------------------------------------------------------

    def schema(self) -> RowSchema | None:
        """The stored attributes and their types (None until the first append)."""
        return self._schema

    def count(self) -> int:
        """How many rows the store holds (forgotten rows not counted)."""
        self._check_open()
        with self.db.read() as c:
            return catalog.counts(c, self.name)

    def append(self, batch: Batch) -> int:
        """Store the batch's rows; durable when this returns. Answers the rows stored."""
        with self._write:
            self._check_open()
            schema, rows = to_rows(batch, self._schema)
            new_schema = self._schema is None
            if rows.num_rows == 0:
                if new_schema:
                    with self.db.transaction() as c:
                        catalog.set_schema(c, self.name, schema)
                    self._schema = schema
                return 0
            body = inline_bytes(rows) if rows.nbytes <= self.inline_max_bytes else None
            file = None
            if body is None:
                file = self._new_file_name()
                write_file(self.directory, file, rows.schema, chunks(rows, self._chunk_rows(schema)))
            try:
                with self.db.transaction() as c:
                    if new_schema:
                        catalog.set_schema(c, self.name, schema)
                    seg = catalog.next_seg(c, self.name)
                    catalog.insert(c, self.name, seg, file=file, body=body, rows=rows.num_rows)
            except BaseException:
                if file is not None:
                    (self.directory / file).unlink(missing_ok=True)
                raise
            self._schema = schema
            if body is not None:
                self._maybe_merge_inline()
            return rows.num_rows

    def delete_matching(self, batch: Batch) -> int:
        """Forget one stored row equal to each row of `batch`: all of them, or none.

        Raises `UnmatchedRow`, naming the first row of `batch` without a stored row left
        to match it, and changes nothing in that case. Answers the rows forgotten.
        """
        with self._write:
            self._check_open()
            if self._schema is None:
                if batch.rows == 0:
                    return 0
                raise UnmatchedRow("row 0 of the batch matches no stored row: the store is empty; "
                                   "nothing was forgotten", 0)
            schema, wanted = to_rows(batch, self._schema)
            if wanted.num_rows == 0:
                return 0
            matcher = Matcher(wanted, schema)
            claims: dict[int, list[np.ndarray]] = {}
            by_seg: dict[int, Segment] = {}
            with self._snapshot(bodies=True) as snap:
                for chunk in snap.chunks():
                    live, positions = chunk.live_rows()
                    mask = matcher.claim(live)
                    if mask.any():
                        claims.setdefault(chunk.seg.seg, []).append(positions[mask])
                        by_seg[chunk.seg.seg] = chunk.seg
                    if matcher.done:
                        break
            missing = matcher.first_unmatched()
            if missing is not None:
                raise UnmatchedRow(_unmatched_message(wanted, matcher, missing), missing)
            emptied: list[int] = []
            with self.db.transaction() as c:
                for seg_id, parts in claims.items():
                    seg = by_seg[seg_id]
                    dead = unpack_mask(seg.deleted, seg.rows)
                    dead[np.concatenate(parts)] = True
                    live_left = seg.rows - int(dead.sum())
                    if live_left == 0:
                        catalog.remove(c, self.name, seg_id)
                        emptied.append(seg_id)
                    else:
                        catalog.set_deleted(c, self.name, seg_id, live_left, pack_mask(dead))
            self._pins.retire(f for s in emptied if (f := by_seg[s].file) is not None)
            self._compact([s for s in claims if s not in emptied])
            return wanted.num_rows

    def snapshot(self) -> Snapshot:
        """The rows as of now, for one or several scans (close it when done)."""
        self._check_open()
        return self._snapshot(bodies=True)

    def scan(
        self, batch_rows: int, columns: Sequence[str] | None = None, *, exact: bool = True
    ) -> Iterator[pa.RecordBatch]:
        """The live rows as Arrow record batches of `batch_rows` rows, as of the call
        (`Snapshot.scan`; several scans of the same rows: take a `snapshot()`)."""
        snap = self.snapshot()
        return _scanning(snap, batch_rows, columns, exact)

    def levels(self, columns: Sequence[str] | None = None) -> dict[str, list[str]]:
        """The labels each encoded (T/S/L) attribute's stored rows hold, sorted."""
        with self.snapshot() as snap:
            return snap.levels(columns)

    def drop(self) -> None:
        """Delete the store: its catalog rows, then its files (once no snapshot reads them)."""
        with self._write:
            self._check_open()
            with self.db.read() as c:
                files = [s.file for s in catalog.segments(c, self.name, bodies=False) if s.file]
            with self.db.transaction() as c:
                catalog.drop(c, self.name)
            self._state = "dropped"
            self._pins.retire(files)
            self._pins.when_idle()

    def close(self) -> None:
        """Release the directory. Snapshots still open stay readable until closed, as long
        as no new handle opens the directory (its garbage collection would remove the
        retired files they may still need): close them first."""
        with self._write:
            if self._state == "open":
                self._state = "closed"
                os.close(self._lock_fd)

    def __enter__(self) -> RowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- snapshots and retired files -----------------------------------------------

    def _snapshot(self, *, bodies: bool) -> Snapshot:
        def read() -> tuple[tuple[RowSchema | None, list[Segment]], list[str]]:
            with self.db.read() as c:  # one read, between two commits
                schema = catalog.schema_of(c, self.name)
                segs = catalog.segments(c, self.name, bodies=bodies)
            return (schema, segs), [s.file for s in segs if s.file]

        (schema, segs), files = self._pins.pin(read)

        def release(blocking: bool) -> None:
            self._pins.release(files, blocking=blocking)

        return Snapshot(self.directory, schema, segs, release)

    def _sweep_dropped(self) -> None:
        """Once dropped and no snapshot reads a file: the directory goes (called by pins)."""
        if self._state != "dropped" or self._swept:
            return
        self._swept = True
        os.close(self._lock_fd)
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.directory.parent)

    def _check_open(self) -> None:
        if self._state != "open":
            raise RowStoreClosed(f"row store {self.name!r} is {self._state}")

    # -- merging and compaction (under the write lock) ----------------------------

    def _new_file_name(self) -> str:
        return f"{uuid.uuid4().hex}{SUFFIX}"

    def _chunk_rows(self, schema: RowSchema) -> int:
        return max(1024, self.chunk_bytes // (8 * len(schema.names)))

    def _maybe_merge_inline(self) -> None:
        with self.db.read() as c:
            n, size = catalog.inline_size(c, self.name)
        if n >= self.inline_merge_count or size >= self.inline_merge_bytes:
            self._merge_inline()

    def _merge_inline(self) -> None:
        """Each run of consecutive inline segments becomes one file, in the run's place."""
        assert self._schema is not None
        with self._snapshot(bodies=True) as snap:
            runs: list[list[Segment]] = [[]]
            for seg in snap.segments:
                if seg.body is not None:
                    runs[-1].append(seg)
                elif runs[-1]:
                    runs.append([])
            for run in filter(None, runs):
                self._rewrite(snap, run)

    def _compact(self, seg_ids: list[int]) -> None:
        with self._snapshot(bodies=True) as snap:
            for seg in snap.segments:
                if seg.seg in seg_ids and seg.file is not None and seg.live < seg.rows * self.compact_below:
                    self._rewrite(snap, [seg])

    def _rewrite(self, snap: Snapshot, run: list[Segment]) -> None:
        """Replace the segments of `run` by one file of their live rows, in the first's place."""
        assert self._schema is not None
        ids = {s.seg for s in run}
        live = sum(s.live for s in run)
        file = self._new_file_name()
        if live:

            def rows() -> Iterator[pa.RecordBatch]:
                for chunk in snap.chunks(only=ids):
                    yield chunk.live_rows()[0]

            write_file(self.directory, file, self._schema.arrow(), rows())
        try:
            with self.db.transaction() as c:
                for s in run:
                    catalog.remove(c, self.name, s.seg)
                if live:
                    catalog.insert(c, self.name, run[0].seg, file=file, body=None, rows=live)
        except BaseException:
            (self.directory / file).unlink(missing_ok=True)
            raise
        self._pins.retire(s.file for s in run if s.file is not None)


def _scanning(
    snap: Snapshot, batch_rows: int, columns: Sequence[str] | None, exact: bool
) -> Iterator[pa.RecordBatch]:
    with snap:
        yield from snap.scan(batch_rows, columns, exact=exact)


def _unmatched_message(wanted: pa.Table, matcher: Matcher, index: int) -> str:
    row = {name: wanted.column(name)[index].as_py() for name in wanted.column_names}
    shown = ", ".join(f"{k}={v!r}" for k, v in list(row.items())[:8])
    if len(row) > 8:
        shown += ", …"
    copies, found = matcher.copies(index)
    how = (
        "matches no stored row"
        if found == 0
        else f"is given {copies} times but the store holds {found} equal "
        + ("row" if found == 1 else "rows")
    )
    return f"row {index} of the batch ({shown}) {how}: nothing was forgotten"
