"""A node killed with SIGKILL keeps every acknowledged learn, once, and its models; jobs it
was running read as failed. The node runs as a separate `fedstats node` process here."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.client import ApiError
from fedstats.node.settings import Settings
from fedstats.node.store import JobStore, open_database
from fedstats_harness.frames import frame
from fedstats_harness.localnet import kill_mid_stream

ROWS = 10  # per batch


def _batch(i: int) -> np.ndarray:
    """Batch i: rows whose values identify it, so a lost or doubled batch shows in the sums."""
    base = np.arange(ROWS, dtype=float)[:, None]
    return np.hstack([base + 1000.0 * i, (base + 1.0) * (i + 1)])


def test_sigkill_during_acknowledged_learns_loses_and_doubles_nothing(spawn, tmp_path) -> None:  # type: ignore[no-untyped-def]
    node, client = spawn()
    client.create_project("p")
    acked = kill_mid_stream(node, client, "p", lambda i: frame(_batch(i), ["a", "b"]))

    _, client2 = spawn()
    uni = client2.explore("p", "uni", {})
    n = client2.project_info("p")["rows"]
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
    db = open_database(Settings(data_dir=node.data_dir).db_path)
    cut_off = JobStore(db).create("c1", "build")
    db.close()

    _, client2 = spawn()
    assert client2.list_projects() == ["q"]
    assert client2.models("q") == ["m"]
    assert client2.predict("q", "m", frame([[1.0, 2.0]], ["u", "v"]))["values"] == before
    with pytest.raises(ApiError) as e:
        client2.job(cut_off)
    assert e.value.http_status == 500
    assert e.value.values["jobinfo"]["status"] == "failed"
    assert "stopped" in e.value.message
