"""Fast DataFrame ingest: JSON bodies read by Arrow's CSV reader, plus bulk CSV and Arrow.

Decoding a JSON DataFrame into Python strings and then floats costs ~300x the statistics
on it (MEASUREMENTS.md), so `parse_dataframe_bytes` builds no per-value objects: numpy
finds the string delimiters of the `data` array on the raw bytes and proves the array is
a rectangle of escape-free strings; the same bytes, row breaks overwritten by newlines,
are then quoted CSV fields for `pyarrow.csv`. Whatever the scan cannot prove (escapes,
JSON numbers, odd shapes, values Arrow reads otherwise than numpy, any invalid value)
goes to `parse_frame(orjson.loads(body))`, so results and error messages are the
reference ones; the fast path only ever returns what that route would.

`parse_csv` and `parse_arrow` take the same attributes in bulk formats; their errors
name the row and attribute as the DataFrame route does (rows counted from 0 after the
header).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from ..limits import LimitExceeded, Limits
from .errors import FrameError
from .frame import (
    DEFAULT_LIMITS,
    ENCODED,
    Batch,
    _numbers,
    _shape,
    assemble,
    check_binary,
    encode_strings,
    parse_frame,
)

_QUOTE, _COMMA, _OPEN, _CLOSE = 0x22, 0x2C, 0x5B, 0x5D
_JSON_WS = b" \t\n\r"
_DATA_KEY = re.compile(rb'"data"[ \t\n\r]*:[ \t\n\r]*\[')
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BOM = b"\xef\xbb\xbf"
_PLACEHOLDER = b'"\\u0000fedstats:rows"'
_PLACEHOLDER_VALUE = "\x00fedstats:rows"
_MAX_TOKENS = 100_000  # strings before the data key worth walking past


class _Unproven(Exception):
    """The fast path cannot vouch for this body: the reference route decides."""


# Under ~64 KB (a few hundred rows) the fast path's fixed cost (the byte scan, Arrow's
# reader: ~0.3 ms) outweighs what it saves: a 10-row predict frame parses in 70 µs the
# plain way and 300 µs the fast way.
SMALL_BODY = 64 * 1024


def parse_dataframe_bytes(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Batch:
    """`parse_frame(orjson.loads(body))`, same result and errors, without per-value objects."""
    if len(body) >= SMALL_BODY:
        try:
            return _fast_dataframe(body, limits)
        except _Unproven:
            pass
    try:
        frame = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise FrameError(f"body is not valid JSON: {e}") from e
    return parse_frame(frame, limits)


def _fast_dataframe(body: bytes, limits: Limits) -> Batch:
    a, b, csv_bytes, rows = _data_span(body)
    # the rest of the document, with the rows taken out, is small: orjson checks it; the
    # placeholder coming back as `data` proves no later duplicate key overrides the rows
    try:
        head = orjson.loads(body[:a] + _PLACEHOLDER + body[b:])
    except orjson.JSONDecodeError:
        raise _Unproven from None
    if not isinstance(head, dict) or head.get("data") != _PLACEHOLDER_VALUE:
        raise _Unproven
    try:
        names, types, _ = _shape({**head, "data": []}, limits)
    except FrameError:
        raise _Unproven from None
    if not names or rows * len(names) != csv_bytes[1] or all(t == "X" for t in types):
        raise _Unproven
    table = _read_quoted_rows(csv_bytes[0], names, types)
    if table is None or table.num_rows != rows:
        raise _Unproven
    try:
        return assemble(names, types, rows, _arrow_columns(table, limits), limits)
    except FrameError:
        raise _Unproven from None


def _data_span(body: bytes) -> tuple[int, int, tuple[np.ndarray, int], int]:
    """Where the top-level `data` array lies, and its strings as quoted CSV bytes.

    Answers `(start, end, (csv, n_strings), n_rows)`; raises `_Unproven` unless the array
    is `[[s, ...], ...]` of strings without escapes or control characters, every row of
    the same length (checked against the attribute count by the caller).
    """
    a = _top_level_data(body)
    stop = body.find(b"\\", a)
    stop = len(body) if stop < 0 else stop
    # quotes delimit strings exactly up to the first backslash (none may lie in the array)
    buf = np.frombuffer(body, dtype=np.uint8, count=stop)[a:]
    q = np.flatnonzero(buf == _QUOTE)
    if q.size < 2 or _strip(bytes(buf[: q[0]])) != b"[[":
        raise _Unproven
    kinds, rows_at = _gap_kinds(buf, q)
    e = int(np.argmin(kinds))  # the first gap that is neither `,` nor `],[`
    if not _strip(_gap(buf, q, e)).startswith(b"]]"):
        # pretty-printed: drop the whitespace between tokens and look again; quotes are
        # all kept, in order, so the n-th quote is the same one in both buffers
        buf = _without_outer_ws(buf, q)
        cq = np.flatnonzero(buf == _QUOTE)
        kinds, rows_at = _gap_kinds(buf, cq)
        e = int(np.argmin(kinds))
        if not _gap(buf, cq, e).startswith(b"]]"):
            raise _Unproven
        close = a + int(q[2 * e + 1])
        q = cq
    else:
        close = a + int(q[2 * e + 1])
    end = _after_two_closers(body, close + 1)
    n = e + 1
    rows_at = rows_at[: np.searchsorted(rows_at, e)]
    k = int(rows_at[0]) + 1 if rows_at.size else n
    if n % k or not np.array_equal(rows_at, np.arange(k - 1, e, k)):
        raise _Unproven
    first, last = int(q[0]), int(q[2 * e + 1]) + 1
    out = np.array(buf[first:last])
    if (out < 0x20).any():  # control characters are not allowed inside JSON strings
        raise _Unproven
    if (out >= 0x80).any():
        # Arrow checks the UTF-8 of the columns it converts only, not of X ones: the
        # whole array must be valid, as orjson (the small bodies' route) requires
        try:
            out.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise _Unproven from None
    starts = q[1 : 2 * e : 2][rows_at] + 1 - first
    for off in range(3):  # "],[" becomes three newlines: blank lines that CSV skips
        out[starts + off] = 0x0A
    return a, end, (out, n), n // k


def _top_level_data(body: bytes) -> int:
    """The offset of the `[` that opens the value of the outermost object's `data` key."""
    for m in _DATA_KEY.finditer(body):
        if _is_top_level_key(body, m.start()):
            return m.end() - 1
    raise _Unproven


