"""The row stores' catalog: two tables in a SQLite file (the node's, or one of their own).

    row_stores    one row per store: its name and schema (NULL until the first append)
    row_segments  the store's segments in append order: a file name or an inline IPC body,
                  the rows it holds, how many are live, and its deletion vector (packed
                  bits, NULL when nothing is deleted)

A segment exists when its row is committed: the commit that inserts it is the append's
acknowledgement, and the commit that sets a deletion vector is the forget's. Files that
no row names are garbage. The tables are created if missing (`ensure`), so the catalog
can live in the node's database beside its migrated tables or in a file of its own.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from fedstats.node.store.db import Database

from .schema import RowSchema

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS row_stores (
        name TEXT PRIMARY KEY,
        schema TEXT,
        created REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS row_segments (
        store TEXT NOT NULL,
        seg INTEGER NOT NULL,
        file TEXT,
        body BLOB,
        rows INTEGER NOT NULL,
        live INTEGER NOT NULL,
        deleted BLOB,
        PRIMARY KEY (store, seg),
        CHECK ((file IS NULL) != (body IS NULL))
    )
    """,
]


@dataclass(frozen=True)
class Segment:
    seg: int
    file: str | None
    body: bytes | None  # only when asked for (inline segments)
    rows: int
    live: int
    deleted: bytes | None


def ensure(db: Database, name: str) -> RowSchema | None:
    """Create the tables and the store's row if missing; answers the store's schema."""
    with db.transaction() as c:
        for statement in TABLES:
            c.execute(statement)
        c.execute(
            "INSERT OR IGNORE INTO row_stores (name, schema, created) VALUES (?, NULL, ?)",
            (name, time.time()),
        )
        return schema_of(c, name)


def names(db: Database, prefix: str = "") -> list[str]:
    """The stores the catalog holds whose name starts with `prefix`, sorted."""
    with db.read() as c:
        try:
            rows = c.execute(
                "SELECT name FROM row_stores WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix),
            ).fetchall()
        except sqlite3.OperationalError:  # no store was ever opened on this database
            return []
    return [r[0] for r in rows]


def schema_of(c: sqlite3.Connection, name: str) -> RowSchema | None:
    row = c.execute("SELECT schema FROM row_stores WHERE name = ?", (name,)).fetchone()
    return None if row is None or row[0] is None else RowSchema.from_json(row[0])


def set_schema(c: sqlite3.Connection, name: str, schema: RowSchema) -> None:
    c.execute("UPDATE row_stores SET schema = ? WHERE name = ?", (schema.to_json(), name))


def segments(c: sqlite3.Connection, name: str, *, bodies: bool) -> list[Segment]:
    body = "body" if bodies else "NULL"
    rows = c.execute(
        f"SELECT seg, file, {body}, rows, live, deleted FROM row_segments "
        "WHERE store = ? ORDER BY seg",
        (name,),
    ).fetchall()
    return [Segment(*r) for r in rows]


def next_seg(c: sqlite3.Connection, name: str) -> int:
    (top,) = c.execute("SELECT MAX(seg) FROM row_segments WHERE store = ?", (name,)).fetchone()
    return 1 if top is None else int(top) + 1


def insert(
    c: sqlite3.Connection, name: str, seg: int, *, file: str | None, body: bytes | None, rows: int
) -> None:
    c.execute(
        "INSERT INTO row_segments (store, seg, file, body, rows, live, deleted) "
        "VALUES (?, ?, ?, ?, ?, ?, NULL)",
        (name, seg, file, body, rows, rows),
    )


def set_deleted(c: sqlite3.Connection, name: str, seg: int, live: int, deleted: bytes) -> None:
    c.execute(
        "UPDATE row_segments SET live = ?, deleted = ? WHERE store = ? AND seg = ?",
        (live, deleted, name, seg),
    )


def replace_file(c: sqlite3.Connection, name: str, seg: int, file: str, rows: int) -> None:
    """The segment now lives in `file`, all of whose rows are live (after a compaction)."""
    c.execute(
        "UPDATE row_segments SET file = ?, body = NULL, rows = ?, live = ?, deleted = NULL "
        "WHERE store = ? AND seg = ?",
        (file, rows, rows, name, seg),
    )


def remove(c: sqlite3.Connection, name: str, seg: int) -> None:
    c.execute("DELETE FROM row_segments WHERE store = ? AND seg = ?", (name, seg))


def inline_size(c: sqlite3.Connection, name: str) -> tuple[int, int]:
    """(inline segments, their bytes) of the store."""
    n, size = c.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM row_segments "
        "WHERE store = ? AND body IS NOT NULL",
        (name,),
    ).fetchone()
    return int(n), int(size)


def counts(c: sqlite3.Connection, name: str) -> int:
    (live,) = c.execute(
        "SELECT COALESCE(SUM(live), 0) FROM row_segments WHERE store = ?", (name,)
    ).fetchone()
    return int(live)


def drop(c: sqlite3.Connection, name: str) -> None:
    c.execute("DELETE FROM row_segments WHERE store = ?", (name,))
    c.execute("DELETE FROM row_stores WHERE name = ?", (name,))
