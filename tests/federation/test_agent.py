"""Agents of one federation on a real nats-server: exchange, exactness, faults, restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import encode_snapshot
from fedstats.node.federation.errors import FederationError
from fedstats.node.federation.wire import seal_message
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.agents import COLS, merged, rows, until
from fedstats_harness.agents import AgentNode as Node
from fedstats_harness.natsproc import NatsServer

RNG = np.random.default_rng(4)


@pytest.fixture
async def fed(
    nats_server: NatsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, Node]]:
    key = new_secret_key()
    name = request.node.name.replace("[", "_").replace("]", "")
    nodes = {n: Node(nats_server, tmp_path, n, key, name) for n in ("admin", "p1", "p2")}
    for node in nodes.values():
        await node.agent.start()
    yield nodes
    for node in nodes.values():
        await node.agent.stop()


async def test_admin_merges_peers_into_the_pooled_statistics(fed: dict[str, Node]) -> None:
    parts = {"admin": rows(40), "p1": rows(60), "p2": rows(80)}
    for name, r in parts.items():
        fed[name].learn(r)
        fed[name].agent.start_pulse()
    admin = fed["admin"].agent
    await until(admin, lambda: set(admin.peers) == {"p1", "p2"})
    pooled = Accumulator()
    pooled.learn_array(np.vstack(list(parts.values())), COLS)
    assert merged(fed["admin"]).allclose(pooled, rtol=1e-12, atol=1e-6)
    # decentralized: a peer merges too
    p1 = fed["p1"].agent
    await until(p1, lambda: set(p1.peers) == {"admin", "p2"})
    assert merged(fed["p1"]).allclose(pooled, rtol=1e-12, atol=1e-6)
    assert admin.sync_stats()["rcvCount"] >= 2


async def test_forget_at_a_peer_reaches_the_admin_after_a_full_sync(fed: dict[str, Node]) -> None:
    r = rows(100)
    fed["p1"].learn(r)
    admin, p1 = fed["admin"].agent, fed["p1"].agent
    p1.config.sync_sched = "h1"  # only the full sync request can make it publish again
    p1.start_pulse()
    await until(admin, lambda: admin.peers.get("p1", (0, Accumulator()))[1].n == 100)
    fed["p1"].acc.forget_array(r[:30], COLS)
    await admin.full_sync_request()
    await until(admin, lambda: admin.peers["p1"][1].n == 70)
    expected = Accumulator()
    expected.learn_array(r[30:], COLS)
    assert admin.peers["p1"][1].allclose(expected, rtol=1e-9, atol=1e-6)


async def test_duplicates_and_stale_versions_change_nothing(fed: dict[str, Node]) -> None:
    admin, p2 = fed["admin"].agent, fed["p2"]
    old, new = Accumulator(), Accumulator()
    old.learn_array(rows(20), COLS)
    new.learn_array(rows(50), COLS)

    sent = 0

    async def send(acc: Accumulator, version: int) -> None:
        nonlocal sent
        [frame] = seal_message(
            p2.config.fed_secret_key,
            admin.names.fed,
            "p2",
            "snapshot",
            version,
            encode_snapshot(acc),
        )
        # distinct subjects, so the stream (newest message per subject) keeps all of them
        await p2.agent.js.publish(f"{admin.names.stats('p2')}.{sent}", frame)
        sent += 1

    await send(new, 200)
    await send(new, 200)  # delivered twice
    await send(old, 100)  # an older version arriving late
    await until(admin, lambda: "p2" in admin.peers)
    await send(new, 300)  # a marker: once it is seen, the two before it were handled
    await until(admin, lambda: admin.peers["p2"][0] == 300)
    assert admin.peers["p2"][1].n == 50
    assert admin.counters["rcvCount"] == 2  # v200 and v300; the copy and v100 were ignored
    assert any("ignored snapshot v100" in m for m in admin.sync_stats()["syncLog"])


async def test_snapshots_larger_than_a_chunk_are_reassembled(fed: dict[str, Node]) -> None:
    p1 = fed["p1"]
    await p1.agent.stop()
    p1.agent = p1.new_agent(chunk_size=256)
    await p1.agent.start()
    p1.learn(rows(30))
    assert await p1.agent.publish()
    admin = fed["admin"].agent
    await until(admin, lambda: "p1" in admin.peers)
    assert admin.peers["p1"][1].allclose(p1.acc, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("contract", "rows_", "reason"),
    [
        (["COUNT(a) >= 1000"], 50, "COUNT(a) >= 1000 fails"),
        ([], 6, "under the floor of 9 rows"),
    ],
    ids=["contract-rule", "floor"],
)
async def test_send_is_blocked_counted_and_logged(
    fed: dict[str, Node], contract: list[str], rows_: int, reason: str
) -> None:
    p1 = fed["p1"]
    if contract:
        await p1.agent.set_contract(contract)
    p1.learn(rows(rows_))
    assert not await p1.agent.publish()
    stats = p1.agent.sync_stats()
    assert stats["sndContractError"] == 1 and stats["sndCount"] == 0
    assert reason in stats["errorLog"][-1]


async def test_receiver_refuses_snapshots_breaking_its_contract(fed: dict[str, Node]) -> None:
    admin, p1 = fed["admin"].agent, fed["p1"]
    admin.set_contract_locally(["MEAN(y) < -1e300"])
    p1.learn(rows(50))
    assert await p1.agent.publish()
    await until(admin, lambda: admin.counters["rcvContractError"].get("p1") == 1)
    assert "p1" not in admin.peers
    assert "from p1 refused" in admin.sync_stats()["errorLog"][-1]


async def test_admin_contract_and_schedule_reach_peers(fed: dict[str, Node]) -> None:
    admin, p2 = fed["admin"].agent, fed["p2"].agent
    await admin.set_contract(["COUNT(a) >= 10"])
    await admin.set_schedule("m5")
    wanted = ("m5", ["COUNT(a) >= 10"])
    await until(p2, lambda: (p2.config.sync_sched, p2.config.contract) == wanted)
    assert fed["p2"].state.config("c1", "p2").sync_sched == "m5"  # persisted


async def test_pulse_and_peers_survive_an_agent_restart(fed: dict[str, Node]) -> None:
    admin_node, p1 = fed["admin"], fed["p1"]
    p1.learn(rows(40))
    p1.agent.start_pulse()
    await until(admin_node.agent, lambda: "p1" in admin_node.agent.peers)
    await p1.agent.stop()
    await admin_node.agent.stop()
    admin_node.agent = admin_node.new_agent()
    assert admin_node.agent.peers["p1"][1].n == 40  # from SQLite, before hearing anything
    await admin_node.agent.start()
    p1.agent = p1.new_agent()
    await p1.agent.start()
    assert p1.agent.pulsing  # the pulse state was persisted
    p1.learn(rows(20))
    p1.agent.wake()
    await until(admin_node.agent, lambda: admin_node.agent.peers["p1"][1].n == 60)


async def test_federation_recovers_when_nats_server_restarts(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    key = new_secret_key()
    admin, p1 = (Node(server, tmp_path, n, key, "restart") for n in ("admin", "p1"))
    try:
        for node in (admin, p1):
            await node.agent.start()
        p1.learn(rows(30))
        p1.agent.start_pulse()
        await until(admin.agent, lambda: "p1" in admin.agent.peers)
        await asyncio.to_thread(server.restart)  # memory streams and consumers are gone
        p1.learn(rows(30))
        await until(admin.agent, lambda: admin.agent.peers["p1"][1].n == 60, timeout=30)
        assert any("reconnected" in m for m in p1.agent.sync_stats()["syncLog"])
    finally:
        for node in (admin, p1):
            await node.agent.stop()
        server.stop()


async def test_a_peer_typing_an_attribute_otherwise_is_refused_and_the_rest_still_merge(
        fed: dict[str, Node]) -> None:
    admin = fed["admin"].agent
    fed["p1"].learn(rows(60))
    # p2's rows call `y` binary where the federation has it continuous
    x = RNG.normal(size=(40, 3))
    fed["p2"].acc.learn_array(np.column_stack([x, RNG.integers(0, 2, 40)]), COLS, binary=["y"])
    # the schema is the one already merged (the admin's own rows, else the peers' first)
    fed["p1"].agent.start_pulse()
    await until(admin, lambda: "p1" in admin.peers)
    fed["p2"].agent.start_pulse()
    await until(admin, lambda: admin.sync_stats()["rcvError"] >= 1)
    assert "p2" not in admin.peers
    assert any("from p2 refused, schema mismatch: attribute 'y' has type 'B' there but 'C' here"
               in line for line in admin.sync_stats()["errorLog"])
    assert merged(fed["admin"]).n == 60  # the federation's model still builds from the rest


# ------------------------------------------------------------ forged senders
def _seal(node: Node, claimed: str, kind: str, version: int, body: bytes) -> bytes:
    [frame] = seal_message(
        node.config.fed_secret_key, node.agent.names.fed, claimed, kind, version, body
    )
    return frame


async def test_a_snapshot_claiming_another_peer_is_refused(fed: dict[str, Node]) -> None:
    admin, p2 = fed["admin"].agent, fed["p2"]
    acc = Accumulator()
    acc.learn_array(rows(50), COLS)
    # p2 holds the federation key, so it can seal a message that says it is from p1 ...
    forged = _seal(p2, "p1", "snapshot", 100, encode_snapshot(acc))
    # ... but it may publish only on its own subjects (NATS permissions, where per peer)
    await p2.agent.js.publish(admin.names.chunk("p2", 0), forged)
    await until(admin, lambda: admin.counters["rcvError"] >= 1)
    assert "p1" not in admin.peers and "p2" not in admin.peers
    assert any("forged sender refused" in m and "'p1'" in m
               for m in admin.sync_stats()["errorLog"])
    # the real p1 is still heard
    fed["p1"].learn(rows(30))
    assert await fed["p1"].agent.publish()
    await until(admin, lambda: "p1" in admin.peers)
    assert admin.peers["p1"][1].n == 30


async def test_admin_announcements_only_from_the_admin_on_admin_subjects(
    fed: dict[str, Node],
) -> None:
    p1, p2 = fed["p1"].agent, fed["p2"]
    body = orjson.dumps({"type": "schedule", "schedule": "d7", "seq": 99})
    # claiming to be the admin, on a subject p2 may publish on (its sync subject)
    await p2.agent.js.publish(p1.names.sync("p2"), _seal(p2, "admin", "control", 1, body))
    # on the admin's subject, but saying who it is
    await p2.agent.js.publish(
        p1.names.admin_ctl("schedule"), _seal(p2, "p2", "control", 2, body)
    )
    # a full sync request "from the admin" sent on p2's subject
    sync = orjson.dumps({"type": "sync"})
    await p2.agent.js.publish(p1.names.sync("p2"), _seal(p2, "admin", "control", 3, sync))
    await until(p1, lambda: p1.counters["rcvError"] >= 3)
    assert p1.config.sync_sched == "s1" and p1.config.schedule_seq == 0
    errors = p1.sync_stats()["errorLog"]
    assert any("only the admin ('admin') may send it" in m for m in errors)
    assert any("sync request claiming to be from 'admin'" in m for m in errors)
    # the admin itself is still obeyed
    await fed["admin"].agent.set_schedule("m5")
    await until(p1, lambda: p1.config.sync_sched == "m5")


async def test_a_far_future_version_is_refused(fed: dict[str, Node]) -> None:
    admin, p2 = fed["admin"].agent, fed["p2"]
    acc = Accumulator()
    acc.learn_array(rows(50), COLS)
    hour_ahead = time.time_ns() // 1000 + 3600 * 10**6
    forged = _seal(p2, "p2", "snapshot", hour_ahead, encode_snapshot(acc))
    await p2.agent.js.publish(admin.names.chunk("p2", 0), forged)
    await until(admin, lambda: admin.counters["rcvError"] >= 1)
    assert "p2" not in admin.peers
    assert "ahead of this node's clock" in admin.sync_stats()["errorLog"][-1]
    p2.learn(rows(20))
    assert await p2.agent.publish()  # p2's real, current versions are not locked out
    await until(admin, lambda: "p2" in admin.peers)
    assert admin.peers["p2"][1].n == 20


async def test_a_receiver_that_missed_versions_still_accepts_the_newest(
    fed: dict[str, Node],
) -> None:
    """Streams keep the newest snapshot per subject: a slow receiver skips versions."""
    admin, p1 = fed["admin"].agent, fed["p1"]
    r = rows(60)
    first, later = Accumulator(), Accumulator()
    first.learn_array(r[:40], COLS)
    later.learn_array(r[:42], COLS)  # 40 -> 50 -> 42 at p1: the admin saw only 40 and 42
    for version, acc in ((100, first), (300, later)):
        frame = _seal(p1, "p1", "snapshot", version, encode_snapshot(acc))
        await p1.agent.js.publish(admin.names.chunk("p1", 0), frame)
        await until(admin, lambda v=version: admin.peers.get("p1", (0,))[0] == v
                    or admin.counters["rcvContractError"].get("p1", 0) > 0)
    assert admin.peers["p1"][1].n == 42
    assert admin.counters["rcvContractError"] == {}


async def test_forget_and_learn_of_equal_counts_cannot_dodge_the_increment_floor(
    fed: dict[str, Node],
) -> None:
    p1 = fed["p1"]
    r = rows(41)
    p1.learn(r[:40])
    assert await p1.agent.publish()
    p1.acc.forget_array(r[:1], COLS)
    p1.learn(r[40:])  # n is 40 again, but the two changed rows could be solved back
    assert p1.acc.n == 40
    assert not await p1.agent.publish()
    stats = p1.agent.sync_stats()
    assert stats["sndContractError"] == 1 and stats["sndCount"] == 1
    assert "increment of 2 rows over 4 columns is under the floor of 9 rows" in (
        stats["errorLog"][-1]
    )


async def test_a_snapshot_with_a_negative_variance_is_refused_not_redelivered(
    fed: dict[str, Node],
) -> None:
    admin, p1 = fed["admin"].agent, fed["p1"]
    admin.set_contract_locally(["LINCORR(a, b) < 2"])
    hostile = Accumulator()
    hostile.learn_array(rows(50), COLS)
    hostile.total.m2[0, 0] = -5.0
    frame = _seal(p1, "p1", "snapshot", 100, encode_snapshot(hostile))
    await p1.agent.js.publish(admin.names.chunk("p1", 0), frame)
    await until(admin, lambda: admin.counters["rcvContractError"].get("p1") == 1)
    assert "p1" not in admin.peers and admin.counters["rcvError"] == 0
    assert "LINCORR(a, b) = nan" in admin.sync_stats()["errorLog"][-1]
    # the consumer goes on: p1's next, sound snapshot is merged
    p1.learn(rows(30))
    assert await p1.agent.publish()
    await until(admin, lambda: "p1" in admin.peers)
    assert admin.counters["rcvContractError"] == {"p1": 1}  # acked once, never redelivered


async def test_a_snapshot_larger_than_the_stream_is_not_sent_and_not_recorded(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    node = Node(nats_server, tmp_path, "admin", new_secret_key(), "tiny-stream")
    node.config.nats_stream_max_memory = 4096
    node.state.save_config("c1", "admin", node.config)
    node.agent = node.new_agent()
    await node.agent.start()
    try:
        cols = [f"x{i}" for i in range(30)]  # an upper triangle of 465 sums: ~4 KB and more
        node.acc.learn_array(RNG.normal(size=(200, 30)), cols)
        assert not await node.agent.publish()
        stats = node.agent.sync_stats()
        assert stats["sndError"] == 1 and stats["sndCount"] == 0
        assert "can hold" in stats["errorLog"][-1] and "4096" in stats["errorLog"][-1]
        assert node.state.sent("c1", "admin") == (None, None)
        node.acc = Accumulator()
        node.learn(rows(20))  # a small snapshot still goes
        assert await node.agent.publish()
        assert node.agent.sync_stats()["sndCount"] == 1
    finally:
        await node.agent.stop()


async def test_a_failed_chunk_publish_is_not_recorded_as_sent_and_is_retried(
    fed: dict[str, Node],
) -> None:
    p1, admin = fed["p1"], fed["admin"].agent
    await p1.agent.stop()
    p1.agent = p1.new_agent(chunk_size=256)
    await p1.agent.start()
    p1.learn(rows(30))
    js = p1.agent.js
    real, calls = js.publish, 0

    async def flaky(subject: str, payload: bytes, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise TimeoutError("no ack")
        return await real(subject, payload, **kw)

    js.publish = flaky
    assert not await p1.agent.publish()
    stats = p1.agent.sync_stats()
    assert stats["sndError"] == 1 and stats["sndCount"] == 0
    assert "publish failed" in stats["errorLog"][-1]
    assert p1.state.sent("c1", "p1") == (None, None)
    js.publish = real
    assert await p1.agent.publish()  # unchanged, yet sent: it never was
    await until(admin, lambda: "p1" in admin.peers)
    assert admin.peers["p1"][1].allclose(p1.acc, rtol=0, atol=0)


async def test_a_removed_peer_is_dropped_everywhere_ignored_then_readmitted(
    fed: dict[str, Node],
) -> None:
    parts = {"admin": rows(40), "p1": rows(60), "p2": rows(80)}
    for name, r in parts.items():
        fed[name].learn(r)
        fed[name].agent.start_pulse()
    admin, p1, p2 = (fed[n].agent for n in ("admin", "p1", "p2"))
    await until(admin, lambda: set(admin.peers) == {"p1", "p2"})
    await until(p2, lambda: set(p2.peers) == {"admin", "p1"})
    assert merged(fed["admin"]).n == 180

    await admin.remove_peer("p1")
    assert set(admin.peers) == {"p2"} and merged(fed["admin"]).n == 120
    assert "p1" not in fed["admin"].state.peer_snapshots("c1", "admin")
    await until(p2, lambda: "p1" not in p2.peers)
    assert "p1" not in fed["p2"].state.peer_snapshots("c1", "p2")
    assert merged(fed["p2"]).n == 120

    # its later snapshots are ignored, by the admin and by the other peers
    fed["p1"].learn(rows(10))
    assert await p1.publish()
    await until(admin, lambda: any("from p1: removed" in m for m in admin.sync_stats()["syncLog"]))
    await until(p2, lambda: any("from p1: removed" in m for m in p2.sync_stats()["syncLog"]))
    assert "p1" not in admin.peers and merged(fed["admin"]).n == 120
    # a restarted admin still knows
    await admin.stop()
    fed["admin"].agent = admin = fed["admin"].new_agent()
    assert "p1" not in admin.peers and admin.config.removed == ["p1"]
    await admin.start()

    # the same peer id joins again: it merges again everywhere
    await admin.readmit("p1")
    await until(p2, lambda: "p1" not in p2.config.removed)
    assert await p1.publish(force=True)
    await until(admin, lambda: "p1" in admin.peers)
    await until(p2, lambda: "p1" in p2.peers)
    assert merged(fed["admin"]).n == 190


async def test_only_the_admin_removes_peers(fed: dict[str, Node]) -> None:
    admin, p1 = fed["admin"].agent, fed["p1"].agent
    with pytest.raises(FederationError, match="not a member"):
        await admin.remove_peer("nobody")
    with pytest.raises(FederationError, match="cannot remove itself"):
        await admin.remove_peer("admin")
    # a peer forging a removal on the admin's subject is refused
    body = orjson.dumps({"type": "member", "peer": "p2", "removed": True, "seq": 1})
    await p1.js.publish(admin.names.member("p2"), _seal(fed["p1"], "p1", "control", 5, body))
    await until(fed["p2"].agent, lambda: fed["p2"].agent.counters["rcvError"] >= 1)
    assert "p2" not in admin.config.removed and fed["p2"].agent.config.removed == []
