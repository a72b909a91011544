"""The pure pieces of federated rounds: the message body, a member's refusal, the plan a
member reads its rows by."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.frame import parse_frame
from fedstats.node.engine.models.context import MLContext
from fedstats.node.engine.models.glm import GlmError, GlmProblem
from fedstats.node.federation.contract import parse_contract
from fedstats.node.federation.errors import WireError
from fedstats.node.federation.rounds import decode_body, encode_body, refusal


def rows(n: int, levels: tuple[str, ...] = ("a", "b", "c")) -> dict[str, object]:
    rng = np.random.default_rng(n)
    data = [[repr(float(v)), levels[i % len(levels)]] for i, v in enumerate(rng.normal(size=n))]
    return {"attributeNames": ["x", "y"], "attributeTypes": ["C", "T"], "data": data}


def accumulator(n: int) -> Accumulator:
    acc = Accumulator()
    acc.learn(parse_frame(rows(n)))
    return acc


def test_a_round_body_carries_its_json_and_its_bytes_exactly() -> None:
    body = encode_body({"type": "glm_reply", "fit": "f", "round": 3}, b"\x00\x01stats")
    assert decode_body(body) == ({"type": "glm_reply", "fit": "f", "round": 3},
                                 b"\x00\x01stats")


@pytest.mark.parametrize("damaged", [b"", b"\x05\x00\x00\x00{}", b"\x02\x00\x00\x00[]"],
                         ids=["empty", "truncated", "untyped"])
def test_a_damaged_round_body_is_a_wire_error(damaged: bytes) -> None:
    with pytest.raises(WireError):
        decode_body(damaged)


def test_a_member_under_the_floor_refuses_and_says_so() -> None:
    # x and three levels of y: 4 columns, a floor of 9 rows
    why, counted = refusal(accumulator(8), parse_contract([]))
    assert counted and why is not None and "floor of 9 rows" in why
    assert refusal(accumulator(9), parse_contract([])) == (None, False)


def test_a_member_whose_contract_fails_refuses_unless_it_allows_sending() -> None:
    acc = accumulator(40)
    why, counted = refusal(acc, parse_contract(["COUNT(x) >= 100"]))
    assert counted and why is not None and why.startswith("PSR contract")
    assert refusal(acc, parse_contract(["COUNT(x) >= 100", "@send allow"])) == (None, False)


def test_a_plan_reads_rows_as_the_coordinators_problem_does() -> None:
    acc = accumulator(30)
    problem = GlmProblem.of("lr", acc, MLContext.parse({"targetAttributeNames": ["y"]}))
    member = GlmProblem.from_plan(problem.plan())
    batch = parse_frame(rows(30))
    for a, b in zip(problem.rows(batch), member.rows(batch), strict=True):
        np.testing.assert_array_equal(a, b)
    assert member.family == "multinomial" and member.labels == ["a", "b", "c"]


def test_rows_with_a_level_the_plan_does_not_know_are_refused() -> None:
    problem = GlmProblem.of("lr", accumulator(30),
                            MLContext.parse({"targetAttributeNames": ["y"]}))
    member = GlmProblem.from_plan(problem.plan())
    with pytest.raises(GlmError, match=r"y\$d"):
        member.check_columns(parse_frame(rows(30, ("a", "b", "c", "d"))))


def test_a_malformed_plan_is_a_glm_error() -> None:
    with pytest.raises(GlmError, match="malformed"):
        GlmProblem.from_plan({"family": "binomial"})
    with pytest.raises(GlmError):
        GlmProblem.from_plan(None)
