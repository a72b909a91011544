"""DataFrames: the spec's typed, string-valued tables, turned into float64 batches.

A DataFrame is `{attributeNames, attributeTypes, data}` with every value a string. Types:

    C  continuous          one float column
    B  binary              one 0/1 column
    T  category            one 0/1 column per value, named `attr$value` (trimmed, lower-cased)
    S  string              encoded like T (one-hot of the trimmed, lower-cased value)
    L  list `|a|b|c`       multi-hot: one 0/1 column per element, `attr$element`
    X  ignore              dropped

`parse_frame` checks everything a client can get wrong (ragged rows, unknown types,
unparseable values, NaN/inf, B values other than 0/1, duplicated names, names or category
values with control characters) and says where. The node's `Limits` are checked before the
work they bound: the attribute count and name lengths before any value is read, each
category's distinct values before its indicator columns exist, and the columns and
statistics cells of the expanded batch before the columns are stacked. Every check is
linear in the request (duplicates by a set, never `list.count`), and a message quotes at
most a short prefix of what the client sent.
Numeric columns are converted column-wise by numpy, categories through Arrow's hash table:
never value by value in Python. `assemble` is shared with the byte-level readers (`ingest`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..limits import LimitExceeded, Limits, check_cells
from .errors import FrameError

TYPES = frozenset("CBTSLX")
ENCODED = frozenset("TSL")  # expanded into indicator columns
SEP = "$"
DEFAULT_LIMITS = Limits()
# C0, DEL and C1 controls: a column name is echoed in answers, logs and snapshots
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_QUOTED = 40  # characters of a client's value quoted in an error message


def short(value: object) -> str:
    """`repr` of a client's value, cut to a short prefix (a message never echoes megabytes)."""
    if isinstance(value, str) and len(value) > _QUOTED:
        return f"{value[:_QUOTED]!r}… ({len(value):,} characters)"
    return repr(value)


def first_duplicate(items: Iterable[str]) -> str | None:
    """The first item seen twice, in one pass (None when all differ)."""
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


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
        if first_duplicate(columns) is not None:
            raise FrameError("column names must be unique")
        # Column sums propagate NaN and infinity: one BLAS gemv (3x faster than x.sum(0)
        # on a C-ordered array) instead of an n×d mask. Sums overflow only for values near
        # 1e300, which no moment could hold anyway.
        if x.size and not np.isfinite(np.ones(x.shape[0]) @ x).all():
            raise FrameError("values must be finite (no NaN or infinity)")
        bset = frozenset(binary)
        types = {c: ("B" if c in bset else "C") for c in columns}
        return cls(list(columns), x, types, bset)


def parse_frame(frame: Any, limits: Limits = DEFAULT_LIMITS) -> Batch:
    """Validate a DataFrame (a decoded JSON object) and turn it into a `Batch`."""
    names, types, data = _shape(frame, limits)
    ncols = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise FrameError(f"data row {i} is not a list")
        if len(row) != ncols:
            raise FrameError(f"data row {i} has {len(row)} values, expected {ncols}")

    def column(j: int, name: str, typ: str) -> tuple[list[str] | None, np.ndarray]:
        raw = [row[j] for row in data]
        if typ in ENCODED:
            return _encode(name, typ, raw, limits)
        col_values = _numbers(name, raw)
        if typ == "B":
            check_binary(name, col_values, raw)
        return None, col_values

    return assemble(names, types, len(data), column, limits)


ColumnSource = Callable[[int, str, str], tuple[list[str] | None, np.ndarray]]


