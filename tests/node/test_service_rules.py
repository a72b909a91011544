"""The service's pure rules, without a node, a store or HTTP: ids, engines, batches, forgets."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import FrameError, SchemaMismatch
from fedstats.node.service import BadRequest
from fedstats.node.service.rules import (
    NEGATIVE_TOLERANCE,
    check_algo,
    check_finite,
    check_forget,
    check_has_attributes,
    check_id,
    check_same_attributes,
    negative_variance,
    project_engine,
    variance_diagonals,
)
from fedstats.node.service.updates import fold

RNG = np.random.default_rng(7)


def learned(rows: np.ndarray, columns: list[str], binary: tuple[str, ...] = ()) -> Accumulator:
    acc = Accumulator()
    acc.learn_array(rows, columns, binary)
    return acc


def no_gpu() -> bool:
    return False


def has_gpu() -> bool:
    return True


def never_asked() -> bool:
    raise AssertionError("the GPU was probed for a cpu project")


# ------------------------------------------------------------------ ids
@pytest.mark.parametrize("value", ["p", "P-1", "a.b_c", "9lives", "x" * 128])
def test_an_id_of_letters_digits_and_dot_dash_underscore_is_kept(value: str) -> None:
    assert check_id(value, "project id") == value


@pytest.mark.parametrize(
    "value",
    [None, "", "-lead", ".hidden", "_x", "a/b", "..", "a b", "é", "x" * 129, "p\n"],
    ids=["none", "empty", "dash-first", "dot-first", "underscore-first", "slash", "dotdot",
         "space", "non-ascii", "too-long", "trailing-newline"],
)
def test_an_id_that_could_not_be_a_path_or_key_is_refused(value: str | None) -> None:
    with pytest.raises(BadRequest, match=r"model id .* is not valid"):
        check_id(value, "model id")


# ------------------------------------------------------------------ a new project's engine
def test_without_an_engine_a_project_gets_the_nodes_default() -> None:
    assert project_engine(None, "cpu", never_asked) == "cpu"
    assert project_engine(None, "gpu", has_gpu) == "gpu"


def test_a_gpu_default_on_a_node_without_a_gpu_falls_back_to_cpu() -> None:
    assert project_engine(None, "gpu", no_gpu) == "cpu"


def test_an_explicit_gpu_on_a_node_without_one_is_refused_not_downgraded() -> None:
    with pytest.raises(BadRequest, match="needs a CUDA GPU"):
        project_engine("gpu", "cpu", no_gpu)
    assert project_engine("gpu", "cpu", has_gpu) == "gpu"


@pytest.mark.parametrize("engine", ["tpu", "CPU", ""])
def test_an_unknown_engine_is_refused(engine: str) -> None:
    with pytest.raises(BadRequest, match="use cpu or gpu"):
        project_engine(engine, "cpu", has_gpu)


# ------------------------------------------------------------------ algorithms
def test_an_unknown_algorithm_is_refused_with_the_known_ones_listed() -> None:
    assert check_algo("linear", {"linear", "qda"}) == "linear"
    with pytest.raises(BadRequest, match="use one of linear, qda"):
        check_algo("svm", {"qda", "linear"})
    with pytest.raises(BadRequest):
        check_algo(None, {"linear"})


# ------------------------------------------------------------------ batches
def test_a_batch_without_attributes_is_refused() -> None:
    check_has_attributes(["a"])
    with pytest.raises(FrameError, match="no attribute"):
        check_has_attributes([])


def test_a_batch_must_carry_every_attribute_of_the_project_and_may_add_more() -> None:
    check_same_attributes(["a", "b"], {"a", "b", "c"})
    with pytest.raises(SchemaMismatch, match="lack attribute\\(s\\) 'b'"):
        check_same_attributes(["a", "b"], {"a", "c"})


def test_statistics_that_overflow_float64_are_refused() -> None:
    check_finite(learned(RNG.normal(size=(5, 2)), ["a", "b"]), "these rows' statistics")
    with np.errstate(over="ignore", invalid="ignore"):
        huge = learned(np.array([[1e200, 1.0], [-1e200, 2.0]]), ["a", "b"])
    with pytest.raises(BadRequest, match="these rows' statistics overflow"):
        check_finite(huge, "these rows' statistics")


# ------------------------------------------------------------------ forget validity
def test_forgetting_rows_that_were_learned_leaves_no_negative_variance() -> None:
    rows = RNG.normal(size=(40, 2))
    acc = learned(rows, ["a", "b"])
    before = variance_diagonals(acc)
    acc.unmerge(learned(rows[:15], ["a", "b"]))
    assert negative_variance(before, variance_diagonals(acc)) is None
    check_forget(before, variance_diagonals(acc))


def test_forgetting_rows_never_learned_is_refused_as_a_negative_variance() -> None:
    acc = learned(RNG.normal(size=(40, 2)), ["a", "b"])
    before = variance_diagonals(acc)
    acc.unmerge(learned(RNG.normal(size=(20, 2)) * 50, ["a", "b"]))
    assert negative_variance(before, variance_diagonals(acc)) == ""
    with pytest.raises(BadRequest, match="these rows were not learned"):
        check_forget(before, variance_diagonals(acc))


def test_a_negative_variance_within_a_condition_names_that_condition() -> None:
    before = {"": np.array([4.0, 4.0]), "flag": np.array([2.0, 2.0])}
    after = {"": np.array([1.0, 1.0]), "flag": np.array([1.0, -0.5])}
    assert negative_variance(before, after) == "flag"
    with pytest.raises(BadRequest, match="given 'flag'"):
        check_forget(before, after)


def test_rounding_below_the_tolerance_is_not_a_refusal_but_above_it_is() -> None:
    before = {"": np.array([1e6])}
    tiny = {"": np.array([-0.5 * NEGATIVE_TOLERANCE * 1e6])}
    clear = {"": np.array([-2 * NEGATIVE_TOLERANCE * 1e6])}
    assert negative_variance(before, tiny) is None
    assert negative_variance(before, clear) == ""


def test_a_variance_that_is_not_finite_after_a_forget_is_refused() -> None:
    assert negative_variance({"": np.array([1.0])}, {"": np.array([np.nan])}) == ""


def test_a_condition_emptied_by_the_forget_is_not_checked() -> None:
    assert negative_variance({"flag": np.array([1.0])}, {}) is None
    assert negative_variance({"flag": np.array([1.0])}, {"flag": np.array([])}) is None


# ------------------------------------------------------------------ the fold
def test_the_fold_of_a_learn_then_a_forget_leaves_exactly_the_other_rows() -> None:
    rows = RNG.normal(size=(50, 3))
    acc = Accumulator()
    fold(acc, "learn", learned(rows, ["a", "b", "c"]))
    fold(acc, "forget", learned(rows[:20], ["a", "b", "c"]))
    assert acc.allclose(learned(rows[20:], ["a", "b", "c"]), rtol=1e-9, atol=1e-9)


def test_the_fold_refuses_a_forget_of_rows_never_learned() -> None:
    acc = learned(RNG.normal(size=(30, 2)), ["a", "b"])
    with pytest.raises(BadRequest, match="not learned"):
        fold(acc, "forget", learned(RNG.normal(size=(10, 2)) * 100, ["a", "b"]))


def test_the_fold_refuses_a_batch_missing_an_attribute_of_the_project() -> None:
    acc = learned(RNG.normal(size=(30, 2)), ["a", "b"])
    with pytest.raises(SchemaMismatch, match="'b'"):
        fold(acc, "learn", learned(RNG.normal(size=(5, 1)), ["a"]))
