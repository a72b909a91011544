"""What a stored row is: the DataFrame's attributes, not the engine's indicator columns.

A learned `Batch` holds categories as indicator columns (`colour$red`, `colour$blue`), and
which indicators exist depends on the values that batch happened to hold. The store keeps
one column per attribute instead, so that every batch of a DataFrame has the same schema:

    C, B   float64 (the batch's values, bit for bit)
    T, S   string: the category label as the engine normalised it (trimmed, lower-cased)
    L      string: the labels of the row's set, sorted, joined by `|` (empty for no label)

`to_rows` turns a `Batch` into such an Arrow table and `to_batch` turns stored rows back
into a `Batch` with the indicator columns of given category levels, in the engine's order
(attributes in order, labels sorted): a batch stored and read back with the levels it
held is the same batch, values and column names alike. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedstats.node.engine.frame import ENCODED, SEP, Batch

from .errors import RowSchemaError

STORED_TYPES = frozenset("CBTSL")
TYPE_KEY = b"fedstats.type"
LIST_SEP = "|"


@dataclass(frozen=True)
class RowSchema:
    """The attributes of a store, in order, with their type letters."""

    names: tuple[str, ...]
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise RowSchemaError("a row store needs at least one attribute (every one was X?)")
        if len(self.names) != len(self.types) or len(set(self.names)) != len(self.names):
            raise RowSchemaError("attribute names must be unique, with one type each")
        bad = [f"{n}:{t}" for n, t in zip(self.names, self.types, strict=True) if t not in STORED_TYPES]
        if bad:
            raise RowSchemaError(f"attributes of types other than C, B, T, S, L: {', '.join(bad)}")

    @property
    def items(self) -> list[tuple[str, str]]:
        return list(zip(self.names, self.types, strict=True))

    def type_of(self, name: str) -> str:
        return self.types[self.names.index(name)]

    def arrow(self, columns: Sequence[str] | None = None) -> pa.Schema:
        """The Arrow schema of stored rows (the type letter kept in each field's metadata),
        of `columns` in their order when given."""
        return pa.schema([self.field(n) for n in (self.names if columns is None else columns)])

    def field(self, name: str) -> pa.Field:
        typ = self.type_of(name)
        kind = pa.string() if typ in ENCODED else pa.float64()
        return pa.field(name, kind, nullable=False, metadata={TYPE_KEY: typ.encode()})

    def to_json(self) -> str:
        return json.dumps([[n, t] for n, t in self.items])

    @classmethod
    def from_json(cls, text: str) -> RowSchema:
        pairs = json.loads(text)
        return cls(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    @classmethod
    def of_batch(cls, batch: Batch) -> RowSchema:
        return cls(tuple(batch.types), tuple(batch.types.values()))

    def check(self, other: RowSchema) -> None:
        """Refuse `other` unless it has exactly these attributes and types (any order)."""
        mine, theirs = dict(self.items), dict(other.items)
        if mine == theirs:
            return
        parts = []
        if missing := [n for n in self.names if n not in theirs]:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if added := [n for n in other.names if n not in mine]:
            parts.append(f"not in the store: {', '.join(map(repr, added))}")
        if retyped := [
            f"{n!r} is {theirs[n]} here but {mine[n]} in the store"
            for n in self.names
            if n in theirs and theirs[n] != mine[n]
        ]:
            parts.append("; ".join(retyped))
        raise RowSchemaError(
            "the batch's attributes differ from the store's "
            f"({', '.join(f'{n}:{t}' for n, t in self.items)}): {'; '.join(parts)}"
        )


def to_rows(batch: Batch, order: RowSchema | None = None) -> tuple[RowSchema, pa.Table]:
    """The batch as stored rows, with its attributes in `order`'s order when given."""
    schema = RowSchema.of_batch(batch)
    if order is not None:
        order.check(schema)
        schema = order
    where = {c: j for j, c in enumerate(batch.columns)}
    numeric = [n for n, t in schema.items if t not in ENCODED]
    if missing := [n for n in numeric if n not in where]:
        raise RowSchemaError(f"attribute {missing[0]!r} has no column in the batch")
    columns = dict(zip(numeric, _columns_of(batch.values, [where[n] for n in numeric]), strict=True))
    arrays: list[pa.Array] = []
    for name, typ in schema.items:
        if typ in ENCODED:
            arrays.append(_labels(batch, name, typ, where))
        else:
            arrays.append(pa.array(columns[name], pa.float64()))
    return schema, pa.Table.from_arrays(arrays, schema=schema.arrow())


_BLOCK = 4096  # rows per step of a transpose: the block fits in the cache either way round


def _columns_of(values: np.ndarray, which: list[int]) -> np.ndarray:
    """Columns `which` of a row-major matrix as rows of a new one, copied block by block
    (2-3x faster than one strided copy per column)."""
    out = np.empty((len(which), values.shape[0]))
    if not which:
        return out
    picked = values if which == list(range(values.shape[1])) else None
    for lo in range(0, values.shape[0], _BLOCK):
        block = values[lo : lo + _BLOCK] if picked is not None else values[lo : lo + _BLOCK, which]
        out[:, lo : lo + _BLOCK] = block.T
    return out


def _columns_to_f(columns: list[np.ndarray], n: int) -> np.ndarray:
    out = np.empty((len(columns), n))
    for j, col in enumerate(columns):
        out[j] = col
    return out.T


def _rows_of(columns: list[np.ndarray], n: int) -> np.ndarray:
    """The row-major (n, len(columns)) matrix of 1-D columns, block by block."""
    out = np.empty((n, len(columns)))
    for lo in range(0, n, _BLOCK):
        for j, col in enumerate(columns):
            out[lo : lo + _BLOCK, j] = col[lo : lo + _BLOCK]
    return out


def _labels(batch: Batch, name: str, typ: str, where: Mapping[str, int]) -> pa.Array:
    """The string column of an encoded attribute, from its indicator columns."""
    cols = [c for c in batch.columns if batch.parents.get(c) == name]
    labels = [c[len(name) + len(SEP):] for c in cols]
    n = batch.rows
    if not cols:
        if n and typ != "L":
            raise RowSchemaError(f"attribute {name!r} ({typ}) has no indicator columns")
        return pa.array([""] * n if typ == "L" else [], pa.string())
    block = batch.values[:, [where[c] for c in cols]]
    if ((block != 0.0) & (block != 1.0)).any():
        raise RowSchemaError(f"indicator columns of {name!r} hold values other than 0 and 1")
    if typ != "L":
        if n and not (block.sum(axis=1) == 1.0).all():
            i = int(np.flatnonzero(block.sum(axis=1) != 1.0)[0])
            raise RowSchemaError(f"row {i} of {name!r} ({typ}) has not exactly one category")
        codes = block.argmax(axis=1).astype(np.int32) if n else np.zeros(0, np.int32)
        dictionary = pa.array(labels, pa.string())
    else:
        # multi-hot: each distinct set of labels is joined once, rows point at their set
        sets, codes64 = np.unique(block.astype(bool), axis=0, return_inverse=True)
        codes = codes64.reshape(-1).astype(np.int32)
        dictionary = pa.array(
            [LIST_SEP.join(lab for lab, on in zip(labels, row, strict=True) if on) for row in sets],
            pa.string(),
        )
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), dictionary).dictionary_decode()


