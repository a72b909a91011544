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
