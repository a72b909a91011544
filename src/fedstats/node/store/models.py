"""Built models on disk, as the JSON their `Model.to_dict()` gives (reloaded by `load_model`)."""

from __future__ import annotations

import time

from .db import Database


class ModelStore:
    """CRUD over the `models` table; a model id is unique within its project."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, cid: str, pid: str, model_id: str, algo: str, body: bytes) -> None:
        """Insert or replace (building a model id again overwrites it, as the spec does)."""
        with self.db.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO models (cid, pid, model_id, algo, created, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (cid, pid, model_id, algo, time.time(), body),
            )

    def delete(self, cid: str, pid: str, model_id: str) -> bool:
        with self.db.transaction() as c:
            cur = c.execute(
                "DELETE FROM models WHERE cid = ? AND pid = ? AND model_id = ?",
                (cid, pid, model_id),
            )
            return cur.rowcount == 1

    def all(self) -> list[tuple[str, str, str, bytes]]:
        """(cid, pid, model_id, body) of every model, for loading at start."""
        with self.db.read() as c:
            return c.execute(
                "SELECT cid, pid, model_id, body FROM models ORDER BY cid, pid, model_id"
            ).fetchall()
