"""Disk: deleting a project gives its space back, and a small learn writes a small entry.

Without incremental vacuum SQLite keeps freed pages for reuse: a node whose projects were
deleted kept their size on disk for ever. And a learn's log entry was a whole d² snapshot
of the batch's statistics: 10,000 columns made every 1-row learn write ~400 MB.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import encode_snapshot
from fedstats.node.store import sparse
from fedstats.node.store.db import open_database
from fedstats_harness.inprocess import Node

MB = 1024 * 1024


def _size(data_dir: Path) -> int:
    """The database's bytes on disk: the file, its WAL and shared memory."""
    return sum(p.stat().st_size for p in data_dir.glob("node.db*"))


def _frame(columns: int, rows: int) -> dict[str, object]:
    return {"attributeNames": [f"a{j}" for j in range(columns)],
            "attributeTypes": ["C"] * columns,
            "data": [[str(i + j) for j in range(columns)] for i in range(rows)]}


def test_deleting_a_project_returns_its_disk_space(
        limited_node: Callable[..., Node]) -> None:
    node = limited_node()
    c, data_dir = node.client("c1"), Path(node.settings.data_dir)
    c.create_project("keep")
    c.learn("keep", _frame(3, 10))
    c.create_project("big")
    for _ in range(8):  # each learn logs its batch's statistics: ~4 MB at 1,000 columns
        c.learn("big", _frame(1_000, 2))
    grown = _size(data_dir)
    assert grown > 20 * MB
    c.delete_project("big")
    after = _size(data_dir)
    assert after < 2 * MB, (grown, after)
    assert c.project_info("keep")["rows"] == 10


def test_a_database_made_without_auto_vacuum_is_switched_once_at_open(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE filler (b BLOB)")
    old.execute("INSERT INTO filler VALUES (zeroblob(4000000))")
    old.commit()
    assert old.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    old.close()
    db = open_database(path)
    try:
        with db.read() as c:
            assert c.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
        with db.transaction() as c:
            c.execute("DROP TABLE filler")
        db.reclaim()
        assert _size(tmp_path) < MB
    finally:
        db.close()


def _log_sizes(data_dir: Path) -> list[int]:
    db = sqlite3.connect(f"file:{data_dir / 'node.db'}?mode=ro", uri=True)
    try:
        return [n for (n,) in db.execute("SELECT length(stats) FROM project_log ORDER BY seq")]
    finally:
        db.close()


def test_a_one_row_learn_logs_an_entry_linear_in_the_columns_and_replays_exactly(
        limited_node: Callable[..., Node], tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    node = limited_node(data_dir)
    c = node.client("c1")
    c.create_project("wide")
    rows = [_frame(2_000, 1) for _ in range(3)]
    for i, frame in enumerate(rows):
        frame["data"] = [[str((i + 1) * (j + 1)) for j in range(2_000)]]
        c.learn("wide", frame)
    sizes = _log_sizes(data_dir)
    dense = 2_000 * 2_001 // 2 * 8  # the co-moment triangle alone: 16 MB
    assert len(sizes) == 3 and max(sizes) < 2_000 * 100 < dense // 50, sizes
    before = c.explore("wide", "uni", {"values": [{"inputAttributeNames": ["a0", "a1999"]}]})
    again = limited_node(data_dir).client("c1")  # a restart replays the log
    after = again.explore("wide", "uni", {"values": [{"inputAttributeNames": ["a0", "a1999"]}]})
    assert after == before
    assert after["a1999"]["mean"] == pytest.approx(4_000.0)


@pytest.mark.parametrize(("rows", "columns"), [(1, 500), (2, 500), (100, 20), (0, 3)])
def test_the_sparse_form_of_a_log_entry_is_lossless(rows: int, columns: int) -> None:
    acc = Accumulator()
    acc.learn_array(np.random.default_rng(rows).normal(size=(rows, columns)),
                    [f"c{j}" for j in range(columns)])
    entry = encode_snapshot(acc)
    packed = sparse.pack(entry)
    assert sparse.unpack(packed) == entry
    assert (len(packed) < len(entry) // 10) == (rows == 1)  # only mostly-zero entries shrink
    assert sparse.unpack(b"FSTSNAP\x00 plain") == b"FSTSNAP\x00 plain"
    with pytest.raises(ValueError, match="wrong length"):
        sparse.unpack(packed[:-1] if packed.startswith(sparse.MAGIC) else sparse.MAGIC + bytes(17))
