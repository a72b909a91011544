"""A node killed with SIGKILL keeps every acknowledged learn, once, and its models; jobs it
was running read as failed. The node runs as a separate `fedstats node` process here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from fedstats.node.client import ApiError, Client
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats.node.store import JobStore, open_database
from fedstats_harness.natsproc import free_port

from .conftest import frame

ROWS = 10  # per batch



class NodeProcess:
    def __init__(self, data_dir: Path, customers: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedstats.cli", "node", "--port", str(self.port),
             "--data-dir", str(data_dir), "--customers", str(customers),
             "--checkpoint-every", "7", "--log-level", "info"],
            stderr=subprocess.PIPE, text=True)
        # uvicorn says when it is up: wait for that line, not for a timer
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"node exited with {self.proc.wait()}")
        self.drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
        self.drain.start()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    key = new_secret_key()
    customers = tmp_path / "customers.json"
    customers.write_bytes(orjson.dumps({"c1": key}))
    procs: list[NodeProcess] = []
    clients: list[Client] = []

    def start() -> tuple[NodeProcess, Client]:
        p = NodeProcess(tmp_path / "data", customers)
        procs.append(p)
        clients.append(Client(p.url, "c1", key, timeout=10))
        return p, clients[-1]

    yield start
    for c in clients:
        c.close()
    for p in procs:
        if p.proc.poll() is None:
            p.kill()
        p.drain.join(10)
        assert p.proc.stderr is not None
        p.proc.stderr.close()


def _batch(i: int) -> np.ndarray:
    """Batch i: rows whose values identify it, so a lost or doubled batch shows in the sums."""
    base = np.arange(ROWS, dtype=float)[:, None]
    return np.hstack([base + 1000.0 * i, (base + 1.0) * (i + 1)])


def test_sigkill_during_acknowledged_learns_loses_and_doubles_nothing(spawn, tmp_path) -> None:  # type: ignore[no-untyped-def]
    node, client = spawn()
    client.create_project("p")
    acked: list[int] = []
    enough = threading.Event()

    def stream() -> None:
        for i in range(10_000):
            try:
                client.learn("p", frame(_batch(i), ["a", "b"]))
            except (ConnectionError, ApiError):
                return
            acked.append(i)
            if len(acked) == 40:
                enough.set()

    t = threading.Thread(target=stream)
    t.start()
    assert enough.wait(120)
    node.kill()  # while the stream is still sending
    t.join(30)

    _, client2 = spawn()
    uni = client2.explore("p", "uni", {})["values"]["KSVDMap"]
    n = client2.project_info("p")["values"]["smlInfo"]["rows"]
    k = len(acked)
    # the batch in flight at the kill may have been committed without its answer arriving
    assert n in (k * ROWS, (k + 1) * ROWS)
    batches = range(n // ROWS)
    assert list(acked) == list(range(k))
    expected = np.vstack([_batch(i) for i in batches])
    for j, col in enumerate(["a", "b"]):
        assert uni[col]["count"] == n
        assert uni[col]["mean"] * n == pytest.approx(expected[:, j].sum(), rel=1e-12)


def test_a_restarted_node_has_its_projects_and_models_and_fails_cut_off_jobs(spawn) -> None:  # type: ignore[no-untyped-def]
    node, client = spawn()
    client.create_project("q")
    x = np.random.default_rng(5).normal(size=(20, 2))
    client.learn("q", frame(np.column_stack([x, x @ [1.0, 2.0]]), ["u", "v", "w"]))
    client.build("q", "m", "mlr", {"targetAttributeNames": ["w"]})
    before = client.predict("q", "m", frame([[1.0, 2.0]], ["u", "v"]))["values"]
    node.kill()
    # a job the node was running when it died
    db = open_database(Settings(data_dir=Path(node.proc.args[7])).db_path)
    cut_off = JobStore(db).create("c1", "build")
    db.close()

    _, client2 = spawn()
    assert client2.list_projects()["values"]["stringList"] == ["q"]
    assert client2.models("q")["values"]["stringList"] == ["m"]
    assert client2.predict("q", "m", frame([[1.0, 2.0]], ["u", "v"]))["values"] == before
    with pytest.raises(ApiError) as e:
        client2.job(cut_off)
    assert e.value.http_status == 500
    assert e.value.values["jobinfo"]["status"] == "failed"
    assert "stopped" in e.value.message
