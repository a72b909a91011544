"""Deleting a project gives its disk space back (SQLite incremental vacuum).

Without it SQLite keeps freed pages for reuse: a node whose projects were deleted kept
their size on disk for ever.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

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
