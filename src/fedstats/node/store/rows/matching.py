"""Forgetting as a multiset: which stored rows a batch of rows to forget claims.

Each row to forget claims one stored row equal to it that no other row has claimed; two
equal rows to forget need two equal stored rows. Rows are compared as fixed-width keys:
a float column contributes the bits of its value (+0.0, so that -0.0 equals 0.0 as it
does for the statistics), a string column the value's index in the strings the batch to
forget holds (a stored string that is not among them cannot match, so its row is out).
Equal keys are equal rows, with no hashing and so no collisions.

`Matcher` is fed the stored rows chunk by chunk (memory bounded by the batch to forget
and one chunk) and answers which rows of each chunk it claims; the earliest stored
copies are claimed first. Pure numpy/Arrow, no I/O.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedstats.node.engine.frame import ENCODED

from .schema import RowSchema


class Matcher:
    """The claims of `wanted` (stored-row form, the store's column order) on stored rows."""

    def __init__(self, wanted: pa.Table, schema: RowSchema) -> None:
        self.schema = schema
        self.wanted = wanted
        self._strings = {
            name: pc.unique(wanted.column(name).combine_chunks())
            for name, typ in schema.items
            if typ in ENCODED
        }
        keys, _ = self._keys(wanted)
        self._width = keys.shape[1]
        distinct, inverse, counts = np.unique(_rows(keys), return_inverse=True, return_counts=True)
        self._distinct = distinct
        self._distinct_keys = keys[_first_of_each(inverse.reshape(-1), len(distinct))]
        self._inverse = inverse.reshape(-1)
        self._need = counts.astype(np.int64)
        self._found = np.zeros(len(distinct), dtype=np.int64)

    @property
    def done(self) -> bool:
        return bool((self._found >= self._need).all())

    def claim(self, stored: pa.RecordBatch | pa.Table) -> np.ndarray:
        """A boolean mask over `stored`'s rows: those this batch claims (and so forgets)."""
        mask = np.zeros(stored.num_rows, dtype=bool)
        if self.done or not stored.num_rows:
            return mask
        keys, valid = self._keys(stored)
        at = np.flatnonzero(valid)
        if not at.size:
            return mask
        keys = keys[at]
        pos = np.minimum(np.searchsorted(self._distinct, _rows(keys)), len(self._distinct) - 1)
        equal = (self._distinct_keys[pos] == keys).all(axis=1)
        at, which = at[equal], pos[equal]
        if not at.size:
            return mask
        # rank of each candidate among the candidates of the same distinct row, in stored
        # order: it is claimed when the copies found before it do not yet cover the need
        order = np.argsort(which, kind="stable")
        sorted_which = which[order]
        starts = np.flatnonzero(np.r_[True, sorted_which[1:] != sorted_which[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - group_start
        claimed = self._found[which] + rank < self._need[which]
        np.add.at(self._found, which[claimed], 1)
        mask[at[claimed]] = True
        return mask

    def first_unmatched(self) -> int | None:
        """The first row of `wanted` (by position) left without a stored row, if any."""
        if self.done:
            return None
        order = np.argsort(self._inverse, kind="stable")
        sorted_inv = self._inverse[order]
        starts = np.flatnonzero(np.r_[True, sorted_inv[1:] != sorted_inv[:-1]])
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        short = rank >= self._found[self._inverse]
        return int(np.flatnonzero(short)[0])

    def copies(self, index: int) -> tuple[int, int]:
        """(copies of row `index` in the batch, equal rows found in the store)."""
        k = self._inverse[index]
        return int(self._need[k]), int(self._found[k])

    def _keys(self, rows: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
        n = rows.num_rows
        keys = np.empty((n, len(self.schema.names)), dtype=np.uint64)
        valid = np.ones(n, dtype=bool)
        for j, (name, typ) in enumerate(self.schema.items):
            col = rows.column(name)
            if typ in ENCODED:
                codes = pc.index_in(col, value_set=self._strings[name])
                if isinstance(codes, pa.ChunkedArray):
                    codes = codes.combine_chunks()
                valid &= codes.is_valid().to_numpy(zero_copy_only=False)
                keys[:, j] = codes.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
            else:
                values = np.asarray(col, dtype=np.float64) + 0.0
                keys[:, j] = values.view(np.uint64)
        return keys, valid


def _rows(keys: np.ndarray) -> np.ndarray:
    """Each row of a uint64 key matrix as one opaque value, so that numpy sorts rows."""
    keys = np.ascontiguousarray(keys)
    return keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).reshape(-1)


def _first_of_each(inverse: np.ndarray, groups: int) -> np.ndarray:
    first = np.full(groups, len(inverse), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(inverse)))
    return first