def assemble(names: Sequence[str], types: Sequence[str], nrows: int, column: ColumnSource,
             limits: Limits = DEFAULT_LIMITS) -> Batch:
    """A `Batch` from validated attributes, whatever the bytes the columns came from.

    `column(j, name, typ)` gives `(labels, block)` for T/S/L (indicator columns) and
    `(None, values)` for C/B, already checked; it is called in attribute order, so the
    first bad attribute is the one reported. X attributes are never asked for. The
    expanded columns are counted as they come (a request over `max_request_columns`
    stops at the attribute that crosses it) and the statistics cells of the whole batch
    are checked before anything is stacked.
    """
    columns: list[str] = []
    blocks: list[np.ndarray] = []
    binary: set[str] = set()
    parents: dict[str, str] = {}
    kept: dict[str, str] = {}
    for j, (name, typ) in enumerate(zip(names, types, strict=True)):
        if typ == "X":
            continue
        kept[name] = typ
        labels, block = column(j, name, typ)
        if labels is not None:
            for label in labels:
                col = f"{name}{SEP}{label}"
                columns.append(col)
                binary.add(col)
                parents[col] = name
            blocks.append(block)
        else:
            if typ == "B":
                binary.add(name)
            columns.append(name)
            blocks.append(block[:, None])
        if len(columns) > limits.max_request_columns:
            raise LimitExceeded(
                "max_request_columns", limits.max_request_columns,
                f"the rows have more than {limits.max_request_columns} columns once "
                f"categories are expanded (at attribute {short(name)})",
            )
    dup = first_duplicate(columns)
    if dup is not None:
        raise FrameError(f"column {short(dup)} appears twice (after category expansion)")
    check_cells(limits, len(columns), len(binary), "these rows' statistics")
    if blocks:
        values = np.ascontiguousarray(np.hstack(blocks), dtype=np.float64)
    else:
        values = np.zeros((nrows, 0))
    return Batch(columns, values, kept, frozenset(binary), parents)


def check_binary(name: str, values: np.ndarray, raw: Sequence[Any]) -> None:
    """Refuse a B column holding anything but 0 and 1, naming the first bad row."""
    bad = np.flatnonzero((values != 0.0) & (values != 1.0))
    if bad.size:
        i = int(bad[0])
        raise FrameError(
            f"attribute {name!r} is binary (B) but row {i} has {short(raw[i])}: use 0 or 1"
        )


def _shape(frame: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], list[str], list[Any]]:
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
    if len(names) > limits.max_request_columns:
        raise LimitExceeded("max_request_columns", limits.max_request_columns,
                            f"the rows have {len(names):,} attributes")
    for name, typ in zip(names, types, strict=True):
        if typ not in TYPES:
            raise FrameError(
                f"attribute {short(name)} has unknown type {short(typ)}: "
                "expected one of C, B, T, S, L, X"
            )
        check_name(name, limits)
        if SEP in name:
            raise FrameError(f"attribute name {short(name)} must not contain {SEP!r}")
    dup = first_duplicate(names)
    if dup is not None:
        raise FrameError(f"attribute {short(dup)} appears twice in attributeNames")
    if not isinstance(data, list):
        raise FrameError("data must be a list of rows")
    return names, types, data


