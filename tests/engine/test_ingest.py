"""Byte-level ingest: the fast routes give exactly what `parse_frame` gives, errors included."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedstats.node.engine import ingest
from fedstats.node.engine.errors import FrameError
from fedstats.node.engine.frame import Batch, parse_frame
from fedstats.node.engine.ingest import parse_arrow, parse_csv, parse_dataframe_bytes

NAMES = ["x", "flag", "colour", "tags", "note"]
TYPES = ["C", "B", "T", "L", "X"]
ROWS = [
    ["1.5", "0", " Red ", "a|B|", "ignored"],
    ["-2e3", "1", "blue", "", "é"],
    ["3", "1", "RED", "b| c", "x"],
]


def frame(names: list[str], types: list[str], data: Any) -> dict[str, Any]:
    return {"attributeNames": names, "attributeTypes": types, "data": data}


def reference(body: bytes) -> Batch | str:
    """What the slow route answers: a batch, or the FrameError's message."""
    try:
        return parse_frame(orjson.loads(body))
    except orjson.JSONDecodeError as e:
        return f"body is not valid JSON: {e}"
    except FrameError as e:
        return str(e)


def outcome(parse: Any, *args: Any) -> Batch | str:
    try:
        return parse(*args)
    except FrameError as e:
        return str(e)


def assert_same(got: Batch | str, want: Batch | str) -> None:
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return
    assert got.columns == want.columns
    assert got.types == want.types
    assert got.binary == want.binary
    assert got.parents == want.parents
    assert got.values.dtype == np.float64 and got.values.flags.c_contiguous
    np.testing.assert_array_equal(got.values, want.values, strict=True)
    # -0.0 and 0.0 compare equal: the bits must match too
    assert got.values.tobytes() == want.values.tobytes()


@pytest.fixture(autouse=True)
def fast_path_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pin the fast path on small hand-made bodies: take it whatever the size."""
    monkeypatch.setattr(ingest, "SMALL_BODY", 0)


def test_small_bodies_skip_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "SMALL_BODY", 64 * 1024)

    def refuse(_: bytes) -> Batch:
        raise AssertionError("a small body took the fast path")

    monkeypatch.setattr(ingest, "_fast_dataframe", refuse)
    assert_same(parse_dataframe_bytes(orjson.dumps(PLAIN)), parse_frame(PLAIN))


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the body leaves the fast path."""

    def refuse(_: Any) -> Batch:
        raise AssertionError("the fast path gave up on this body")

    monkeypatch.setattr(ingest, "parse_frame", refuse)


PLAIN = frame(NAMES, TYPES, ROWS)
FAST_BODIES = {
    "compact": orjson.dumps(PLAIN),
    "pretty-indent-2": json.dumps(PLAIN, indent=2, ensure_ascii=False).encode(),
    "spaces-after-separators": json.dumps(PLAIN, ensure_ascii=False).encode(),
    "tabs-and-crlf": json.dumps(PLAIN, indent="\t", ensure_ascii=False)
    .replace("\n", "\r\n")
    .encode(),
    "data-key-first": orjson.dumps({"data": ROWS, "attributeTypes": TYPES, "attributeNames": NAMES}),
    "data-key-middle": orjson.dumps({"attributeNames": NAMES, "data": ROWS, "attributeTypes": TYPES}),
    "extra-keys-with-escapes-after-data": orjson.dumps(
        {**PLAIN, "note": 'a "quoted" \\ note', "meta": {"data": [[1]]}}
    ),
    "attribute-named-data": orjson.dumps(frame(["data", "y"], ["C", "T"], [["1", "a"], ["2", "b"]])),
    "delimiters-inside-values": orjson.dumps(
        frame(["c", "y"], ["T", "C"], [[",", "1"], ["],[", "2"], ["]] ,", "3"], ["[[", "4"]])
    ),
    "unicode-values-as-utf8": orjson.dumps(
        frame(["c", "y"], ["S", "C"], [["Ünïcödé ✓", "1"], ["日本", "2"], ["ünïcödé ✓ ", "3"]])
    ),
    "one-row-one-column": orjson.dumps(frame(["y"], ["C"], [["7"]])),
    "number-spellings": orjson.dumps(
        frame(["y"], ["C"], [["+1"], [".5"], ["5."], ["-0"], ["1E-3"], ["007"], [" 2 "], ["1e-400"]])
    ),
}


@pytest.mark.parametrize("body", FAST_BODIES.values(), ids=FAST_BODIES.keys())
def test_plain_bodies_stay_on_the_fast_path_and_match_parse_frame(
    body: bytes, no_fallback: None
) -> None:
    want = parse_frame(orjson.loads(body))
    assert_same(parse_dataframe_bytes(body), want)


