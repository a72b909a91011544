"""What a client sends is read on the node's worker threads, never on its event loop.

A 0.8 MB explore context once froze every request (`/healthz` included) for 38 s, and a
100,000-line contract 5 s: the parsers are wrapped here to record the thread they run on,
which must be one of the app's workers (`fedstats-work-*`), not the loop's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from fedstats.node.api import fedml, projects
from fedstats_harness.inprocess import Node
from fedstats_harness.natsproc import NatsServer


def _recording(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    threads: list[str] = []
    real = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return threads


def test_explore_contexts_are_parsed_on_a_worker_thread(
        abuse_node: Node, fresh_pid: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    c, pid = abuse_node.client("c1"), fresh_pid()
    c.create_project(pid)
    c.learn(pid, {"attributeNames": ["a", "b"], "attributeTypes": ["C", "C"],
                  "data": [["1", "2"], ["3", "5"], ["4", "4"]]})
    threads = _recording(monkeypatch, projects, "context_attributes")
    names = ["a", "b"] * 50_000  # repeated names: deduplicated to two
    uni = c.explore(pid, "uni", {"values": [{"inputAttributeNames": names}]})
    assert sorted(uni) == ["a", "b"]
    c.explore_pca(pid, {"inputAttributeNames": ["a", "b"]})
    assert len(threads) == 2 and all(t.startswith("fedstats-work") for t in threads), threads


def test_contracts_are_parsed_on_a_worker_thread(
        abuse_node: Node, nats_server: NatsServer, fresh_pid: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    c, pid = abuse_node.client("c1"), fresh_pid()
    c.fed_create(pid, {"fed_name": pid, "nats_hosts": nats_server.url})
    try:
        threads = _recording(monkeypatch, fedml, "parse_contract")
        c.validate_contract(pid, ["COUNT(a) > 1"])
        c.add_contract(pid, ["COUNT(a) > 2"])
        assert c.fed_info(pid)["contract"] == ["COUNT(a) > 2"]
        assert len(threads) == 2 and all(t.startswith("fedstats-work") for t in threads), threads
    finally:
        c.delete_project(pid)


def test_another_customer_is_served_while_hostile_bodies_are_parsed(
        abuse_node: Node, fresh_pid: Callable[[], str]) -> None:
    """The findings' bodies (a 0.8 MB explore context, a 0.9 MB learn of repeated names,
    a 100,000-line contract) sent at once from threads, while customer c2 learns, builds
    and predicts: every hostile request gets its answer (a result or a 4xx, never a 500)
    and c2 is served."""
    from concurrent.futures import ThreadPoolExecutor

    from fedstats.node.client import ApiError

    evil, pid = abuse_node.client("c1"), fresh_pid()
    evil.create_project(pid)
    evil.learn(pid, {"attributeNames": ["a", "b"], "attributeTypes": ["C", "C"],
                     "data": [["1", "2"], ["3", "5"], ["4", "4"]]})

    def explore() -> Any:
        return evil.explore(pid, "uni", {"values": [{"inputAttributeNames": ["a", "b"] * 50_000}]})

    def duplicate_names() -> Any:
        names = [f"n{i % 90_000}" for i in range(100_000)]
        return evil.learn(pid, {"attributeNames": names, "attributeTypes": ["C"] * len(names),
                                "data": [["1"] * len(names)]})

    def contract() -> Any:
        return evil.validate_contract(pid, ["COUNT(a) > 1"] * 100_000)

    def outcome(call: Callable[[], Any]) -> int:
        try:
            call()
            return 200
        except ApiError as e:
            return e.http_status

    with ThreadPoolExecutor(3) as pool:
        hostile = [pool.submit(outcome, f) for f in (explore, duplicate_names, contract)]
        good, q = abuse_node.client("c2"), fresh_pid()
        good.create_project(q)
        good.learn(q, {"attributeNames": ["x", "y"], "attributeTypes": ["C", "C"],
                       "data": [[str(i), str(3 * i - 1)] for i in range(20)]})
        good.build(q, "m", "mlr", {"inputAttributeNames": ["x"], "targetAttributeNames": ["y"]})
        answer = good.predict(q, "m", {"attributeNames": ["x"], "attributeTypes": ["C"],
                                       "data": [["2"]]})
        assert answer
        statuses = [f.result() for f in hostile]
    assert all(s == 200 or 400 <= s < 500 for s in statuses), statuses