def check_name(name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """An attribute name: at most `max_name_chars`, no control characters."""
    if len(name) > limits.max_name_chars:
        raise LimitExceeded("max_name_chars", limits.max_name_chars,
                            f"attribute name {short(name)} is too long")
    bad = _CONTROL.search(name)
    if bad is not None:
        raise FrameError(f"attribute name {short(name)} holds the control character "
                         f"{bad.group()!r} at position {bad.start()}")


def check_labels(name: str, labels: Sequence[str], limits: Limits) -> None:
    """A category's distinct values (normalised): how many, how long, no control characters.

    Called before the indicator columns are built: 600 distinct values would otherwise be
    600 columns, each with a conditional co-moment matrix of its own.
    """
    if len(labels) > limits.max_categories:
        raise LimitExceeded("max_categories", limits.max_categories,
                            f"attribute {short(name)} has {len(labels):,} distinct values")
    for label in labels:
        if len(label) > limits.max_value_chars:
            raise LimitExceeded("max_value_chars", limits.max_value_chars,
                                f"attribute {short(name)} has the value {short(label)}")
        bad = _CONTROL.search(label)
        if bad is not None:
            raise FrameError(f"attribute {short(name)} has the value {short(label)}, which "
                             f"holds the control character {bad.group()!r}")


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
    if not np.isfinite(col).all() or any(type(v) is bool for v in raw):
        for i, v in enumerate(raw):
            _number(name, i, v)
    return col


def _number(name: str, i: int, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise FrameError(f"attribute {name!r}, row {i}: {short(v)} is not a number string")
    try:
        f = float(v)
    except ValueError:
        raise FrameError(f"attribute {name!r}, row {i}: {short(v)} is not a number") from None
    if not np.isfinite(f):
        raise FrameError(f"attribute {name!r}, row {i}: {short(v)} is not finite (NaN or infinity)")
    return f


def _encode(name: str, typ: str, raw: list[Any],
            limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], np.ndarray]:
    """Indicator columns for a T/S (one-hot) or L (multi-hot) attribute.

    Distinct values are found by Arrow's hash table, so Python touches each distinct value
    once, not each row; anything Arrow would read differently from Python (non-strings,
    nulls, unencodable surrogates) takes the per-value route, which names the bad row.
    """
    try:
        arr = pa.array(raw)  # inferred, so that bytes values come out binary, not string
    except (pa.ArrowException, UnicodeError, TypeError):
        arr = None
    if arr is None or arr.type != pa.string() or arr.null_count:
        return _encode_each(name, typ, raw, limits)
    return encode_strings(name, typ, arr, limits)


def encode_strings(name: str, typ: str, arr: pa.Array | pa.ChunkedArray,
                   limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], np.ndarray]:
    """Indicator columns from an Arrow string column without nulls."""
    if isinstance(arr, pa.ChunkedArray):
        # one dictionary for the whole column: chunks encoded apart would each have their own
        arr = arr.combine_chunks()
    encoded = pc.dictionary_encode(arr)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return encode_codes(name, typ, encoded.dictionary.to_pylist(), codes, limits)


def encode_codes(
    name: str, typ: str, distinct: list[str], codes: np.ndarray,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[str], np.ndarray]:
    """Indicator columns from the distinct raw values and each row's index into them."""
    n = len(codes)
    if typ == "L":
        items = [{p.strip().lower() for p in v.split("|")} - {""} for v in distinct]
        labels = sorted(set().union(*items))
        check_labels(name, labels, limits)
        index = {lab: k for k, lab in enumerate(labels)}
        table = np.zeros((len(distinct), len(labels)))
        for d, its in enumerate(items):
            table[d, [index[lab] for lab in its]] = 1.0
        return labels, table[codes] if n else np.zeros((0, len(labels)))
    normal = [v.strip().lower() for v in distinct]
    empty = [d for d, lab in enumerate(normal) if not lab]
    if empty:
        i = int(np.flatnonzero(np.isin(codes, empty))[0])
        raise FrameError(f"attribute {name!r}, row {i}: empty category value")
    labels = sorted(set(normal))
    check_labels(name, labels, limits)
    index = {lab: k for k, lab in enumerate(labels)}
    which = np.array([index[lab] for lab in normal], dtype=np.intp)
    block = np.zeros((n, len(labels)))
    block[np.arange(n), which[codes]] = 1.0
    return labels, block


def _encode_each(name: str, typ: str, raw: list[Any],
                 limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], np.ndarray]:
    """The per-value route, kept for inputs Arrow cannot hold: its checks name the row."""
    rows: list[list[str]] = []
    for i, v in enumerate(raw):
        if not isinstance(v, str):
            raise FrameError(f"attribute {name!r}, row {i}: {short(v)} is not a string")
        if typ == "L":
            items = [p.strip().lower() for p in v.split("|")]
            rows.append([p for p in items if p])
        else:
            label = v.strip().lower()
            if not label:
                raise FrameError(f"attribute {name!r}, row {i}: empty category value")
            rows.append([label])
    labels = sorted({lab for r in rows for lab in r})
    check_labels(name, labels, limits)
    index = {lab: k for k, lab in enumerate(labels)}
    block = np.zeros((len(raw), len(labels)))
    for i, r in enumerate(rows):
        for lab in r:
            block[i, index[lab]] = 1.0
    return labels, block