FALLBACK_BODIES = {
    "escaped-quote-in-value": json.dumps(frame(["c"], ["T"], [['say "hi"'], ["b"]])).encode(),
    "ascii-escaped-unicode": json.dumps(frame(["c"], ["T"], [["é"], ["b"]])).encode(),
    "numbers-as-json-numbers": orjson.dumps(frame(["y", "z"], ["C", "B"], [[1.5, 0], [-2, 1]])),
    "mixed-numbers-and-strings": orjson.dumps(frame(["y"], ["C"], [[1.5], ["2"]])),
    "underscore-digits": orjson.dumps(frame(["y"], ["C"], [["1_000"]])),
    "arabic-indic-digits": orjson.dumps(frame(["y"], ["C"], [["١٢"]])),
    "empty-data": orjson.dumps(frame(["y"], ["C"], [])),
    "all-ignored": orjson.dumps(frame(["y"], ["X"], [["a"]])),
    "nested-data-key-before-top-level": orjson.dumps(
        {"meta": {"data": [["9"]]}, **frame(["y"], ["C"], [["1"]])}
    ),
    "duplicate-data-keys-last-wins": b'{"attributeNames":["y"],"attributeTypes":["C"],'
    b'"data":[["1"]],"data":[["2"]]}',
}


@pytest.mark.parametrize("body", FALLBACK_BODIES.values(), ids=FALLBACK_BODIES.keys())
def test_unusual_bodies_fall_back_to_the_same_result(body: bytes) -> None:
    assert_same(outcome(parse_dataframe_bytes, body), reference(body))


def test_duplicate_data_keys_read_the_last_like_orjson() -> None:
    body = FALLBACK_BODIES["duplicate-data-keys-last-wins"]
    assert parse_dataframe_bytes(body).values.tolist() == [[2.0]]


ERROR_BODIES = {
    "truncated-json": orjson.dumps(PLAIN)[:-3],
    "trailing-garbage": orjson.dumps(PLAIN) + b"x",
    "raw-tab-inside-string": orjson.dumps(frame(["c"], ["T"], [["a"]])).replace(b'"a"', b'"a\tb"'),
    "invalid-utf8": orjson.dumps(frame(["c"], ["T"], [["a"]])).replace(b'"a"', b'"\xff"'),
    "missing-comma": b'{"attributeNames":["y","z"],"attributeTypes":["C","C"],"data":[["1""2"]]}',
    "junk-after-string": b'{"attributeNames":["y","z"],"attributeTypes":["C","C"],"data":[["1"5,"2"]]}',
    "ragged-row": orjson.dumps(frame(["y", "z"], ["C", "C"], [["1", "2"], ["3"]])),
    "row-not-a-list": orjson.dumps(frame(["y"], ["C"], [["1"], "2"])),
    "nan": orjson.dumps(frame(["y", "z"], ["C", "C"], [["1", "2"], ["3", "NaN"]])),
    "infinity": orjson.dumps(frame(["y"], ["C"], [["1"], ["-inf"]])),
    "nan-with-payload": orjson.dumps(frame(["y"], ["C"], [["nan(1)"]])),
    "overflow-to-inf": orjson.dumps(frame(["y"], ["C"], [["1e400"]])),
    "empty-number": orjson.dumps(frame(["y"], ["C"], [["1"], [""]])),
    "not-a-number": orjson.dumps(frame(["y"], ["C"], [["1"], ["1.5x"]])),
    "binary-not-0-1": orjson.dumps(frame(["y", "b"], ["C", "B"], [["1", "1"], ["2", "0.5"]])),
    "empty-category": orjson.dumps(frame(["c"], ["T"], [["a"], ["  "]])),
    "null-value": orjson.dumps(frame(["c"], ["T"], [["a"], [None]])),
    "unknown-type": orjson.dumps(frame(["y"], ["Q"], [["1"]])),
    "duplicate-names": orjson.dumps(frame(["y", "y"], ["C", "C"], [["1", "2"]])),
    "expansion-clash": orjson.dumps(frame(["c"], ["T"], [["a"], ["A "]]))
    .replace(b'["c"]', b'["c","c$a"]')
    .replace(b'["T"]', b'["T","C"]')
    .replace(b'["a"]', b'["a","1"]')
    .replace(b'["A "]', b'["A ","2"]'),
    "data-not-a-list": orjson.dumps(frame(["y"], ["C"], {"r": 1})),
    "missing-data": orjson.dumps({"attributeNames": ["y"], "attributeTypes": ["C"]}),
    "not-an-object": b'[["1"]]',
    "names-and-types-disagree": orjson.dumps(frame(["y", "z"], ["C"], [["1", "2"]])),
}


