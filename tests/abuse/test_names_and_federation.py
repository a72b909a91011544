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


# --- invitations: checked before they are spent; a failed join rolled back ---------------

def _admin_with_invite(peer: str = "p1") -> tuple[Any, Any, str]:
    from fedstats.node.federation import joining
    from fedstats.node.federation.state import FedConfig
    from fedstats.node.security.invites import TokenBook
    from fedstats.node.security.keys import new_secret_key

    config = FedConfig(fed_name="f", fed_secret_key=new_secret_key(), role="admin",
                       peer_id="admin")
    tokens = TokenBook()
    token = tokens.issue(3600, joining.purpose(config), peer=peer, merges=True)
    config.invites[peer] = joining.token_digest(token)
    return config, tokens, token


def test_a_join_for_the_wrong_peer_id_does_not_burn_the_invitation() -> None:
    from fedstats.node.federation import joining

    config, tokens, token = _admin_with_invite("p1")
    refused = joining.answer_join(config, tokens, {"token": token, "peer": "p2"})
    assert not refused["ok"] and "another peer id" in refused["error"]
    assert "p2" not in config.peers
    admitted = joining.answer_join(config, tokens, {"token": token, "peer": "p1"})
    assert admitted["ok"], admitted  # the finding: "invitation token already used"
    again = joining.answer_join(config, tokens, {"token": token, "peer": "p1"})
    assert not again["ok"]  # and it is spent once it admitted


def test_a_join_that_failed_after_admission_is_rolled_back_by_its_own_token_only() -> None:
    from fedstats.node.federation import joining

    config, tokens, token = _admin_with_invite("p1")
    assert joining.answer_join(config, tokens, {"token": token, "peer": "p1"})["ok"]
    _, _, foreign = _admin_with_invite("p1")
    wrong = joining.answer_abandon(config, {"type": "abandon", "token": foreign, "peer": "p1"})
    assert not wrong["ok"] and "p1" in config.peers
    done = joining.answer_abandon(config, {"type": "abandon", "token": token, "peer": "p1"})
    assert done == {"ok": True, "abandoned": "p1"}
    assert "p1" not in config.peers and "p1" not in config.joined_with
    # the peer id is free again: a new invitation for it admits it
    fresh = tokens.issue(3600, joining.purpose(config), peer="p1", merges=True)
    config.invites["p1"] = joining.token_digest(fresh)
    assert joining.answer_join(config, tokens, {"token": fresh, "peer": "p1"})["ok"]


def test_a_peer_whose_join_fails_after_admission_leaves_no_ghost_at_the_admin(
        abuse_node: Node, nats_server: NatsServer, fresh_pid: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = abuse_node.client("c1")
    admin_pid, peer_pid = fresh_pid(), fresh_pid()
    c.fed_create(admin_pid, {"fed_name": admin_pid, "nats_hosts": nats_server.url})
    invitation = c.fed_invitation(admin_pid, "pw", fed_peer_id="ghost")
    service = abuse_node.app.state.service
    real = service.create_project

    def failing(cid: str, pid: str, *args: Any, **kwargs: Any) -> Any:
        if pid == peer_pid:  # the fault injected: the peer's own store fails after admission
            raise OSError("disk full")
        return real(cid, pid, *args, **kwargs)

    monkeypatch.setattr(service, "create_project", failing)
    with pytest.raises(ApiError):
        c.fed_join(peer_pid, invitation, "pw")
    monkeypatch.undo()
    assert "ghost" not in c.fed_info(admin_pid)["peersInfo"]
    assert peer_pid not in c.list_projects()
    log = c.sync_stats(admin_pid)
    assert any("could not finish joining" in m for m in log["errorLog"]), log


def test_snapshot_chunks_fit_a_stock_nats_servers_max_payload(tmp_path: Any) -> None:
    import asyncio
    from types import SimpleNamespace

    import nats

    from fedstats.node.federation.agent import Agent
    from fedstats.node.federation.wire import DEFAULT_CHUNK, seal_message
    from fedstats.node.security.keys import new_secret_key
    from fedstats_harness.natsproc import LISTENING, nats_server_binary
    from fedstats_harness.process import ChildProcess

    # a nats-server with nothing configured: max_payload is its default, 1 MB
    stock = ChildProcess([nats_server_binary(), "-a", "127.0.0.1", "-p", "-1"],
                         tmp_path / "nats.log", name="stock nats-server")
    stock.start()
    try:
        port = int(stock.wait_for_output(LISTENING, 15)["port"])

        async def publish_snapshot() -> tuple[int, int, int]:
            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            try:
                chunk = Agent.chunk_for_server(
                    SimpleNamespace(nc=nc, chunk_size=DEFAULT_CHUNK))  # type: ignore[arg-type]
                frames = seal_message(new_secret_key(), "f" * 128, "p" * 128, "snapshot", 1,
                                      b"\x01" * (3 * 1024 * 1024), chunk)
                for frame in frames:  # over max_payload, nats-py refuses to publish
                    await nc.publish("snap", frame)
                await nc.flush()
                return nc.max_payload, chunk, len(frames)
            finally:
                await nc.close()

        max_payload, chunk, frames = asyncio.run(publish_snapshot())
    finally:
        stock.stop()
    assert max_payload == 1024 * 1024
    assert chunk < max_payload < DEFAULT_CHUNK and frames == 4
