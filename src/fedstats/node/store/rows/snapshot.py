"""A consistent view of a row store: its segments and deletion vectors as of one moment.

A snapshot is read from the catalog in one go (under the database's lock, so between
two commits) and pins the segment files it names: a compaction or a drop that retires
one of them leaves the file in place until every snapshot holding it is closed. Appends
and forgets made after the snapshot was taken are not seen by it; a model fitted over
several scans of one snapshot (a GLM's Newton rounds) sees the same rows every round.

Reading is chunk by chunk (a segment file's record batches), so memory is bounded by one
chunk plus one output batch whatever the row count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from fedstats.node.engine.frame import ENCODED, Batch

from .catalog import Segment
from .errors import CorruptStore, RowSchemaError
from .schema import RowSchema, levels_of, to_batch
from .segments import read_file, read_inline, unpack_mask


@dataclass(frozen=True)
class Chunk:
    """Rows `offset …` of segment `seg`, with which of them are live (None: all)."""

    seg: Segment
    offset: int
    rows: pa.RecordBatch
    live: np.ndarray | None

    def live_rows(self) -> tuple[pa.RecordBatch, np.ndarray]:
        """The live rows and their positions in the segment."""
        if self.live is None:
            return self.rows, np.arange(self.offset, self.offset + self.rows.num_rows)
        return self.rows.filter(pa.array(self.live)), self.offset + np.flatnonzero(self.live)


class Snapshot:
    """The store's rows as of when it was taken; close it (or use `with`) when done."""

    def __init__(
        self,
        directory: Path,
        schema: RowSchema | None,
        segments: Sequence[Segment],
        release: Callable[[bool], None],
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.segments = list(segments)
        self._release: Callable[[bool], None] | None = release

    @property
    def count(self) -> int:
        return sum(s.live for s in self.segments)

    def close(self) -> None:
        self._close(blocking=True)

    def _close(self, blocking: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(blocking)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._close(blocking=False)  # see pins.py: never wait from the garbage collector

    def chunks(
        self, columns: Sequence[str] | None = None, only: Collection[int] | None = None
    ) -> Iterator[Chunk]:
        """Every stored chunk (deleted rows included, marked), segment by segment.

        `only`: the ids of the segments to read (all when None)."""
        if self._release is None:
            raise ValueError("the snapshot is closed")
        if self.schema is None:
            return
        names = list(self.schema.names)
        for seg in self.segments:
            if only is not None and seg.seg not in only:
                continue
            dead = unpack_mask(seg.deleted, seg.rows) if seg.deleted is not None else None
            offset = 0
            for rows in self._read(seg, columns, names):
                n = rows.num_rows
                live = None if dead is None else ~dead[offset : offset + n]
                yield Chunk(seg, offset, rows, live)
                offset += n
            if offset != seg.rows:
                raise CorruptStore(
                    f"segment {seg.seg} holds {offset} rows, the catalog says {seg.rows}"
                )

    def _read(self, seg: Segment, columns: Sequence[str] | None, names: list[str]) -> Iterator[pa.RecordBatch]:
        if seg.body is not None:
            yield from read_inline(seg.body, columns)
            return
        assert seg.file is not None
        path = self.directory / seg.file
        try:
            yield from read_file(path, columns, names)
        except (OSError, pa.ArrowException) as e:
            raise CorruptStore(f"segment file {path} cannot be read: {e}") from e

    def scan(
        self, batch_rows: int, columns: Sequence[str] | None = None, *, exact: bool = True
    ) -> Iterator[pa.RecordBatch]:
        """The live rows as record batches of `batch_rows` rows (the last one shorter).

        `exact=False` answers batches of at most `batch_rows` rows, each a slice of one
        stored chunk: no copy, for readers that do not care where batches break.
        """
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        cols = self.columns(columns)
        if self.schema is None or cols is None:
            return
        target = self.schema.arrow(cols)
        order = [n for n in self.schema.names if n in cols]
        pending: list[pa.RecordBatch] = []
        have = 0
        for chunk in self.chunks(order):
            rows, _ = chunk.live_rows()
            if order != cols:
                rows = rows.select(cols)
            if not exact:
                for lo in range(0, rows.num_rows, batch_rows):
                    yield rows.slice(lo, batch_rows)
                continue
            while rows.num_rows:
                take = min(batch_rows - have, rows.num_rows)
                pending.append(rows.slice(0, take))
                have += take
                rows = rows.slice(take)
                if have == batch_rows:
                    yield _concat(pending, target)
                    pending, have = [], 0
        if have:
            yield _concat(pending, target)

    def columns(self, columns: Sequence[str] | None) -> list[str] | None:
        """`columns` checked against the schema (all of them when None)."""
        if self.schema is None:
            return None
        if columns is None:
            return list(self.schema.names)
        unknown = [c for c in columns if c not in self.schema.names]
        if unknown or not columns or len(set(columns)) != len(columns):
            raise RowSchemaError(
                f"columns must be distinct attributes of the store ({', '.join(self.schema.names)}); "
                f"unknown: {', '.join(map(repr, unknown)) or 'none'}"
            )
        return list(columns)

    def levels(self, columns: Sequence[str] | None = None) -> dict[str, list[str]]:
        """The sorted labels each encoded attribute's live rows hold (one pass over them)."""
        cols = self.columns(columns)
        if self.schema is None or cols is None:
            return {}
        encoded = [c for c in cols if self.schema.type_of(c) in ENCODED]
        found: dict[str, set[str]] = {c: set() for c in encoded}
        if encoded:
            for rows in self.scan(1 << 20, encoded, exact=False):
                for c in encoded:
                    found[c] |= levels_of(rows.column(c), self.schema.type_of(c))
        return {c: sorted(v) for c, v in found.items()}

    def batches(
        self,
        batch_rows: int,
        columns: Sequence[str] | None = None,
        levels: Mapping[str, Sequence[str]] | None = None,
        *,
        exact: bool = True,
        order: Literal["C", "F"] = "C",
    ) -> Iterator[Batch]:
        """The live rows as engine `Batch`es with the same columns in every batch.

        Encoded attributes get the indicator columns of `levels` (by default, every label
        the snapshot holds, found by a first pass), so that batch k and batch k+1 have the
        same design matrix columns even when their categories differ. `exact` as for
        `scan`, `order` as for `to_batch` (`exact=False, order="F"`: the cheapest reading).
        """
        if self.schema is None:
            return
        if levels is None:
            levels = self.levels(columns)
        for rows in self.scan(batch_rows, columns, exact=exact):
            yield to_batch(rows, self.schema, levels, order=order)


def _concat(parts: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts, schema=schema).combine_chunks().to_batches()[0]
