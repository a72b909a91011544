"""Statistics that could never be stored or reloaded are refused before they reach the log;
a project whose stored statistics do not load is quarantined, and the node serves the rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from fedstats.node.client import ApiError
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.frames import frame
from fedstats_harness.inprocess import serve


def _keys() -> dict[str, str]:
    return {"c1": new_secret_key(), "c2": new_secret_key()}


def test_overflowing_learns_are_refused_and_the_node_restarts(tmp_path: Path) -> None:
    keys = _keys()
    settings = Settings(data_dir=tmp_path, checkpoint_every=2)
    gen = serve(settings, keys)
    node = next(gen)
    c = node.client()
    c.create_project("p")
    c.learn("p", frame([[1.0], [2.0], [4.0]]))
    # finite values whose moments overflow (m4 of 1e80 is 1e320)
    with pytest.raises(ApiError) as e:
        c.learn("p", frame([["1e80"], ["-1e80"]]))
    assert e.value.http_status == 400 and "not finite" in e.value.message
    # each batch alone is fine; merged, the squared mean difference overflows
    c.create_project("q")
    c.learn("q", frame([["1e200"]]))
    with pytest.raises(ApiError) as e:
        c.learn("q", frame([["-1e200"]]))
    assert e.value.http_status == 400 and "not finite" in e.value.message
    stats = c.explore("p", "uni", {})
    assert stats["x0"]["count"] == 3
    c.learn("p", frame([[3.0]]))  # a checkpoint (every 2) after the refused learns
    gen.close()

    node = next(gen := serve(Settings(data_dir=tmp_path, checkpoint_every=2), keys))
    try:
        c = node.client()
        assert c.project_info("p")["rows"] == 4
        assert c.project_info("q")["rows"] == 1
        assert c.explore("p", "uni", {})["x0"]["count"] == 4
    finally:
        gen.close()


def test_a_project_that_does_not_load_is_quarantined_and_the_others_served(
        tmp_path: Path) -> None:
    keys = _keys()
    gen = serve(Settings(data_dir=tmp_path), keys)
    node = next(gen)
    c = node.client()
    for p in ("good", "bad"):
        c.create_project(p)
        c.learn(p, frame([[1.0, 2.0], [3.0, 5.0]]))
    gen.close()
    with sqlite3.connect(tmp_path / "node.db") as db:  # bit rot in one project's log
        db.execute("UPDATE project_log SET stats = ? WHERE pid = 'bad'", (b"\x00garbage",))

    node = next(gen := serve(Settings(data_dir=tmp_path), keys))
    try:
        c = node.client()
        assert c.project_info("good")["rows"] == 2
        c.learn("good", frame([[0.0, 1.0]]))
        ready = httpx.get(node.url + "/readyz").json()["values"]
        assert [(u["customer"], u["project"]) for u in ready["unavailableProjects"]] == [
            ("c1", "bad")]
        with pytest.raises(ApiError) as e:
            c.project_info("bad")
        assert e.value.http_status == 503 and "unavailable" in e.value.message
        c.delete_project("bad")  # the way out: delete it (then it can be created anew)
        assert httpx.get(node.url + "/readyz").json()["values"]["unavailableProjects"] == []
        c.create_project("bad")
    finally:
        gen.close()
