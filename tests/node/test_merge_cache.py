"""The service keeps the merge of its own and its peers' statistics until a part changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.frame import Batch
from fedstats.node.service import ProjectService
from fedstats.node.settings import Settings
from fedstats.node.store import Database


def test_the_merge_is_reused_until_a_learn_or_a_new_peer_snapshot(tmp_path: Path) -> None:
    service = ProjectService(Database(tmp_path / "node.db"), Settings(data_dir=tmp_path))
    rng = np.random.default_rng(2)
    peer = Accumulator()
    peer.learn_array(rng.normal(size=(20, 2)), ["a", "b"])
    snapshots = [peer]
    service.register_peer_source(lambda cid, pid: list(snapshots))
    service.create_project("c1", "p")
    service.learn("c1", "p", Batch.from_array(rng.normal(size=(10, 2)), ["a", "b"]))

    first = service._view("c1", "p")
    assert first.n == 30
    assert service._view("c1", "p") is first  # nothing changed: no second merge
    service.learn("c1", "p", Batch.from_array(rng.normal(size=(5, 2)), ["a", "b"]))
    assert service._view("c1", "p").n == 35
    newer = peer.copy()
    newer.learn_array(rng.normal(size=(7, 2)), ["a", "b"])
    snapshots[0] = newer  # a peer's newer snapshot arrives as a new object
    assert service._view("c1", "p").n == 42
    assert service.project_info("c1", "p")["rows"] == 42
