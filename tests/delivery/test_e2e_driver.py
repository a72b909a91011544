"""e2e/drive.py, the kind flow's driver, run here against local node processes and NATS.

In the cluster each node has its own customers Secret; here too each node gets its own
customer id and key, so the driver's handling of per-node credentials is what runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedstats.node.client import Client
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.e2e import driver
from fedstats_harness.localnet import NodeProcess
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.process import stop_all

pytestmark = pytest.mark.slow


@pytest.fixture
def nodes(nats_server: NatsServer, tmp_path: Path,
          ) -> Iterator[tuple[NatsServer, dict[str, tuple[NodeProcess, str]]]]:  # fmt: skip
    """Three nodes, each with a customer key of its own (as each has its own Secret)."""
    keys = {name: new_secret_key() for name in ("demo-admin", "hospital-a-peer", "hospital-b-peer")}
    made = {name: (NodeProcess(name, tmp_path, {"operator": key}), key)
            for name, key in keys.items()}  # fmt: skip
    try:
        for node, _ in made.values():
            node.spawn()
        for node, _ in made.values():
            node.wait_ready()
        yield nats_server, made
    finally:
        stop_all(node.child for node, _ in made.values())


def test_the_driver_gets_the_pooled_model_from_a_federation(
        nodes: tuple[NatsServer, dict[str, tuple[NodeProcess, str]]]) -> None:
    server, made = nodes
    clients = {name: Client(node.url, "operator", key) for name, (node, key) in made.items()}
    try:
        result = driver().drive(clients, "demo-admin", fed_name="e2e", nats_url=server.url,
                                 admin_rest_host=made["demo-admin"][0].url)
    finally:
        for c in clients.values():
            c.close()
    assert result["rows"] == 442
    assert result["worst_relative_error"] < 1e-9