@pytest.mark.parametrize("body", ERROR_BODIES.values(), ids=ERROR_BODIES.keys())
def test_bad_bodies_are_refused_with_the_reference_message(body: bytes) -> None:
    want = reference(body)
    assert isinstance(want, str), "the case must be an error for the reference route"
    with pytest.raises(FrameError) as caught:
        parse_dataframe_bytes(body)
    assert str(caught.value) == want


@pytest.mark.parametrize(
    "value",
    [" 1.5", "1.5 ", "+.5", "5.", "1e05", "1E+5", "-0", "0x10", "1d5", "inf", "Infinity",
     "-nan", "nan(2)", "1e", ".e5", "1..2", "١", "１", "1_0", "\u00a01", "0.1e1_0",
     "123456789012345678901234567890", "4.9406564584124654e-324", "1.7976931348623157e308",
     "2.2250738585072011e-308", "0.30000000000000004"],
)
def test_number_strings_read_exactly_as_numpy_reads_them(value: str) -> None:
    body = orjson.dumps(frame(["y", "z"], ["C", "C"], [["1", value], [value, "2"]]))
    assert_same(outcome(parse_dataframe_bytes, body), reference(body))


# -- random frames ------------------------------------------------------------------

NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.integers(0, 25).flatmap(
        lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p)
    ).map(str),
    st.sampled_from(["1e400", "nan", "-inf", "", " 3 ", "+.5", "1_0", "0x1", "7."]),
)
CATEGORY = st.one_of(
    st.sampled_from(["a", "B", " b ", "a|b", "|c|", ",", "],[", "[[", "é", "日本", " "]),
    st.text(st.characters(codec="utf-8"), max_size=6),
)


