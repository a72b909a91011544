"""The receive-side rules of the federation, without a nats-server: removed, far-future,
stale, damaged, schema and contract, each on its own and in the order they apply."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import encode_snapshot
from fedstats.node.federation.admission import (
    CONTRACT_ERROR,
    MAX_VERSION_AHEAD_US,
    RECEIVE_ERROR,
    judge,
    screen,
)
from fedstats.node.federation.contract import parse_contract

NOW = 1_700_000_000_000_000  # microseconds: the receiver's clock
RNG = np.random.default_rng(11)
NO_RULES = parse_contract([])


def stats(n: int = 30, columns: tuple[str, ...] = ("a", "b"),
          binary: tuple[str, ...] = ()) -> Accumulator:
    acc = Accumulator()
    values = RNG.normal(size=(n, len(columns)))
    for i, c in enumerate(columns):
        if c in binary:
            values[:, i] = RNG.integers(0, 2, size=n)
    acc.learn_array(values, list(columns), binary)
    return acc


# ------------------------------------------------------------------ screen: the header
def test_a_new_version_from_a_member_passes_the_screen() -> None:
    assert screen("p1", NOW, removed=[], newest=None, now_us=NOW) is None
    assert screen("p1", NOW, removed=["p2"], newest=NOW - 1, now_us=NOW) is None


def test_a_removed_peers_snapshot_is_ignored_quietly() -> None:
    decision = screen("p1", NOW, removed=["p1"], newest=None, now_us=NOW)
    assert decision is not None and not decision.admitted
    assert decision.problem is None  # not a refusal: not counted as an error
    assert decision.note is not None and "removed from the federation" in decision.note


@pytest.mark.parametrize("newest", [NOW, NOW + 5], ids=["same", "newer-held"])
def test_a_version_not_newer_than_the_one_held_is_ignored(newest: int) -> None:
    decision = screen("p1", NOW, removed=[], newest=newest, now_us=NOW)
    assert decision is not None and not decision.admitted and decision.problem is None
    assert decision.note == f"ignored snapshot v{NOW} from p1: v{newest} is newer or same"


def test_a_version_too_far_ahead_of_the_clock_is_refused_and_counted() -> None:
    at_limit = NOW + MAX_VERSION_AHEAD_US
    assert screen("p1", at_limit, removed=[], newest=None, now_us=NOW) is None
    decision = screen("p1", at_limit + 1, removed=[], newest=None, now_us=NOW)
    assert decision is not None and not decision.admitted
    assert decision.counter == RECEIVE_ERROR
    assert decision.problem is not None and "ahead of this node's clock" in decision.problem


def test_a_removed_peer_is_ignored_before_its_far_future_version_is_refused() -> None:
    decision = screen("p1", NOW + 2 * MAX_VERSION_AHEAD_US, removed=["p1"], newest=None,
                      now_us=NOW)
    assert decision is not None and decision.problem is None and decision.note


def test_a_far_future_version_is_refused_even_when_newer_than_the_one_held() -> None:
    decision = screen("p1", NOW + 2 * MAX_VERSION_AHEAD_US, removed=[], newest=NOW,
                      now_us=NOW)
    assert decision is not None and decision.problem is not None


# ------------------------------------------------------------------ judge: the body
def test_a_clean_snapshot_is_admitted_as_decoded() -> None:
    sent = stats()
    decision = judge("p1", NOW, encode_snapshot(sent), local=stats(), peers={},
                     contract=NO_RULES)
    assert decision.admitted and decision.problem is None and decision.note is None
    assert decision.acc is not None and decision.acc.allclose(sent)


def test_a_damaged_body_is_refused_and_counted() -> None:
    body = encode_snapshot(stats())
    decision = judge("p1", NOW, body[: len(body) // 2], local=stats(), peers={},
                     contract=NO_RULES)
    assert not decision.admitted and decision.counter == RECEIVE_ERROR
    assert decision.problem is not None and "is damaged" in decision.problem


def test_an_attribute_typed_otherwise_than_here_is_refused() -> None:
    local = stats(columns=("a", "b"), binary=("b",))
    decision = judge("p1", NOW, encode_snapshot(stats(columns=("a", "b"))), local=local,
                     peers={}, contract=NO_RULES)
    assert not decision.admitted and decision.counter == RECEIVE_ERROR
    assert decision.problem is not None and "schema mismatch" in decision.problem
    assert "'b'" in decision.problem


def test_an_attribute_typed_otherwise_than_another_peer_is_refused() -> None:
    other = stats(columns=("a", "c"), binary=("c",))
    decision = judge("p1", NOW, encode_snapshot(stats(columns=("a", "c"))), local=stats(),
                     peers={"p2": other}, contract=NO_RULES)
    assert not decision.admitted and "schema mismatch" in str(decision.problem)


def test_the_senders_own_previous_snapshot_does_not_hold_its_schema_back() -> None:
    before = stats(columns=("a", "c"), binary=("c",))
    decision = judge("p1", NOW, encode_snapshot(stats(columns=("a", "c"))),
                     local=stats(columns=("a",)), peers={"p1": before}, contract=NO_RULES)
    assert decision.admitted


def test_a_snapshot_breaking_the_contract_is_refused_and_counted_per_peer() -> None:
    decision = judge("p1", NOW, encode_snapshot(stats()), local=stats(), peers={},
                     contract=parse_contract(["MEAN(a) < -1e300"]))
    assert not decision.admitted and decision.counter == CONTRACT_ERROR
    assert decision.problem is not None and "refused" in decision.problem


def test_receive_allow_takes_a_snapshot_breaking_a_rule_with_a_warning() -> None:
    decision = judge("p1", NOW, encode_snapshot(stats()), local=stats(), peers={},
                     contract=parse_contract(["@receive allow", "MEAN(a) < -1e300"]))
    assert decision.admitted and decision.counter == CONTRACT_ERROR
    assert decision.problem is not None and "accepted anyway" in decision.problem


def test_receive_allow_never_lets_a_snapshot_under_the_floor_in() -> None:
    few = stats(n=3)  # 3 rows over 2 columns: under the floor of columns + margin
    decision = judge("p1", NOW, encode_snapshot(few), local=stats(), peers={},
                     contract=parse_contract(["@receive allow"]))
    assert not decision.admitted and decision.counter == CONTRACT_ERROR
    assert "under the floor" in str(decision.problem)
