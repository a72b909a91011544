"""Projects and their statistics on disk: a checkpoint snapshot plus a log of batches.

A learn (or forget) is durable once its batch's statistics — an encoded snapshot of an
accumulator of that batch alone, never the rows — are appended to the project's log in
one committed transaction. Every `checkpoint_every` entries the caller writes the whole
accumulator as the snapshot and the log up to it is dropped, in one transaction: a crash
between any two statements leaves either the old snapshot + whole log, or the new
snapshot + the entries after it, and replaying gives the same accumulator both ways.

Log entries are stored in `sparse` form when that is much smaller: the statistics of a
batch of a few rows are mostly exact zeros, and a 1-row learn over many columns would
otherwise write a whole d² snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import sparse
from .db import Database


@dataclass(frozen=True)
class ProjectRecord:
    cid: str
    pid: str
    engine: str
    created: float
    snapshot: bytes | None
    snapshot_seq: int


@dataclass(frozen=True)
class LogEntry:
    seq: int
    kind: str  # "learn" | "forget"
    stats: bytes


class ProjectStore:
    """CRUD over the `projects` and `project_log` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, cid: str, pid: str, engine: str) -> bool:
        """Insert a project; False when (cid, pid) exists already."""
        with self.db.transaction() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO projects (cid, pid, engine, created) VALUES (?, ?, ?, ?)",
                (cid, pid, engine, time.time()),
            )
            return cur.rowcount == 1

    def delete(self, cid: str, pid: str) -> bool:
        """Remove a project with its log and models, and give their disk space back;
        False when it did not exist."""
        with self.db.transaction() as c:
            cur = c.execute("DELETE FROM projects WHERE cid = ? AND pid = ?", (cid, pid))
            c.execute("DELETE FROM project_log WHERE cid = ? AND pid = ?", (cid, pid))
            c.execute("DELETE FROM models WHERE cid = ? AND pid = ?", (cid, pid))
            deleted = cur.rowcount == 1
        self.db.reclaim()
        return deleted

    def all(self) -> list[ProjectRecord]:
        with self.db.read() as c:
            rows = c.execute(
                "SELECT cid, pid, engine, created, snapshot, snapshot_seq FROM projects"
                " ORDER BY cid, pid"
            ).fetchall()
        return [ProjectRecord(*r) for r in rows]

    def log(self, cid: str, pid: str, after: int) -> list[LogEntry]:
        """The entries after sequence number `after`, in order."""
        with self.db.read() as c:
            rows = c.execute(
                "SELECT seq, kind, stats FROM project_log WHERE cid = ? AND pid = ? AND seq > ?"
                " ORDER BY seq",
                (cid, pid, after),
            ).fetchall()
        return [LogEntry(seq, kind, sparse.unpack(stats)) for seq, kind, stats in rows]

    def append(self, cid: str, pid: str, seq: int, kind: str, stats: bytes) -> None:
        """Make one batch's statistics durable (committed with synchronous=FULL)."""
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO project_log (cid, pid, seq, kind, stats) VALUES (?, ?, ?, ?, ?)",
                (cid, pid, seq, kind, sparse.pack(stats)),
            )

    def checkpoint(self, cid: str, pid: str, seq: int, snapshot: bytes) -> None:
        """Store the accumulator as of entry `seq` and drop the entries it includes."""
        with self.db.transaction() as c:
            c.execute(
                "UPDATE projects SET snapshot = ?, snapshot_seq = ? WHERE cid = ? AND pid = ?",
                (snapshot, seq, cid, pid),
            )
            c.execute(
                "DELETE FROM project_log WHERE cid = ? AND pid = ? AND seq <= ?", (cid, pid, seq)
            )
