"""DataFrames: the spec's typed, string-valued tables, turned into float64 batches.

A DataFrame is `{attributeNames, attributeTypes, data}` with every value a string. Types:

    C  continuous          one float column
    B  binary              one 0/1 column
    T  category            one 0/1 column per value, named `attr$value` (trimmed, lower-cased)
    S  string              encoded like T (one-hot of the trimmed, lower-cased value)
    L  list `|a|b|c`       multi-hot: one 0/1 column per element, `attr$element`
    X  ignore              dropped

`parse_frame` checks everything a client can get wrong (ragged rows, unknown types,
unparseable values, NaN/inf, B values other than 0/1, duplicated names) and says where.
Numeric columns are converted column-wise by numpy, never value by value in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import FrameError

TYPES = frozenset("CBTSLX")
ENCODED = frozenset("TSL")  # expanded into indicator columns
SEP = "$"


@dataclass
class Batch:
    """Rows as a float64 matrix with named columns.

    `types` maps each attribute of the DataFrame (not X) to its type letter; `binary` are
    the columns that hold only 0/1 (B columns and the indicator columns of T/S/L).
    `parents` maps an indicator column to its attribute.
    """

    columns: list[str]
    values: np.ndarray  # (rows, len(columns)) float64, C-contiguous
    types: dict[str, str]
    binary: frozenset[str] = field(default_factory=frozenset)
    parents: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def from_array(
        cls, values: Any, columns: Sequence[str], binary: Sequence[str] = ()
    ) -> Batch:
        """A batch from an already numeric array (every column `C` unless in `binary`)."""
        x = np.ascontiguousarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(columns):
            raise FrameError(f"expected a 2-D array with {len(columns)} columns, got {x.shape}")
        if len(set(columns)) != len(columns):
            raise FrameError("column names must be unique")
        if not np.isfinite(x).all():
            raise FrameError("values must be finite (no NaN or infinity)")
        bset = frozenset(binary)
        types = {c: ("B" if c in bset else "C") for c in columns}
        return cls(list(columns), x, types, bset)


def parse_frame(frame: Any) -> Batch:
    """Validate a DataFrame (a decoded JSON object) and turn it into a `Batch`."""
    names, types, data = _shape(frame)
    ncols = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise FrameError(f"data row {i} is not a list")
        if len(row) != ncols:
            raise FrameError(f"data row {i} has {len(row)} values, expected {ncols}")
    columns: list[str] = []
    blocks: list[np.ndarray] = []
    binary: set[str] = set()
    parents: dict[str, str] = {}
    kept: dict[str, str] = {}
    for j, (name, typ) in enumerate(zip(names, types, strict=True)):
        if typ == "X":
            continue
        kept[name] = typ
        raw = [row[j] for row in data]
        if typ in ENCODED:
            labels, block = _encode(name, typ, raw)
            for label in labels:
                col = f"{name}{SEP}{label}"
                columns.append(col)
                binary.add(col)
                parents[col] = name
            blocks.append(block)
            continue
        col_values = _numbers(name, raw)
        if typ == "B":
            bad = np.flatnonzero((col_values != 0.0) & (col_values != 1.0))
            if bad.size:
                i = int(bad[0])
                raise FrameError(
                    f"attribute {name!r} is binary (B) but row {i} has {raw[i]!r}: use 0 or 1"
                )
            binary.add(name)
        columns.append(name)
        blocks.append(col_values[:, None])
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise FrameError(f"column {dup!r} appears twice (after category expansion)")
    if blocks:
        values = np.ascontiguousarray(np.hstack(blocks))
    else:
        values = np.zeros((len(data), 0))
    return Batch(columns, values, kept, frozenset(binary), parents)


def _shape(frame: Any) -> tuple[list[str], list[str], list[Any]]:
    if not isinstance(frame, Mapping):
        raise FrameError("a DataFrame must be a JSON object with attributeNames, attributeTypes, data")
    missing = [k for k in ("attributeNames", "attributeTypes", "data") if k not in frame]
    if missing:
        raise FrameError(f"DataFrame lacks {', '.join(missing)}")
    names, types, data = frame["attributeNames"], frame["attributeTypes"], frame["data"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise FrameError("attributeNames must be a list of non-empty strings")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise FrameError("attributeTypes must be a list of type letters")
    if len(names) != len(types):
        raise FrameError(
            f"attributeNames has {len(names)} entries but attributeTypes has {len(types)}"
        )
    for name, typ in zip(names, types, strict=True):
        if typ not in TYPES:
            raise FrameError(
                f"attribute {name!r} has unknown type {typ!r}: expected one of C, B, T, S, L, X"
            )
        if SEP in name:
            raise FrameError(f"attribute name {name!r} must not contain {SEP!r}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise FrameError(f"attribute {dup!r} appears twice in attributeNames")
    if not isinstance(data, list):
        raise FrameError("data must be a list of rows")
    return names, types, data


def _numbers(name: str, raw: list[Any]) -> np.ndarray:
    """A float64 column from strings (or JSON numbers), with the first bad value named."""
    try:
        col = np.array(raw, dtype=np.float64)
    except (ValueError, TypeError):
        col = None
    if col is None or col.ndim != 1:
        for i, v in enumerate(raw):
            _number(name, i, v)
        raise FrameError(f"attribute {name!r} has values that are not numbers")  # pragma: no cover
    if any(isinstance(v, bool) for v in raw[:1]) or not np.isfinite(col).all():
        for i, v in enumerate(raw):
            _number(name, i, v)
    return col


def _number(name: str, i: int, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise FrameError(f"attribute {name!r}, row {i}: {v!r} is not a number string")
    try:
        f = float(v)
    except ValueError:
        raise FrameError(f"attribute {name!r}, row {i}: {v!r} is not a number") from None
    if not np.isfinite(f):
        raise FrameError(f"attribute {name!r}, row {i}: {v!r} is not finite (NaN or infinity)")
    return f


def _encode(name: str, typ: str, raw: list[Any]) -> tuple[list[str], np.ndarray]:
    """Indicator columns for a T/S (one-hot) or L (multi-hot) attribute."""
    rows: list[list[str]] = []
    for i, v in enumerate(raw):
        if not isinstance(v, str):
            raise FrameError(f"attribute {name!r}, row {i}: {v!r} is not a string")
        if typ == "L":
            items = [p.strip().lower() for p in v.split("|")]
            rows.append([p for p in items if p])
        else:
            label = v.strip().lower()
            if not label:
                raise FrameError(f"attribute {name!r}, row {i}: empty category value")
            rows.append([label])
    labels = sorted({lab for r in rows for lab in r})
    index = {lab: k for k, lab in enumerate(labels)}
    block = np.zeros((len(raw), len(labels)))
    for i, r in enumerate(rows):
        for lab in r:
            block[i, index[lab]] = 1.0
    return labels, block