def _gap_kinds(buf: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each gap between consecutive strings: 1 for `,`, 2 for `],[`, 0 otherwise.

    The last entry stands for the text after the last string and is always 0. Also
    answers the indices of the `],[` gaps, in order.
    """
    m = q.size // 2
    closes = q[1 : 2 * m - 1 : 2]
    length = q[2 : 2 * m : 2] - closes - 1
    after = buf[closes + 1]
    kinds = np.zeros(m, dtype=np.int8)
    kinds[:-1] = (length == 1) & (after == _COMMA)
    # row breaks are one in K gaps: test their three bytes on those gaps only
    r = np.flatnonzero((length == 3) & (after == _CLOSE))
    g = closes[r]
    row = (buf[g + 2] == _COMMA) & (buf[g + 3] == _OPEN)
    rows_at = r[row]
    kinds[rows_at] = 2
    return kinds, rows_at


def _gap(buf: np.ndarray, q: np.ndarray, e: int) -> bytes:
    start = int(q[2 * e + 1]) + 1
    stop = int(q[2 * e + 2]) if 2 * e + 2 < q.size else buf.size
    return bytes(buf[start:stop])


def _without_outer_ws(buf: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The bytes without JSON whitespace that lies outside strings (quotes keep their order)."""
    ws = np.flatnonzero(np.isin(buf, np.frombuffer(_JSON_WS, dtype=np.uint8)))
    inside = np.searchsorted(q, ws, side="right") % 2 == 1
    return np.delete(buf, ws[~inside])


def _after_two_closers(body: bytes, i: int) -> int:
    """The offset just past `] ]` (whitespace allowed) starting at `i`."""
    for _ in range(2):
        while i < len(body) and body[i] in _JSON_WS:
            i += 1
        if i >= len(body) or body[i] != _CLOSE:
            raise _Unproven
        i += 1
    return i


def _strip(text: bytes) -> bytes:
    return text.translate(None, _JSON_WS)


def _is_top_level_key(body: bytes, key_at: int) -> bool:
    """Whether the string starting at `key_at` is a key of the outermost object.

    Strings are skipped token by token from the start, so a `"data"` inside another
    string or a nested object is refused; a long walk gives up (the reference decides).
    The walk is only right for valid JSON, which the caller proves with orjson.
    """
    depth, pos = 0, 0
    for _ in range(_MAX_TOKENS):
        m = _STRING.search(body, pos)
        if m is None or m.start() > key_at:
            return False
        between = body[pos : m.start()]
        depth += between.count(b"{") + between.count(b"[")
        depth -= between.count(b"}") + between.count(b"]")
        if m.start() == key_at:
            return depth == 1 and m.end() == key_at + 6
        if m.end() > key_at:
            return False
        pos = m.end()
    return False


def _read_quoted_rows(text: np.ndarray, names: list[str], types: list[str]) -> pa.Table | None:
    """The rows as Arrow columns: floats for C/B, strings for T/S/L; None if Arrow refuses."""
    fields = [f"f{j}" for j in range(len(names))]
    kept = [f for f, t in zip(fields, types, strict=True) if t != "X"]
    try:
        return pacsv.read_csv(
            pa.py_buffer(text),
            read_options=pacsv.ReadOptions(column_names=fields, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=True),
            convert_options=_convert(fields, types, kept),
        )
    except (pa.ArrowException, ValueError):
        return None


def _convert(fields: list[str], types: Sequence[str], kept: list[str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={
            f: pa.string() if t in ENCODED else pa.float64()
            for f, t in zip(fields, types, strict=True)
            if t != "X"
        },
        include_columns=kept,
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=True,
    )


def _arrow_columns(table: pa.Table, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Columns for `assemble` from a table read with `_convert`'s types.

    Arrow reads numbers as numpy does except that it takes NaN and infinity quietly; a
    non-finite or non-0/1 B value raises `_Unproven`, so that the caller reruns the route
    that names the value.
    """

    def column(j: int, name: str, typ: str) -> tuple[list[str] | None, np.ndarray]:
        col = table.column(f"f{j}")
        if typ in ENCODED:
            return encode_strings(name, typ, col, limits)
        values = np.ascontiguousarray(col.to_numpy(), dtype=np.float64)
        if not np.isfinite(values).all() or (
            typ == "B" and ((values != 0.0) & (values != 1.0)).any()
        ):
            raise _Unproven
        return None, values

    return column


def parse_csv(body: bytes, types: str | Sequence[str] | None = None,
              limits: Limits = DEFAULT_LIMITS) -> Batch:
    """A CSV body with a header row of attribute names; `types` as letters (`"C,T,B"`).

    Missing types mean all `C`. Values are checked as in a DataFrame; an error names the
    row (from 0, after the header) and the attribute.
    """
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    names = _csv_header(body)
    letters = _type_letters(types, len(names))
    names, letters, _ = _shape(
        {"attributeNames": names, "attributeTypes": letters, "data": []}, limits
    )
    fields = [f"f{j}" for j in range(len(names))]
    kept = [f for f, t in zip(fields, letters, strict=True) if t != "X"] or fields[:1]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=fields, skip_rows=1, block_size=1 << 22),
            convert_options=_convert(fields, ["T" if t == "X" else t for t in letters], kept),
        )
        return assemble(names, letters, table.num_rows, _arrow_columns(table, limits), limits)
    except LimitExceeded:
        raise  # worded already; the slow route would only reach the same limit
    except (pa.ArrowException, ValueError, _Unproven):
        # any refusal (FrameError is a ValueError too) is worded again by the route
        # that names the row and attribute
        return _csv_by_rows(body, names, letters, limits)


def _csv_header(body: bytes) -> list[str]:
    end = body.find(b"\n")
    line = body if end < 0 else body[:end]
    try:
        row = next(csv.reader([line.decode("utf-8").rstrip("\r")]), [])
    except UnicodeDecodeError as e:
        raise FrameError(f"CSV header is not valid UTF-8: {e}") from e
    if not row:
        raise FrameError("CSV body has no header row of attribute names")
    return row


def _type_letters(types: str | Sequence[str] | None, n: int) -> list[str]:
    if types is None:
        return ["C"] * n
    if isinstance(types, str):
        return [t.strip() for t in types.split(",")]
    return list(types)


def _csv_by_rows(body: bytes, names: list[str], letters: list[str], limits: Limits) -> Batch:
    """The error route: Python's csv module and `parse_frame`, which name the bad value."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FrameError(f"CSV body is not valid UTF-8: {e}") from e
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r][1:]
    except csv.Error as e:
        raise FrameError(f"CSV body cannot be read: {e}") from e
    return parse_frame({"attributeNames": names, "attributeTypes": letters, "data": rows}, limits)


def parse_arrow(body: bytes, types: str | Sequence[str] | None = None,
                limits: Limits = DEFAULT_LIMITS) -> Batch:
    """An Arrow IPC stream: numeric columns are `C`, boolean `B`, string/dictionary `T`.

    `types` (letters, as for `parse_csv`) overrides the inferred ones; string columns
    given as C/B are read as number strings, with the DataFrame's checks.
    """
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise FrameError(f"body is not an Arrow IPC stream: {e}") from e
    names = list(table.column_names)
    if types is None:
        letters = [_arrow_letter(n, f.type) for n, f in zip(names, table.schema, strict=True)]
    else:
        letters = _type_letters(types, len(names))
    names, letters, _ = _shape(
        {"attributeNames": names, "attributeTypes": letters, "data": []}, limits
    )

    def column(j: int, name: str, typ: str) -> tuple[list[str] | None, np.ndarray]:
        col = table.column(j)
        if col.null_count:
            i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise FrameError(f"attribute {name!r}, row {i}: null value")
        text = _is_text(col.type)
        if typ in ENCODED:
            if not text:
                raise FrameError(f"attribute {name!r} is {typ} but holds Arrow {col.type}")
            return encode_strings(name, typ, col.cast(pa.string()), limits)
        if text:
            raw: Any = col.cast(pa.string()).to_pylist()
            values = _numbers(name, raw)
        else:
            values = _arrow_numbers(name, col)
            raw = _Items(values)
        if typ == "B":
            check_binary(name, values, raw)
        return None, values

    return assemble(names, letters, table.num_rows, column, limits)


def _arrow_letter(name: str, t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "B"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "C"
    if _is_text(t):
        return "T"
    raise FrameError(f"attribute {name!r} has Arrow type {t}, which has no attribute type")


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


_EXACT = 2**53  # float64 holds every integer up to this, and only some beyond


def _arrow_numbers(name: str, col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(col.type) and col.type.bit_width == 64:
        _check_exact(name, col)
    try:
        values = np.ascontiguousarray(col.cast(pa.float64()).to_numpy(), dtype=np.float64)
    except (pa.ArrowException, ValueError) as e:
        raise FrameError(f"attribute {name!r} holds Arrow {col.type}, not numbers") from e
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise FrameError(
            f"attribute {name!r}, row {i}: {float(values[i])!r} is not finite (NaN or infinity)"
        )
    return values


def _check_exact(name: str, col: pa.ChunkedArray) -> None:
    """Refuse 64-bit integers that float64 would round, naming the first, rather than let
    Arrow's safe cast refuse them with a message about types."""
    ints = np.concatenate([c.to_numpy(zero_copy_only=False) for c in col.chunks]
                          or [np.zeros(0, dtype=np.int64)])
    bad = np.flatnonzero((ints > _EXACT) | (ints < -_EXACT))
    if bad.size:
        i = int(bad[0])
        raise FrameError(
            f"attribute {name!r}, row {i}: the integer {int(ints[i])} is beyond ±2^53, where "
            "float64 (in which every statistic is computed) holds only some integers "
            "exactly: it would be rounded; send "
            "the column as float64 to accept the rounding, or rescale it"
        )


class _Items:
    """Plain Python floats by index, for error messages (no list built up front)."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = values

    def __getitem__(self, i: int) -> float:
        return float(self._values[i])