def levels_of(column: pa.Array | pa.ChunkedArray, typ: str) -> set[str]:
    """The distinct labels of a stored T/S/L column."""
    distinct = pc.unique(column).to_pylist()
    if typ != "L":
        return set(distinct)
    return {lab for v in distinct for lab in v.split(LIST_SEP) if lab}


def to_batch(
    rows: pa.RecordBatch | pa.Table,
    schema: RowSchema,
    levels: Mapping[str, Sequence[str]] | None = None,
    *,
    order: Literal["C", "F"] = "C",
) -> Batch:
    """Stored rows as an engine `Batch`: C/B as they are, T/S/L as indicator columns.

    `levels` gives each encoded attribute's labels (sorted here, as the engine sorts
    them); an attribute missing from it gets the labels these rows hold. A value outside
    the given levels is refused, since its row would have no indicator column.

    `order="F"` builds the matrix column-major (each column one contiguous copy, about
    half the cost of the row-major transpose); BLAS reads it as fast, but the engine's
    accumulators expect the default row-major `Batch`.
    """
    columns: list[str] = []
    parts: list[np.ndarray] = []  # 1-D columns
    binary: set[str] = set()
    parents: dict[str, str] = {}
    types: dict[str, str] = {}
    n = rows.num_rows
    for name in rows.schema.names:
        typ = schema.type_of(name)
        types[name] = typ
        col = rows.column(name)
        if typ not in ENCODED:
            columns.append(name)
            if typ == "B":
                binary.add(name)
            parts.append(np.asarray(col, dtype=np.float64))
            continue
        labs = sorted(levels[name] if levels and name in levels else levels_of(col, typ))
        block = _indicators(name, typ, col, labs, n)
        for k, lab in enumerate(labs):
            c = f"{name}{SEP}{lab}"
            columns.append(c)
            binary.add(c)
            parents[c] = name
            parts.append(block[:, k])
    values = _rows_of(parts, n) if order == "C" else _columns_to_f(parts, n)
    return Batch(columns, values, types, frozenset(binary), parents)


def _indicators(name: str, typ: str, col: pa.Array, labs: list[str], n: int) -> np.ndarray:
    value_set = pa.array(labs, pa.string())
    block = np.zeros((len(labs), n)).T  # column-major: each label's column is contiguous
    if typ == "L":
        parts = pc.split_pattern(col, LIST_SEP)
        lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(parts)
        row_of = np.repeat(np.arange(n), lengths)
        keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
        flat, row_of = flat.filter(pa.array(keep)), row_of[keep]
    else:
        flat, row_of = col, np.arange(n)
    codes = pc.index_in(flat, value_set=value_set)
    if codes.null_count:
        k = int(np.flatnonzero(codes.is_null().to_numpy(zero_copy_only=False))[0])
        raise RowSchemaError(
            f"row {int(row_of[k])} of {name!r} holds {flat[k].as_py()!r}, not one of the given levels"
        )
    block[row_of, codes.to_numpy(zero_copy_only=False)] = 1.0
    return block
