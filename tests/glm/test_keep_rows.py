"""keepRows projects on a served node: rows kept durably, forget as a multiset (an unknown
row refused whole, statistics unchanged), and the store back after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedstats.node.client import ApiError
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.frames import frame
from fedstats_harness.inprocess import serve


def _kept(node: object, pid: str) -> int:
    service = node.app.state.service  # type: ignore[attr-defined]
    store = service.kept.get("c1", pid)
    assert store is not None
    return int(store.count())


def test_keep_rows_learn_forget_and_restart(tmp_path: Path) -> None:
    keys = {"c1": new_secret_key()}
    gen = serve(Settings(data_dir=tmp_path), keys)
    node = next(gen)
    c = node.client()
    c.request("POST", c._rest("projects"), params={"pid": "p"},
              json={"sml_project_keep_rows": "true"})
    c.request("POST", c._rest("projects"), params={"pid": "q", "keepRows": "true"})
    c.create_project("plain")
    assert c.project_info("p")["keepRows"] is True
    assert c.project_info("q")["keepRows"] is True
    assert c.project_info("plain")["keepRows"] is False
    rows = [[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0]]
    assert c.learn("p", frame(rows)) == 4
    assert _kept(node, "p") == 4
    assert c.forget("p", frame([[1.0, 2.0]])) == 1
    assert _kept(node, "p") == 3
    with pytest.raises(ApiError) as e:  # one copy of (1, 2) left: two asked, refused whole
        c.forget("p", frame([[5.0, 6.0], [1.0, 2.0], [1.0, 2.0]]))
    assert e.value.http_status == 400
    assert "row 2" in str(e.value)
    assert _kept(node, "p") == 3
    assert c.project_info("p")["rows"] == 3
    with pytest.raises(ApiError) as e:
        c.forget("p", frame([[9.0, 9.0]]))
    assert e.value.http_status == 400 and "x0=9.0" in str(e.value)
    assert c.project_info("p")["rows"] == 3
    gen.close()
    gen = serve(Settings(data_dir=tmp_path), keys)
    node = next(gen)
    try:
        c = node.client()
        assert c.project_info("p")["keepRows"] is True
        assert c.project_info("p")["rows"] == 3
        assert _kept(node, "p") == 3
        c.delete_project("p")
        assert node.app.state.service.kept.get("c1", "p") is None
    finally:
        gen.close()
