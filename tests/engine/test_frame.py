"""DataFrames: what a client sends becomes the right columns, and every mistake says where."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedstats.node.engine.errors import FrameError
from fedstats.node.engine.frame import Batch, parse_frame


def frame(names: list[str], types: list[str], data: Any) -> dict[str, Any]:
    return {"attributeNames": names, "attributeTypes": types, "data": data}


def test_continuous_and_binary_values_become_a_float_matrix() -> None:
    b = parse_frame(frame(["x", "y"], ["C", "B"], [["1.5", "0"], ["-2e3", "1"], [" 7 ", "1"]]))
    assert b.columns == ["x", "y"]
    assert b.values.dtype == np.float64 and b.values.flags.c_contiguous
    assert np.array_equal(b.values, [[1.5, 0.0], [-2000.0, 1.0], [7.0, 1.0]])
    assert b.types == {"x": "C", "y": "B"}
    assert b.binary == {"y"}
    assert b.rows == 3


def test_category_values_are_trimmed_lower_cased_and_one_hot() -> None:
    b = parse_frame(frame(["c"], ["T"], [[" Red "], ["RED"], ["blue"]]))
    assert b.columns == ["c$blue", "c$red"]
    assert np.array_equal(b.values, [[0, 1], [0, 1], [1, 0]])
    assert b.binary == {"c$blue", "c$red"}
    assert b.parents == {"c$blue": "c", "c$red": "c"}
    assert b.types == {"c": "T"}


def test_string_attributes_are_encoded_like_categories() -> None:
    b = parse_frame(frame(["s"], ["S"], [["Yes"], ["no"]]))
    assert b.columns == ["s$no", "s$yes"]
    assert b.types == {"s": "S"}


def test_list_values_become_multi_hot_indicator_columns() -> None:
    b = parse_frame(frame(["tags"], ["L"], [["|a|B"], ["|b| c "], [""]]))
    assert b.columns == ["tags$a", "tags$b", "tags$c"]
    assert np.array_equal(b.values, [[1, 1, 0], [0, 1, 1], [0, 0, 0]])


def test_ignored_attributes_are_dropped() -> None:
    b = parse_frame(frame(["id", "x"], ["X", "C"], [["whatever", "1"], ["", "2"]]))
    assert b.columns == ["x"]
    assert "id" not in b.types


def test_a_frame_with_no_rows_has_its_columns_and_no_values() -> None:
    b = parse_frame(frame(["x", "y"], ["C", "B"], []))
    assert b.columns == ["x", "y"] and b.values.shape == (0, 2)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param([1, 2], "must be a JSON object", id="not-an-object"),
        pytest.param({"attributeNames": ["x"]}, "lacks attributeTypes, data", id="missing-keys"),
        pytest.param(frame(["x"], ["C"], {"0": ["1"]}), "data must be a list", id="data-not-list"),
        pytest.param(frame(["x"], ["C"], ["1"]), "data row 0 is not a list", id="row-not-list"),
        pytest.param(
            frame(["x", "y"], ["C", "C"], [["1", "2"], ["3"]]),
            "data row 1 has 1 values, expected 2",
            id="ragged-row",
        ),
        pytest.param(
            frame(["x"], ["C", "C"], [["1"]]),
            "1 entries but attributeTypes has 2",
            id="ragged-types",
        ),
        pytest.param(
            frame(["x", "w"], ["C", "Q"], [["1", "2"]]),
            "attribute 'w' has unknown type 'Q'",
            id="unknown-type",
        ),
        pytest.param(
            frame(["x", "x"], ["C", "C"], [["1", "2"]]),
            "attribute 'x' appears twice",
            id="duplicate-names",
        ),
        pytest.param(
            frame(["a$b"], ["C"], [["1"]]), "must not contain '\\$'", id="separator-in-name"
        ),
        pytest.param(frame([""], ["C"], [["1"]]), "non-empty strings", id="empty-name"),
        pytest.param(frame([3], ["C"], [["1"]]), "non-empty strings", id="name-not-string"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(obj: Any, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_frame(obj)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("abc", "'abc' is not a number", id="text"),
        pytest.param("", "'' is not a number", id="empty"),
        pytest.param("1,5", "'1,5' is not a number", id="comma-decimal"),
        pytest.param("nan", "not finite", id="nan"),
        pytest.param("NaN", "not finite", id="nan-capitalised"),
        pytest.param("inf", "not finite", id="inf"),
        pytest.param("-Infinity", "not finite", id="minus-infinity"),
        pytest.param(None, "is not a number string", id="null"),
        pytest.param(["1"], "is not a number string", id="nested-list"),
    ],
)
def test_unreadable_numbers_name_the_attribute_and_row(value: Any, message: str) -> None:
    data = [["1", "0"], ["2", "1"], [value, "0"]]
    with pytest.raises(FrameError, match=message) as err:
        parse_frame(frame(["x", "y"], ["C", "B"], data))
    assert "attribute 'x', row 2" in str(err.value)


@pytest.mark.parametrize("value", ["2", "0.5", "-1"], ids=["two", "half", "minus-one"])
def test_binary_values_other_than_0_or_1_are_refused(value: str) -> None:
    with pytest.raises(FrameError, match=f"'b' is binary \\(B\\) but row 1 has '{value}'"):
        parse_frame(frame(["b"], ["B"], [["1"], [value]]))


@pytest.mark.parametrize(
    ("typ", "value", "message"),
    [
        pytest.param("T", "  ", "row 1: empty category value", id="blank-category"),
        pytest.param("T", 3, "row 1: 3 is not a string", id="category-not-string"),
        pytest.param("L", None, "row 1: None is not a string", id="list-not-string"),
    ],
)
def test_bad_encoded_values_name_the_attribute_and_row(typ: str, value: Any, message: str) -> None:
    with pytest.raises(FrameError, match=message) as err:
        parse_frame(frame(["k"], [typ], [["a"], [value]]))
    assert "'k'" in str(err.value)


def test_frame_errors_are_value_errors_for_the_http_layer() -> None:
    assert issubclass(FrameError, ValueError)


def test_batch_from_array_marks_binary_columns_and_refuses_nan() -> None:
    b = Batch.from_array([[1.0, 0.0]], ["x", "y"], binary=["y"])
    assert b.types == {"x": "C", "y": "B"} and b.binary == {"y"}
    with pytest.raises(FrameError, match="finite"):
        Batch.from_array([[np.nan, 0.0]], ["x", "y"])
    with pytest.raises(FrameError, match="unique"):
        Batch.from_array([[1.0, 0.0]], ["x", "x"])
    with pytest.raises(FrameError, match="2 columns"):
        Batch.from_array([1.0, 0.0], ["x", "y"])


def test_a_json_boolean_in_a_later_row_is_refused() -> None:
    with pytest.raises(FrameError, match="row 1: True is not a number string"):
        parse_frame(frame(["x"], ["C"], [["1"], [True]]))
