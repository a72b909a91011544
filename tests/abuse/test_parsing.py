"""Client lists are parsed in linear time, and hostile names and values are refused clearly.

Linearity is pinned by counting comparisons, never by timing: names are a `str` subclass
that counts its `==` calls, so a `list.count` or `in list` per name (quadratic: 39 s for a
0.9 MB learn, 38 s of frozen event loop for a 0.8 MB explore) shows as n² calls.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
import orjson
import pyarrow as pa
import pytest

from fedstats.node.engine import explore
from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import FrameError, ModelError
from fedstats.node.engine.frame import Batch, parse_frame
from fedstats.node.engine.ingest import SMALL_BODY, parse_arrow, parse_dataframe_bytes
from fedstats.node.limits import LimitExceeded, Limits

N = 1_000


class Counted(str):
    """A str that counts how often it is compared for equality."""

    calls: ClassVar[int] = 0

    def __eq__(self, other: object) -> bool:
        Counted.calls += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@pytest.fixture(autouse=True)
def _reset() -> None:
    Counted.calls = 0


def test_duplicate_attribute_names_are_found_in_linear_comparisons() -> None:
    names = [Counted(f"a{i}") for i in range(N)] + [Counted(f"a{N - 1}")]  # the last repeats
    frame = {"attributeNames": names, "attributeTypes": ["C"] * (N + 1), "data": []}
    with pytest.raises(FrameError, match=f"'a{N - 1}' appears twice"):
        parse_frame(frame)
    assert Counted.calls < 10 * N


def test_explore_context_names_are_deduplicated_in_linear_comparisons() -> None:
    names = [Counted(f"a{i % N}") for i in range(2 * N)]
    context = {"values": [{"inputAttributeNames": names, "targetAttributeNames": names}]}
    assert explore.attributes_of(context) == [f"a{i}" for i in range(N)]
    assert Counted.calls < 10 * N


def test_explore_resolves_attributes_to_columns_in_linear_comparisons() -> None:
    acc = Accumulator(conditional=False)
    columns = [f"t{i}$x" for i in range(N)]
    acc.learn(Batch(columns, np.ones((1, N)), {f"t{i}": "T" for i in range(N)},
                    frozenset(columns), {c: c.split("$")[0] for c in columns}))
    got = explore.explore_uni(acc, [Counted(f"t{i}") for i in range(N)])
    assert list(got) == columns
    assert Counted.calls < 10 * N


def test_explore_context_bodies_are_bounded_and_say_what_is_wrong() -> None:
    assert explore.context_attributes(b"  ") is None
    body = orjson.dumps({"values": [{"inputAttributeNames": [f"a{i}" for i in range(50)]}]})
    with pytest.raises(LimitExceeded, match="max_project_columns=10"):
        explore.context_attributes(body, Limits(max_project_columns=10))
    with pytest.raises(FrameError, match="not valid JSON"):
        explore.context_attributes(b"{")
    with pytest.raises(ModelError, match="unknown attribute"):
        explore.explore_uni(Accumulator(), ["x" * 5000])


def _frame(names: list[str], types: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"attributeNames": names, "attributeTypes": types, "data": rows}


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "nul\x00", "del\x7f", "c1\x85"],
                         ids=["newline", "tab", "nul", "del", "c1-control"])
def test_attribute_names_with_control_characters_are_refused(name: str) -> None:
    with pytest.raises(FrameError, match="control character"):
        parse_frame(_frame([name], ["C"], [["1"]]))


def test_category_values_with_control_characters_are_refused() -> None:
    with pytest.raises(FrameError, match="control character"):
        parse_frame(_frame(["t"], ["T"], [["a\x1bb"]]))


def test_long_names_and_values_are_refused_naming_the_limit_and_quoting_a_prefix() -> None:
    with pytest.raises(LimitExceeded, match="max_name_chars=256") as e:
        parse_frame(_frame(["n" * 5_000_000], ["C"], [["1"]]))
    assert len(str(e.value)) < 300
    with pytest.raises(LimitExceeded, match="max_value_chars=256") as e:
        parse_frame(_frame(["t"], ["T"], [["v" * 5_000_000]]))
    assert len(str(e.value)) < 300
    with pytest.raises(LimitExceeded, match="max_value_chars=256"):
        parse_frame(_frame(["l"], ["L"], [["|a|" + "v" * 300 + "|"]]))


def test_a_bad_number_is_quoted_by_a_short_prefix() -> None:
    with pytest.raises(FrameError, match="not a number") as e:
        parse_frame(_frame(["x"], ["C"], [["9" * 100_000 + "z"]]))
    assert len(str(e.value)) < 300


def test_limits_apply_to_every_body_format_the_same_way() -> None:
    limits = Limits(max_categories=3)
    rows = [[f"v{i}"] for i in range(4)]
    with pytest.raises(LimitExceeded, match="max_categories=3"):
        parse_frame(_frame(["t"], ["T"], rows), limits)
    big = orjson.dumps(_frame(["t", "x"], ["T", "C"],
                              [[f"v{i % 4}", "1.5"] for i in range(SMALL_BODY // 8)]))
    assert len(big) >= SMALL_BODY  # the byte-level fast path
    with pytest.raises(LimitExceeded, match="max_categories=3"):
        parse_dataframe_bytes(big, limits)
    table = pa.table({"t": [f"v{i}" for i in range(4)]})
    with pytest.raises(LimitExceeded, match="max_categories=3"):
        parse_arrow(_ipc(table), None, limits)


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def _with_x(rows: int, x_value: bytes) -> bytes:
    row = b'["1.5", "' + x_value + b'"]'
    return (b'{"attributeNames": ["a", "junk"], "attributeTypes": ["C", "X"], "data": ['
            + b", ".join([row] * rows) + b"]}")


@pytest.mark.parametrize("rows", [3, SMALL_BODY // 10], ids=["small-body", "large-body"])
def test_invalid_utf8_in_an_ignored_column_is_refused_whatever_the_body_size(rows: int) -> None:
    body = _with_x(rows, b"\xff\xfe")
    assert (len(body) >= SMALL_BODY) == (rows > 3)
    with pytest.raises(FrameError, match="not valid JSON"):
        parse_dataframe_bytes(body)
    assert parse_dataframe_bytes(_with_x(rows, "é".encode())).rows == rows  # valid UTF-8 is fine


def test_arrow_int64_beyond_2_53_is_refused_naming_the_column_row_and_exactness() -> None:
    table = pa.table({"ok": pa.array([1, 2, 3], pa.int64()),
                      "big": pa.array([1, 2**53, 2**53 + 1], pa.int64())})
    with pytest.raises(FrameError) as e:
        parse_arrow(_ipc(table))
    message = str(e.value)
    assert "'big', row 2" in message and "9007199254740993" in message and "2^53" in message
    assert "exactly" in message
    exact = parse_arrow(_ipc(pa.table({"n": pa.array([-(2**53), 2**53], pa.int64())})))
    assert exact.values[:, 0].tolist() == [-(2.0**53), 2.0**53]
