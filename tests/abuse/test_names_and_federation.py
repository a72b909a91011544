"""Ids, schedules, federation names and contracts: bounded, normalised, checked before use.

A contract is announced to every peer in one NATS control message: one over the node's
limits is refused (400, naming the limit) before anything is saved, and one at the limits
is accepted and announced (a stock nats-server's max_payload is 1 MB).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fedstats.node.client import ApiError
from fedstats.node.federation import grammar
from fedstats.node.federation.errors import ContractError, ScheduleError
from fedstats.node.federation.schedule import parse_schedule
from fedstats.node.limits import Limits
from fedstats_harness.inprocess import Node
from fedstats_harness.natsproc import NatsServer


@pytest.mark.parametrize("pid", ["p1\n", "p1\n\n", "\np1", "p 1", "p1\x00"],
                         ids=["trailing-newline", "two-newlines", "leading-newline", "space",
                              "nul"])
def test_ids_with_a_newline_or_other_stray_characters_are_refused(
        abuse_node: Node, pid: str) -> None:
    c = abuse_node.client("c1")
    with pytest.raises(ApiError) as e:
        c.create_project(pid)
    assert e.value.http_status == 400 and "is not valid" in e.value.message
    assert pid not in c.list_projects()


@pytest.mark.parametrize(("text", "normal"), [("m30", "m30"), ("M030", "m30"), (" h3 ", "h3"),
                                              ("s0005", "s5"), ("d365", "d365")])
def test_schedules_are_normalised(text: str, normal: str) -> None:
    assert parse_schedule(text).text == normal


@pytest.mark.parametrize("text", ["m\u0663\u0660", "m\uff13\uff10", "m3\u00b2", "m30\n5"],
                         ids=["arabic-indic", "fullwidth", "superscript", "newline"])
def test_schedules_accept_ascii_digits_only(text: str) -> None:
    with pytest.raises(ScheduleError, match="ASCII digits"):
        parse_schedule(text)


def test_a_long_schedule_is_refused_without_being_echoed_back() -> None:
    for text in ("m" + "1" * 5_000, "m" + "0" * 4_998 + "30", "x" * 5_000):
        with pytest.raises(ScheduleError) as e:
            parse_schedule(text)
        assert len(str(e.value)) < 120 and "at most 16" in str(e.value)


_LONG = [f"MEAN(attribute_{i:06d}_of_a_rather_long_name) > 1 AND COUNT(another_attribute) > 10"
         for i in range(100_000)]  # 100,000 rules of 82 bytes: 8 MB


def test_a_contract_over_the_byte_limit_is_refused_before_any_rule_is_parsed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    real = grammar._Parser

    def counting(text: str, line: int) -> Any:
        parsed.append(line)
        return real(text, line)

    monkeypatch.setattr(grammar, "_Parser", counting)
    limits = Limits()
    with pytest.raises(ContractError, match="max_contract_bytes=65536"):
        grammar.parse_contract(_LONG, limits.max_contract_rules, limits.max_contract_bytes)
    with pytest.raises(ContractError, match="max_contract_rules=1000"):
        grammar.parse_contract(["COUNT(a) > 1"] * 1_001, limits.max_contract_rules,
                               limits.max_contract_bytes)
    assert parsed == []
    at_limit = ["# ok", "@send allow", *["COUNT(a) > 1"] * 1_000]
    assert len(grammar.parse_contract(at_limit, 1_000, 65_536).rules) == 1_000


def test_a_federation_name_over_the_limit_is_refused_before_anything_is_made(
        abuse_node: Node, fresh_pid: Callable[[], str]) -> None:
    c, pid = abuse_node.client("c1"), fresh_pid()
    for name in ("f" * 1_000, "f" * 4_000):
        with pytest.raises(ApiError) as e:
            c.fed_create(pid, {"fed_name": name, "nats_hosts": "nats://127.0.0.1:1"})
        assert e.value.http_status == 400 and "max_fed_name_chars=128" in e.value.message
        assert pid not in c.list_projects()


def _worst_case_contract() -> list[str]:
    """Rules of characters JSON escapes six bytes each, filling max_contract_bytes."""
    rule = 'COUNT("' + "\u2028" * 20 + '") > 1'  # 3 UTF-8 bytes, 6 escaped, per U+2028
    size = len(rule.encode()) + 1
    return [rule] * (Limits().max_contract_bytes // size)


def test_a_contract_at_the_limits_is_announced_and_one_over_them_changes_nothing(
        abuse_node: Node, nats_server: NatsServer, fresh_pid: Callable[[], str]) -> None:
    c, pid = abuse_node.client("c1"), fresh_pid()
    c.fed_create(pid, {"fed_name": pid, "nats_hosts": nats_server.url})
    try:
        with pytest.raises(ApiError) as e:
            c.add_contract(pid, _LONG)
        assert e.value.http_status == 400 and "max_contract_bytes=65536" in e.value.message
        assert c.fed_info(pid)["contract"] == []
        big = _worst_case_contract()
        c.add_contract(pid, big)  # stored and announced in one control message
        assert c.fed_info(pid)["contract"] == big
    finally:
        c.delete_project(pid)
