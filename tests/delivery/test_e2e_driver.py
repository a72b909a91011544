"""e2e/drive.py, the kind flow's driver, run here against local node processes and NATS.

In the cluster each node has its own customers Secret; here too each node gets its own
customer id and key, so the driver's handling of per-node credentials is what runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from fedstats.node.client import Client
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.localnet import NodeProcess
from fedstats_harness.natsproc import NatsServer

from .chart import REPO

pytestmark = pytest.mark.slow


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("e2e_drive", REPO / "e2e" / "drive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[NatsServer, dict[str, tuple[NodeProcess, str]]]]:
    server = NatsServer(tmp_path / "nats").start()
    made: dict[str, tuple[NodeProcess, str]] = {}
    try:
        for name in ("demo-admin", "hospital-a-peer", "hospital-b-peer"):
            key = new_secret_key()
            made[name] = (NodeProcess(name, tmp_path, {"operator": key}).start(), key)
        yield server, made
    finally:
        for node, _ in made.values():
            node.stop()
        server.stop()


def test_the_driver_gets_the_pooled_model_from_a_federation(
        nodes: tuple[NatsServer, dict[str, tuple[NodeProcess, str]]]) -> None:
    server, made = nodes
    clients = {name: Client(node.url, "operator", key) for name, (node, key) in made.items()}
    try:
        result = _driver().drive(clients, "demo-admin", fed_name="e2e", nats_url=server.url,
                                 admin_rest_host=made["demo-admin"][0].url)
    finally:
        for c in clients.values():
            c.close()
    assert result["rows"] == 442
    assert result["worst_relative_error"] < 1e-9
