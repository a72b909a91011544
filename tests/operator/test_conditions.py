"""Condition bookkeeping: transitions, observedGeneration, and the derived Ready."""

from __future__ import annotations

from fedstats.operator.conditions import Condition, find, merge, ready

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_transition_time_moves_only_when_the_status_changes():
    first = merge(None, [Condition("StreamReady", "False", "NatsUnavailable", "x")], 1, T0)
    same = merge(first, [Condition("StreamReady", "False", "NatsUnavailable", "y")], 2, T1)
    flipped = merge(same, [Condition("StreamReady", "True", "StreamsReady")], 2, T1)
    assert find(same, "StreamReady")["lastTransitionTime"] == T0
    assert find(same, "StreamReady")["message"] == "y"
    assert find(flipped, "StreamReady")["lastTransitionTime"] == T1


def test_every_condition_records_the_generation_it_observed():
    out = merge(None, [Condition("A", "True", "Ok"), Condition("B", "True", "Ok")], 7, T0)
    assert {c["observedGeneration"] for c in out} == {7}


def test_conditions_not_observed_again_are_kept_and_ready_comes_first():
    old = merge(None, [Condition("Zed", "True", "Ok")], 1, T0)
    out = merge(old, [Condition("Ready", "True", "AllReady"), Condition("Abc", "True", "Ok")],
                2, T1)
    assert [c["type"] for c in out] == ["Ready", "Abc", "Zed"]


def test_ready_names_the_first_part_that_is_not_true():
    parts = [Condition("StreamReady", "True", "StreamsReady"),
             Condition("AdminAvailable", "False", "MinimumReplicasUnavailable", "0/1")]
    r = ready(parts)
    assert (r.status, r.reason) == ("False", "MinimumReplicasUnavailable")
    assert r.message.startswith("AdminAvailable")
    assert ready(parts[:1]).status == "True"
    assert ready([Condition("X", "Unknown", "NotObserved")]).status == "Unknown"
