"""The co-moment accumulator: everything a project knows about its rows, in O(d²) memory.

An `Accumulator` keeps the `Moments` of all rows learned (minus those forgotten), and, for
every binary column (B attributes and the indicator columns of categories), the `Moments`
of the rows where that column is 1. Those conditional moments are what class-conditional
models (QDA, naive Bayes) need; the rows where the column is 0 are derived as
`total ⊖ cond`. Accumulators from different sites `merge` into the accumulator of all
their rows: every model built from it equals the model built on the pooled rows.

Columns can appear in later batches (a new category value, say): the accumulator grows,
and rows seen before count as 0 in the new column. Column order is the order of first
appearance; two accumulators are compared by column name, not position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from .errors import SchemaMismatch
from .frame import Batch
from .moments import Array, Moments, combine_into, remove
from .xp import array_module, to_numpy


class Accumulator:
    """Moments of a project's rows, global and conditional on each binary column."""

    def __init__(self, engine: str = "cpu", conditional: bool = True) -> None:
        self.engine = engine
        self.xp: ModuleType = array_module(engine)
        self.conditional = conditional
        self.columns: list[str] = []
        self.index: dict[str, int] = {}
        self.types: dict[str, str] = {}  # attribute -> type letter
        self.parents: dict[str, str] = {}  # indicator column -> attribute
        self.binary: list[str] = []  # binary columns, in column order
        self.total = Moments.empty(0, self.xp)
        self.cond: dict[str, Moments] = {}
        self.version = 0
        # Rows ever learned or forgotten here (never decreases): two snapshots' difference
        # is how many rows changed between them, even when a forget and a learn of equal
        # counts leave `n` unchanged (the federation's increment floor needs that).
        self.touched = 0

    # ----------------------------------------------------------------- shape
    @property
    def n(self) -> int:
        return self.total.n

    @property
    def d(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        return f"<Accumulator n={self.n} d={self.d} binary={len(self.binary)} v{self.version}>"

    def _adopt(
        self,
        columns: Sequence[str],
        types: dict[str, str],
        binary: Iterable[str],
        parents: dict[str, str],
    ) -> None:
        """Add the columns not yet known (zero for the rows seen so far); check types."""
        for attr, typ in types.items():
            known = self.types.get(attr)
            if known is not None and known != typ:
                raise SchemaMismatch(
                    f"attribute {attr!r} has type {typ!r} here but {known!r} in the project"
                )
        bset = set(binary)
        # every check before any change: a refused batch must leave the schema as it was
        for col in columns:
            if col in self.index and (col in bset) != (col in self.cond or col in self.binary):
                raise SchemaMismatch(
                    f"column {col!r} is {'binary' if col in bset else 'continuous'} here "
                    "but not in the project"
                )
        for col in columns:
            if col in self.index:
                continue
            self.index[col] = len(self.columns)
            self.columns.append(col)
            if col in bset:
                self.binary.append(col)
        self.types.update(types)
        self.parents.update(parents)
        d = len(self.columns)
        self.total = self.total.padded(d)
        for col in list(self.cond):
            self.cond[col] = self.cond[col].padded(d)
        if self.conditional:
            for col in self.binary:
                if col not in self.cond:
                    self.cond[col] = Moments.empty(d, self.xp)

    def _check_attributes(self, batch: Batch) -> None:
        missing = [a for a in self.types if a not in batch.types]
        if missing:
            raise SchemaMismatch(
                f"the rows lack attribute(s) {', '.join(map(repr, missing))} that the project has"
            )

    def _aligned(self, batch: Batch) -> Array:
        """The batch's values laid out in this accumulator's column order."""
        x = self.xp.asarray(batch.values)
        if batch.columns == self.columns:
            return x
        out = self.xp.zeros((batch.rows, self.d))
        cols = [self.index[c] for c in batch.columns]
        out[:, cols] = x
        return out

    # ----------------------------------------------------------------- updates
    def batch_moments(self, batch: Batch) -> tuple[Moments, dict[str, Moments]]:
        """The moments of a batch, in this accumulator's layout (which grows to fit it)."""
        self._check_attributes(batch)
        self._adopt(batch.columns, batch.types, batch.binary, batch.parents)
        x = self._aligned(batch)
        total = Moments.of_rows(x)
        cond: dict[str, Moments] = {}
        if self.conditional:
            for col in self.binary:
                if col not in batch.binary:
                    continue  # zero in every row of this batch
                mask = x[:, self.index[col]] == 1.0
                cond[col] = Moments.of_rows(x[mask])
        return total, cond

    def learn(self, batch: Batch) -> int:
        """Add the batch's rows; returns the number of rows learned."""
        total, cond = self.batch_moments(batch)
        combine_into(self.total, total)
        for col, m in cond.items():
            combine_into(self.cond[col], m)
        self.version += 1
        self.touched += batch.rows
        return batch.rows

    def forget(self, batch: Batch) -> int:
        """Remove rows learned before (the exact inverse of `learn`)."""
        self._check_removable(batch.columns, batch.rows)
        total, cond = self.batch_moments(batch)
        self._remove(total, cond)
        self.touched += batch.rows
        return batch.rows

    def _check_removable(self, columns: Sequence[str], rows: int) -> None:
        """Only rows over known columns, and no more of them than there are, can go."""
        unknown = [c for c in columns if c not in self.index]
        if unknown:
            raise SchemaMismatch(
                f"cannot forget rows with column(s) never learned: {', '.join(map(repr, unknown))}"
            )
        if rows > self.n:
            raise SchemaMismatch(f"cannot forget {rows} rows: the project has {self.n}")

    def _remove(self, total: Moments, cond: dict[str, Moments]) -> None:
        """Take moments in this layout (rows known here) out of the total and conditionals."""
        for col, m in cond.items():
            if m.n > self.cond[col].n:
                raise SchemaMismatch(
                    f"cannot forget {m.n} rows with {col!r} = 1: the project has {self.cond[col].n}"
                )
        self.total = remove(self.total, total)
        for col, m in cond.items():
            if m.n:
                self.cond[col] = remove(self.cond[col], m)
        self.version += 1

    def layout_of(self, other: Accumulator) -> Accumulator:
        """`other`'s rows in this accumulator's columns (0 where `other` lacks a column)."""
        unknown = [c for c in other.columns if c not in self.index]
        if unknown:
            raise SchemaMismatch(
                f"column(s) {', '.join(map(repr, unknown))} are not in this accumulator"
            )
        out = self.copy()
        out.total = Moments.empty(self.d, self.xp)
        out.cond = {k: Moments.empty(self.d, self.xp) for k in self.cond}
        out.merge(other)
        out.version, out.touched = other.version, other.touched
        return out

    def unmerge(self, other: Accumulator) -> None:
        """Remove another accumulator's rows, merged or learned here before (inverse of merge)."""
        self._check_removable(other.columns, other.n)
        part = self.layout_of(other)
        self._remove(part.total, part.cond)
        self.touched += other.n

    def learn_array(self, values: Any, columns: Sequence[str], binary: Sequence[str] = ()) -> int:
        return self.learn(Batch.from_array(values, columns, binary))

    def forget_array(self, values: Any, columns: Sequence[str], binary: Sequence[str] = ()) -> int:
        return self.forget(Batch.from_array(values, columns, binary))

    def merge(self, other: Accumulator) -> None:
        """Add another accumulator's rows (another site's) to this one, in place."""
        if self.conditional and not other.conditional and other.binary:
            # conditional statistics missing on one side cannot be invented
            raise SchemaMismatch("cannot merge an accumulator without conditional statistics")
        self._adopt(other.columns, other.types, other.binary, other.parents)
        perm = [self.index[c] for c in other.columns]
        d = self.d
        combine_into(self.total, _placed(other.total, perm, d, self.xp))
        for col, m in other.cond.items():
            if self.conditional:
                combine_into(self.cond[col], _placed(m, perm, d, self.xp))
        self.touched += other.touched
        self.version += 1

    @classmethod
    def merged(cls, parts: Iterable[Accumulator], engine: str = "cpu") -> Accumulator:
        """One accumulator holding the rows of all `parts`."""
        parts = list(parts)
        conditional = all(p.conditional for p in parts) if parts else True
        out = cls(engine=engine, conditional=conditional)
        for p in parts:
            out.merge(p)
        return out

    def copy(self) -> Accumulator:
        out = Accumulator.__new__(Accumulator)
        out.__dict__.update(self.__dict__)
        out.columns = list(self.columns)
        out.index = dict(self.index)
        out.types = dict(self.types)
        out.parents = dict(self.parents)
        out.binary = list(self.binary)
        out.total = self.total.copy()
        out.cond = {k: m.copy() for k, m in self.cond.items()}
        return out

    # ----------------------------------------------------------------- access
    def indices(self, columns: Sequence[str]) -> list[int]:
        unknown = [c for c in columns if c not in self.index]
        if unknown:
            raise SchemaMismatch(f"unknown attribute(s): {', '.join(map(repr, unknown))}")
        return [self.index[c] for c in columns]

    def moments(self, columns: Sequence[str] | None = None) -> Moments:
        """The global moments, optionally restricted to `columns` (in that order)."""
        if columns is None:
            return self.total
        return self.total.take(self.xp.asarray(self.indices(columns)))

    def given(self, column: str, value: int = 1, columns: Sequence[str] | None = None) -> Moments:
        """Moments of the rows where binary `column` equals `value` (0 or 1)."""
        if column not in self.cond:
            if column in self.index and column not in self.binary:
                raise SchemaMismatch(f"column {column!r} is not binary")
            raise SchemaMismatch(f"no conditional statistics for {column!r}")
        m = self.cond[column] if value == 1 else remove(self.total, self.cond[column])
        if columns is None:
            return m
        return m.take(self.xp.asarray(self.indices(columns)))

    def attribute_columns(self, attribute: str) -> list[str]:
        """The columns an attribute became (itself, or its `attr$value` indicators)."""
        if attribute in self.index:
            return [attribute]
        cols = [c for c in self.columns if self.parents.get(c) == attribute]
        if not cols:
            raise SchemaMismatch(f"unknown attribute {attribute!r}")
        return cols

    def allclose(self, other: Accumulator, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        """Same rows, compared column by column by name (order-independent)."""
        if set(self.columns) != set(other.columns) or self.n != other.n:
            return False
        if set(self.cond) != set(other.cond):
            return False
        perm = other.indices(self.columns)
        pairs = [(self.total, other.total)] + [(self.cond[k], other.cond[k]) for k in self.cond]
        for a, b in pairs:
            bb = b.take(other.xp.asarray(perm))
            if a.n != bb.n:
                return False
            for x, y in (
                (a.mean, bb.mean),
                (a.m2, bb.m2),
                (a.m3, bb.m3),
                (a.m4, bb.m4),
            ):
                if not np.allclose(to_numpy(x), to_numpy(y), rtol=rtol, atol=atol):
                    return False
        return True


def schema_conflict(acc: Accumulator, others: Iterable[Accumulator]) -> str | None:
    """Why `acc` cannot be merged with `others` (an attribute typed differently), or None.

    A peer whose rows type an attribute otherwise than the rest of the federation would make
    every merge fail: its snapshot is refused on receipt instead, with this reason.
    """
    for other in others:
        for attr, typ in acc.types.items():
            known = other.types.get(attr)
            if known is not None and known != typ:
                return f"attribute {attr!r} has type {typ!r} there but {known!r} here"
    return None


def _placed(m: Moments, perm: list[int], d: int, xp: ModuleType) -> Moments:
    """`m`'s columns put at positions `perm` of a d-column layout (zeros elsewhere)."""
    if perm == list(range(d)):
        return m
    out = Moments.empty(d, xp)
    out.n = m.n
    p = xp.asarray(perm)
    out.mean[p] = m.mean
    out.m2[np.ix_(perm, perm)] = m.m2
    out.m3[p] = m.m3
    out.m4[p] = m.m4
    out.dmean[p] = m.dmean
    if m.n:
        out.lo[:] = 0.0
        out.hi[:] = 0.0
    out.lo[p] = m.lo
    out.hi[p] = m.hi
    return out
