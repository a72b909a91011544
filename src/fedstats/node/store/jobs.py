"""Jobs on disk, so `GET /jobs/{id}` answers across restarts.

A job is `running` until it ends `done` (with a JSON result) or `failed` (with a message
and the kind of error: `client` for a mistake in the request, `internal` otherwise). A
job found `running` when the node starts was cut off by a crash: it is marked failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from .db import Database

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass(frozen=True)
class JobRecord:
    id: int
    cid: str
    kind: str
    status: str
    created: float
    finished: float | None
    result: Any
    error: str | None
    error_kind: str | None

    def info(self) -> dict[str, Any]:
        """The `jobinfo` entity."""
        out: dict[str, Any] = {
            "id": str(self.id),
            "kind": self.kind,
            "status": self.status,
            "created": self.created,
            "finished": self.finished,
        }
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
            out["errorKind"] = self.error_kind
        return out


_COLUMNS = "id, cid, kind, status, created, finished, result, error, error_kind"


def _record(row: tuple[Any, ...]) -> JobRecord:
    values = list(row)
    values[6] = orjson.loads(values[6]) if values[6] is not None else None
    return JobRecord(*values)


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, cid: str, kind: str) -> int:
        with self.db.transaction() as c:
            cur = c.execute(
                "INSERT INTO jobs (cid, kind, status, created) VALUES (?, ?, ?, ?)",
                (cid, kind, RUNNING, time.time()),
            )
            return int(cur.lastrowid or 0)

    def finish(self, job_id: int, result: Any) -> None:
        body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        with self.db.transaction() as c:
            c.execute(
                "UPDATE jobs SET status = ?, finished = ?, result = ? WHERE id = ?",
                (DONE, time.time(), body, job_id),
            )

    def fail(self, job_id: int, error: str, error_kind: str) -> None:
        with self.db.transaction() as c:
            c.execute(
                "UPDATE jobs SET status = ?, finished = ?, error = ?, error_kind = ? WHERE id = ?",
                (FAILED, time.time(), error, error_kind, job_id),
            )

    def get(self, cid: str, job_id: int) -> JobRecord | None:
        with self.db.read() as c:
            row = c.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE cid = ? AND id = ?", (cid, job_id)
            ).fetchone()
        return _record(row) if row else None

    def list(self, cid: str, limit: int = 1000) -> list[JobRecord]:
        with self.db.read() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE cid = ? ORDER BY id DESC LIMIT ?",
                (cid, limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def fail_interrupted(self) -> int:
        """Mark every job still `running` as failed: the node stopped while it ran."""
        with self.db.transaction() as c:
            cur = c.execute(
                "UPDATE jobs SET status = ?, finished = ?, error = ?, error_kind = ?"
                " WHERE status = ?",
                (FAILED, time.time(), "the node stopped while this job ran", "internal", RUNNING),
            )
            return cur.rowcount