@st.composite
def dataframes(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    k = draw(st.integers(1, 5))
    names = [f"a{j}" for j in range(k)]
    types = draw(st.lists(st.sampled_from("CBTSLX"), min_size=k, max_size=k))
    n = draw(st.integers(1, 8))
    rows = []
    for _ in range(n):
        row: list[Any] = []
        for t in types:
            if t == "B":
                row.append(draw(st.sampled_from(["0", "1", "1.0", "0e3", "2"])))
            elif t == "C":
                row.append(draw(NUMBER))
            else:
                row.append(draw(CATEGORY))
        rows.append(row)
    doc = frame(names, types, rows)
    keys = draw(st.permutations(list(doc)))
    doc = {key: doc[key] for key in keys}
    style = draw(st.sampled_from(["orjson", "indent", "ascii", "spaced"]))
    if style == "orjson":
        body = orjson.dumps(doc)
    elif style == "indent":
        body = json.dumps(doc, indent=draw(st.integers(0, 3)), ensure_ascii=False).encode()
    elif style == "ascii":
        body = json.dumps(doc).encode()
    else:
        body = json.dumps(doc, separators=(" , ", " : "), ensure_ascii=False).encode()
    return body, doc


@settings(max_examples=300, deadline=None)
@given(dataframes())
def test_random_frames_match_parse_frame(case: tuple[bytes, dict[str, Any]]) -> None:
    body, _ = case
    assert_same(outcome(parse_dataframe_bytes, body), reference(body))


def test_a_large_numeric_frame_matches_parse_frame(no_fallback: None) -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(scale=1e3, size=(5_000, 6))
    data = [[repr(float(v)) for v in row] for row in values]
    data[17][2] = "1e-5"
    body = orjson.dumps(frame([f"c{j}" for j in range(6)], ["C"] * 6, data))
    got = parse_dataframe_bytes(body)
    np.testing.assert_array_equal(got.values[:17], values[:17])
    assert got.values[17, 2] == 1e-5


# -- CSV ----------------------------------------------------------------------------


def csv_body(names: list[str], rows: list[list[str]]) -> bytes:
    def field(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v

    return ("\n".join(",".join(map(field, r)) for r in [names, *rows]) + "\n").encode()


@pytest.mark.parametrize(
    "types", ["C,B,T,L,X", " C , B , T , L , X ", ["C", "B", "T", "L", "X"]],
    ids=["letters", "letters-with-spaces", "sequence"],
)
def test_csv_reads_like_the_same_dataframe(types: Any) -> None:
    want = parse_frame(PLAIN)
    assert_same(parse_csv(csv_body(NAMES, ROWS), types), want)


def test_csv_without_types_reads_every_column_as_continuous() -> None:
    got = parse_csv(b"a,b\n1,2\r\n3,4.5\n\n")
    assert got.types == {"a": "C", "b": "C"}
    assert got.values.tolist() == [[1.0, 2.0], [3.0, 4.5]]


def test_csv_quoted_categories_with_commas_become_one_column_each() -> None:
    got = parse_csv(csv_body(["c", "y"], [["a,b", "1"], ['say "x"', "2"]]), "T,C")
    assert got.columns == ["c$a,b", 'c$say "x"', "y"]


CSV_ERRORS = {
    "bad-number": (b"a,b\n1,2\n3,x\n", None, "attribute 'b', row 1: 'x' is not a number"),
    "nan": (b"a\n1\nnan\n", None, "attribute 'a', row 1: 'nan' is not finite (NaN or infinity)"),
    "empty-number": (b"a,b\n1,\n", None, "attribute 'b', row 0: '' is not a number"),
    "binary-2": (b"a\n0\n2\n", "B", "attribute 'a' is binary (B) but row 1 has '2': use 0 or 1"),
    "ragged": (b"a,b\n1,2\n3\n", None, "data row 1 has 1 values, expected 2"),
    "empty-category": (b"c\nx\n \n", "T", "attribute 'c', row 1: empty category value"),
    "types-count": (b"a,b\n1,2\n", "C", "attributeNames has 2 entries but attributeTypes has 1"),
    "unknown-type": (b"a\n1\n", "Z", "attribute 'a' has unknown type 'Z': expected one of C, B, T, S, L, X"),
    "no-header": (b"", None, "CSV body has no header row of attribute names"),
    "bad-utf8": (b"c\n\xff\n", "T", "CSV body is not valid UTF-8"),
}


@pytest.mark.parametrize(("body", "types", "message"), CSV_ERRORS.values(), ids=CSV_ERRORS.keys())
def test_csv_errors_name_the_row_and_attribute(body: bytes, types: str | None, message: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_csv(body, types)
    assert str(caught.value).startswith(message)


def test_csv_numbers_arrow_refuses_are_read_as_numpy_reads_them() -> None:
    assert parse_csv(b"a\n1_000\n").values.tolist() == [[1000.0]]


# -- Arrow --------------------------------------------------------------------------


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_arrow_columns_take_their_types_from_the_schema() -> None:
    table = pa.table(
        {
            "x": pa.array([1.5, -2.0, 3.0]),
            "n": pa.array([1, 2, 3], pa.int32()),
            "flag": pa.array([False, True, True]),
            "colour": pa.array([" Red ", "blue", "RED"]).dictionary_encode(),
            "city": pa.array(["a", "b", "a"], pa.large_string()),
        }
    )
    got = parse_arrow(ipc(table))
    assert got.types == {"x": "C", "n": "C", "flag": "B", "colour": "T", "city": "T"}
    assert got.columns == ["x", "n", "flag", "colour$blue", "colour$red", "city$a", "city$b"]
    assert got.values.tolist() == [
        [1.5, 1, 0, 0, 1, 1, 0],
        [-2.0, 2, 1, 1, 0, 0, 1],
        [3.0, 3, 1, 0, 1, 1, 0],
    ]


def test_arrow_given_types_match_the_same_dataframe() -> None:
    table = pa.table({n: pa.array([r[j] for r in ROWS]) for j, n in enumerate(NAMES)})
    assert_same(parse_arrow(ipc(table), "C,B,T,L,X"), parse_frame(PLAIN))


ARROW_ERRORS = {
    "null": (pa.table({"a": pa.array([1.0, None])}), None, "attribute 'a', row 1: null value"),
    "nan": (pa.table({"a": pa.array([1.0, float("nan")])}), None,
            "attribute 'a', row 1: nan is not finite (NaN or infinity)"),
    "binary-2": (pa.table({"a": pa.array([0, 2])}), "B",
                 "attribute 'a' is binary (B) but row 1 has 2.0: use 0 or 1"),
    "category-of-numbers": (pa.table({"a": pa.array([0, 2])}), "T",
                            "attribute 'a' is T but holds Arrow int64"),
    "unsupported-type": (pa.table({"a": pa.array([b"x"])}), None,
                         "attribute 'a' has Arrow type binary, which has no attribute type"),
    "number-strings": (pa.table({"a": pa.array(["1", "x"])}), "C",
                       "attribute 'a', row 1: 'x' is not a number"),
}


@pytest.mark.parametrize(("table", "types", "message"), ARROW_ERRORS.values(), ids=ARROW_ERRORS.keys())
def test_arrow_errors_name_the_row_and_attribute(
    table: pa.Table, types: str | None, message: str
) -> None:
    with pytest.raises(FrameError) as caught:
        parse_arrow(ipc(table), types)
    assert str(caught.value) == message


def test_a_body_that_is_not_an_arrow_stream_is_refused() -> None:
    with pytest.raises(FrameError, match="body is not an Arrow IPC stream"):
        parse_arrow(random.Random(1).randbytes(64))
