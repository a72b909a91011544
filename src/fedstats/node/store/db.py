"""One SQLite connection in WAL mode, shared by the node's threads behind a lock.

Why one connection and a lock: every write must reach the disk before the node answers
(`synchronous=FULL`), and SQLite allows one writer at a time anyway; a lock of our own
makes the order explicit and lets a multi-statement transaction (append to a log, or
snapshot + truncate) be atomic without `database is locked` retries. Reads are short.

Migrations are a list of SQL scripts; `PRAGMA user_version` records how many have run,
so a newer node opens an older data directory by running the rest, in one transaction each.

Deleting gives the disk back: the file is in `auto_vacuum=INCREMENTAL` mode (set before
the first table exists; a file made before that is switched once, by a VACUUM at open),
so `reclaim()` after a project's delete truncates the freed pages off the file and
checkpoints the WAL into it. Without that, SQLite keeps freed pages for reuse and a node
whose projects were deleted keeps their size on disk for ever.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS: list[str] = [
    # 1: projects, their checkpoint snapshot and the log applied on top of it
    """
    CREATE TABLE projects (
        cid TEXT NOT NULL,
        pid TEXT NOT NULL,
        engine TEXT NOT NULL,
        created REAL NOT NULL,
        snapshot BLOB,
        snapshot_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (cid, pid)
    );
    CREATE TABLE project_log (
        cid TEXT NOT NULL,
        pid TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('learn', 'forget')),
        stats BLOB NOT NULL,
        PRIMARY KEY (cid, pid, seq)
    );
    CREATE TABLE models (
        cid TEXT NOT NULL,
        pid TEXT NOT NULL,
        model_id TEXT NOT NULL,
        algo TEXT NOT NULL,
        created REAL NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (cid, pid, model_id)
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cid TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        finished REAL,
        result BLOB,
        error TEXT,
        error_kind TEXT
    );
    CREATE INDEX jobs_by_customer ON jobs (cid, id);
    """,
]


class Database:
    """The node's SQLite file; `transaction()` for writes, `read()` for queries."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
        # exactly the block under `transaction()`, never an implicit one.
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._lock = threading.RLock()
        self._incremental_vacuum()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self.closed = False

    def _incremental_vacuum(self) -> None:
        """`auto_vacuum=INCREMENTAL`: free on a new file, one VACUUM on an older one."""
        (mode,) = self._conn.execute("PRAGMA auto_vacuum").fetchone()
        if mode == 2:
            return
        self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        (tables,) = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if tables:
            self._conn.execute("VACUUM")  # rewrites the file in the new mode (once)

    def reclaim(self) -> None:
        """Give the pages freed by deletes back to the file system (incremental vacuum,
        then a WAL checkpoint that writes the shrunk file and truncates the log)."""
        with self._lock:
            # executescript steps the pragma to the end (execute frees one page a step)
            self._conn.executescript("PRAGMA incremental_vacuum;")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as c:
                for statement in filter(str.strip, script.split(";")):
                    c.execute(statement)
                c.execute(f"PRAGMA user_version = {i}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error), under the node's write lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error, a deferred constraint) can leave
                # the transaction open: end it, or every later BEGIN would fail.
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def ping(self) -> bool:
        """True when the file answers a query (the readiness probe)."""
        if self.closed:
            return False
        try:
            with self.read() as c:
                c.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self._conn.close()
                self.closed = True


def open_database(path: Path) -> Database:
    """Open (creating and migrating as needed) the node's database file."""
    return Database(path)
