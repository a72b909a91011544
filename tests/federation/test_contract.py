"""The PSR contract grammar, its errors, and its evaluation over accumulators."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.federation.contract import (
    FUNCTIONS,
    floor_violation,
    increment,
    increment_floor_violation,
    parse_contract,
    violations,
)
from fedstats.node.federation.errors import ContractError

RNG = np.random.default_rng(7)


def _acc(rows: int = 200) -> tuple[Accumulator, np.ndarray]:
    x = RNG.normal(size=(rows, 3)) * [1.0, 2.0, 3.0] + [10.0, 0.0, -5.0]
    b = (RNG.random(rows) < 0.3).astype(float)
    data = np.column_stack([x, b])
    acc = Accumulator()
    acc.learn_array(data, ["x", "y", "z", "b"], binary=["b"])
    return acc, data


ACC, DATA = _acc()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("COUNT(x)", len(DATA)),
        ("MEAN(y)", DATA[:, 1].mean()),
        ("VARIANCE(z)", DATA[:, 2].var()),
        ("VARIANCE_UNBIASED(z)", DATA[:, 2].var(ddof=1)),
        ("STDDEV(x)", DATA[:, 0].std()),
        ("STDDEV_UNBIASED(x)", DATA[:, 0].std(ddof=1)),
        ("COVAR(x, y)", np.cov(DATA[:, 0], DATA[:, 1], ddof=0)[0, 1]),
        ("COVAR_UNBIASED(x, y)", np.cov(DATA[:, 0], DATA[:, 1])[0, 1]),
        ("LINCORR(x, z)", np.corrcoef(DATA[:, 0], DATA[:, 2])[0, 1]),
        ("COND_MEAN(x, b)", DATA[DATA[:, 3] == 1, 0].mean()),
        ("COND_MEAN(x, b, 0)", DATA[DATA[:, 3] == 0, 0].mean()),
        ("COND_COUNT(x, b)", (DATA[:, 3] == 1).sum()),
        ("COND_VARIANCE(y, b)", DATA[DATA[:, 3] == 1, 1].var()),
        ("PCT_OF_TRUE(b)", 100 * DATA[:, 3].mean()),
        ("PCT_OF_FALSE(b)", 100 * (1 - DATA[:, 3].mean())),
        ("MEAN_WHEN_TRUE(y, b)", DATA[DATA[:, 3] == 1, 1].mean()),
        ("MEAN_WHEN_FALSE(y, b)", DATA[DATA[:, 3] == 0, 1].mean()),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_function_computes_its_statistic(rule: str, expected: float) -> None:
    eps = 1e-9 * max(1.0, abs(expected))
    assert violations(parse_contract(f"{rule} > {expected - eps}"), ACC) == []
    assert violations(parse_contract(f"{rule} < {expected + eps}"), ACC) == []
    assert len(violations(parse_contract(f"{rule} > {expected + eps}"), ACC)) == 1


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("COUNT(x) >= 150 AND MEAN(x) > 9", True),
        ("COUNT(x) >= 150 AND MEAN(x) > 11", False),
        ("COUNT(x) > 1000 OR MEAN(x) > 9", True),
        ("NOT COUNT(x) > 1000", True),
        ("(COUNT(x) > 1000 OR MEAN(x) > 9) AND STDDEV(z) > 1", True),
        ("(COUNT(x) > 1000 OR MEAN(x) > 11) AND STDDEV(z) > 1", False),
        ("(MEAN(x) + 1) * 2 > 20", True),
        ("-MEAN(z) > 0", True),
        ("count(x) = 200", True),
        ("COUNT(x) <> 200", False),
        ("COUNT('x') == 200   # quoted names work", True),
    ],
    ids=[
        "and",
        "and-fails",
        "or",
        "not",
        "parens",
        "parens-fail",
        "arith",
        "neg",
        "case-insensitive",
        "not-equal",
        "quoted",
    ],
)
def test_logic_and_arithmetic(text: str, holds: bool) -> None:
    assert (violations(parse_contract(text), ACC) == []) is holds


def test_comments_blank_lines_and_actions() -> None:
    c = parse_contract("# header\n\nCOUNT(x) > 1  # trailing\n@send allow\n@receive block\n")
    assert [r.line for r in c.rules] == [3]
    assert (c.send, c.receive) == ("allow", "block")
    assert parse_contract("").send == "block"


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("COUNT(x) >", 1, 11, "expected a number"),
        ("# ok\nFOO(x) > 1", 2, 1, "unknown function 'FOO'"),
        ("COUNT(x) > 1 AND", 1, 17, "expected a number"),
        ("MEAN(x)", 1, 8, "expected a comparison"),
        ("COUNT(x) > 1 )", 1, 14, "expected end"),
        ("COVAR(x) > 1", 1, 1, "COVAR takes 2 attribute(s)"),
        ("COND_MEAN(x, b, 3) > 1", 1, 1, "must be 0 or 1"),
        ("MEAN(x) > 1 ; 2", 1, 13, "unexpected character ';'"),
        ("(MEAN(x) > 1", 1, 13, "expected ')'"),
        ("@send maybe", 1, 1, "unknown action"),
    ],
    ids=[
        "dangling-op",
        "unknown-fn",
        "dangling-and",
        "no-comparison",
        "extra-paren",
        "arity",
        "cond-value",
        "bad-char",
        "unclosed",
        "bad-action",
    ],
)
def test_parse_errors_say_line_and_column(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(ContractError) as e:
        parse_contract(text)
    assert (e.value.line, e.value.column) == (line, column)
    assert words in str(e.value)
    assert str(e.value).startswith(f"line {line}, column {column}: ")


def test_every_documented_function_family_is_known() -> None:
    for name in (
        "COUNT",
        "MEAN",
        "STDDEV",
        "VARIANCE",
        "VARIANCE_UNBIASED",
        "COVAR",
        "LINCORR",
        "COND_MEAN",
        "PCT_OF_TRUE",
        "PCT_OF_FALSE",
        "MEAN_WHEN_TRUE",
        "MEAN_WHEN_FALSE",
    ):
        assert name in FUNCTIONS


def test_a_failure_reports_the_values_that_broke_it() -> None:
    [msg] = violations(parse_contract("# c\nCOUNT(x) >= 1000"), ACC)
    assert msg.startswith("line 2: COUNT(x) >= 1000 fails")
    assert "COUNT(x) = 200" in msg


@pytest.mark.parametrize(
    ("rule", "words"),
    [("MEAN(nope) > 1", "unknown attribute 'nope'"), ("COND_MEAN(x, y) > 1", "not a binary")],
    ids=["unknown-attribute", "non-binary-condition"],
)
def test_rules_on_missing_columns_fail_with_a_reason(rule: str, words: str) -> None:
    [msg] = violations(parse_contract(rule), ACC)
    assert words in msg


def test_statistics_of_no_rows_make_rules_fail_not_crash() -> None:
    assert len(violations(parse_contract("MEAN(x) > -1e300"), Accumulator())) == 1


@pytest.mark.parametrize(
    ("rows", "blocked"),
    [(8, True), (9, False), (0, False)],
    ids=["under-floor", "at-floor", "empty"],
)
def test_floor_is_columns_plus_five(rows: int, blocked: bool) -> None:
    acc = Accumulator()
    acc.learn_array(np.ones((max(rows, 1), 4)) * np.arange(4), list("abcd"))
    if rows == 0:
        acc = Accumulator()
    assert (floor_violation(acc) is not None) is blocked


def test_increment_is_the_rows_between_two_snapshots() -> None:
    old, _ = _acc(50)
    new = old.copy()
    extra = RNG.normal(size=(30, 4))
    extra[:, 3] = (extra[:, 3] > 0).astype(float)
    new.learn_array(extra, ["x", "y", "z", "b"], binary=["b"])
    inc = increment(new, old)
    direct = Accumulator()
    direct.learn_array(extra, ["x", "y", "z", "b"], binary=["b"])
    assert inc.allclose(direct, rtol=1e-8, atol=1e-8)
    assert violations(parse_contract("COUNT(x) = 30"), inc) == []


@pytest.mark.parametrize(
    ("delta", "blocked"),
    [(3, True), (-3, True), (9, False), (0, False)],
    ids=["small-learn", "small-forget", "enough", "unchanged"],
)
def test_increment_floor_applies_to_learns_and_forgets(delta: int, blocked: bool) -> None:
    old = Accumulator()
    old.learn_array(RNG.normal(size=(100, 4)), list("abcd"))
    new = old.copy()
    rows = RNG.normal(size=(abs(delta) or 1, 4))
    if delta > 0:
        new.learn_array(rows, list("abcd"))
    elif delta < 0:
        new.learn_array(rows, list("abcd"))
        old, new = new, old  # new has |delta| rows fewer
    assert (increment_floor_violation(new, old) is not None) is blocked


@pytest.mark.parametrize(
    "rule", ["LINCORR(x, y) < 2", "STDDEV(x) < 1e300", "COND_LINCORR(x, y, b) < 2"]
)
def test_a_negative_variance_makes_rules_fail_not_crash(rule: str) -> None:
    acc, _ = _acc(50)
    acc.total.m2[0, 0] = -5.0  # what a hostile or damaged snapshot may carry
    for m in acc.cond.values():
        m.m2[0, 0] = -5.0
    [failure] = violations(parse_contract(rule), acc)
    assert "nan" in failure
