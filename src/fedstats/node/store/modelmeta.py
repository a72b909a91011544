"""Metadata of the model store in the node's SQLite file: stores, models, parties, upstreams.

The tables are the model store's own (`ms_*`), created on first use with their own schema
version (`ms_schema`), so the node's migrations stay the node's. Every write is one
transaction of the node's `Database` (synchronous=FULL): a put is acknowledged only once
its row is committed, after its file was placed (`store.blobs`).

Files are shared by digest, so a file may go only when no row names it. `insert_model`
places the file inside the row's transaction, after the quota check, and the deletions
return the digests they left unreferenced while the node's write lock is still held by
the caller (`holding_lock`), so a put of the same bytes cannot slip in between.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import orjson

from .db import Database

SCHEMA_VERSION = 1
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS ms_schema (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ms_node (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS ms_stores (
        cid TEXT NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL,
        created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (cid, name))""",
    """CREATE TABLE IF NOT EXISTS ms_models (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        cid TEXT NOT NULL, store TEXT NOT NULL, model_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL, description TEXT NOT NULL, meta TEXT NOT NULL,
        state INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
        tenant_id TEXT NOT NULL, round INTEGER NOT NULL, hop_count INTEGER NOT NULL,
        lon REAL NOT NULL, lat REAL NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL,
        source_model_id TEXT, source_store TEXT, source_endpoint TEXT,
        FOREIGN KEY (cid, store) REFERENCES ms_stores (cid, name) ON DELETE CASCADE)""",
    "CREATE INDEX IF NOT EXISTS ms_models_by_store ON ms_models (cid, store, seq)",
    "CREATE INDEX IF NOT EXISTS ms_models_by_sha ON ms_models (sha256)",
    """CREATE TABLE IF NOT EXISTS ms_parties (
        cid TEXT NOT NULL, id TEXT NOT NULL, tenant_id TEXT NOT NULL,
        tenant_name TEXT NOT NULL, description TEXT NOT NULL, hop_count INTEGER NOT NULL,
        created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (cid, id))""",
    """CREATE TABLE IF NOT EXISTS ms_upstreams (
        cid TEXT NOT NULL, store TEXT NOT NULL, endpoint TEXT NOT NULL,
        upstream_store TEXT, apikey TEXT NOT NULL, secret TEXT NOT NULL,
        enabled INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
        PRIMARY KEY (cid, store))""",
]


@dataclass(frozen=True)
class StoreRecord:
    cid: str
    name: str
    id: str
    created: float
    updated: float


@dataclass(frozen=True)
class ModelRecord:
    cid: str
    store: str
    model_id: str
    kind: str
    description: str
    meta: dict[str, Any]
    state: int
    sha256: str
    size: int
    tenant_id: str
    round: int
    hop_count: int
    lon: float
    lat: float
    start: float
    end: float
    source_model_id: str | None = None
    source_store: str | None = None
    source_endpoint: str | None = None
    seq: int = 0


@dataclass(frozen=True)
class PartyRecord:
    cid: str
    id: str
    tenant_id: str
    tenant_name: str
    description: str
    hop_count: int
    created: float
    updated: float


@dataclass(frozen=True)
class UpstreamRecord:
    cid: str
    store: str
    endpoint: str
    upstream_store: str | None
    apikey: str
    secret: str
    enabled: bool
    created: float
    updated: float


_MODEL_COLUMNS = [f.name for f in fields(ModelRecord)]
_SELECT_MODEL = "SELECT " + ", ".join(f'"{c}"' for c in _MODEL_COLUMNS) + " FROM ms_models"


def _model(row: tuple[Any, ...]) -> ModelRecord:
    values = dict(zip(_MODEL_COLUMNS, row, strict=True))
    values["meta"] = orjson.loads(values["meta"])
    return ModelRecord(**values)


class ModelMeta:
    """The `ms_*` tables of one node's database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as c:
            for statement in _SCHEMA:
                c.execute(statement)
            row = c.execute("SELECT version FROM ms_schema").fetchone()
            if row is None:
                c.execute("INSERT INTO ms_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise RuntimeError(f"model store schema {row[0]} is newer than this node "
                                   f"reads ({SCHEMA_VERSION}): upgrade the node")
            if c.execute("SELECT 1 FROM ms_node WHERE key = 'node_id'").fetchone() is None:
                c.execute("INSERT INTO ms_node VALUES ('node_id', ?)", (str(uuid.uuid4()),))

    @contextmanager
    def holding_lock(self) -> Iterator[None]:
        """The node's write lock, held across a transaction and the file work after it."""
        with self.db.read():
            yield

    def node_id(self) -> str:
        """A UUID minted when this node first opened its model store (its default tenant)."""
        with self.db.read() as c:
            return str(c.execute("SELECT value FROM ms_node WHERE key = 'node_id'").fetchone()[0])

    # -- stores ------------------------------------------------------------------------
    def create_store(self, cid: str, name: str, now: float) -> StoreRecord | None:
        """The new store, or None when `name` exists already."""
        rec = StoreRecord(cid, name, str(uuid.uuid4()), now, now)
        try:
            with self.db.transaction() as c:
                c.execute("INSERT INTO ms_stores VALUES (?, ?, ?, ?, ?)",
                          (rec.cid, rec.name, rec.id, rec.created, rec.updated))
        except sqlite3.IntegrityError:
            return None
        return rec

    def get_store(self, cid: str, name: str) -> StoreRecord | None:
        with self.db.read() as c:
            row = c.execute("SELECT cid, name, id, created, updated FROM ms_stores "
                            "WHERE cid = ? AND name = ?", (cid, name)).fetchone()
        return StoreRecord(*row) if row else None

    def delete_store(self, cid: str, name: str) -> tuple[bool, list[str]]:
        """(whether it existed, digests no row names any more); call under `holding_lock`."""
        with self.db.transaction() as c:
            digests = [r[0] for r in c.execute(
                "SELECT DISTINCT sha256 FROM ms_models WHERE cid = ? AND store = ?",
                (cid, name))]
            gone = c.execute("DELETE FROM ms_stores WHERE cid = ? AND name = ?",
                             (cid, name)).rowcount
            c.execute("DELETE FROM ms_upstreams WHERE cid = ? AND store = ?", (cid, name))
            return bool(gone), [d for d in digests if not _referenced(c, d)]

    def usage(self, cid: str, name: str) -> tuple[int, int]:
        """(bytes, models) held by the store."""
        with self.db.read() as c:
            return _usage(c, cid, name)

    # -- models ------------------------------------------------------------------------
    def insert_model(self, rec: ModelRecord,
                     check: Callable[[int, int], None] | None = None,
                     place: Callable[[], object] | None = None) -> ModelRecord:
        """Record a model: `check(used_bytes, used_models)` (quotas; raise to refuse),
        `place()` (move its file into place), the row, commit — one transaction."""
        with self.db.transaction() as c:
            if check is not None:
                check(*_usage(c, rec.cid, rec.store))
            if place is not None:
                place()
            values = [getattr(rec, name) for name in _MODEL_COLUMNS[:-1]]
            values[_MODEL_COLUMNS.index("meta")] = orjson.dumps(rec.meta).decode()
            columns = ", ".join(f'"{n}"' for n in _MODEL_COLUMNS[:-1])
            cur = c.execute(f"INSERT INTO ms_models ({columns}) VALUES "
                            f"({', '.join('?' * len(values))})", values)
            seq = cur.lastrowid
        return ModelRecord(**{**{n: getattr(rec, n) for n in _MODEL_COLUMNS}, "seq": seq})

    def get_model(self, cid: str, store: str, model_id: str) -> ModelRecord | None:
        with self.db.read() as c:
            row = c.execute(f"{_SELECT_MODEL} WHERE cid = ? AND store = ? AND model_id = ?",
                            (cid, store, model_id)).fetchone()
        return _model(row) if row else None

    def models(self, cid: str, store: str, states: tuple[int, ...] | None = None,
               limit: int | None = None, newest_first: bool = False) -> list[ModelRecord]:
        """The store's models in the order they were stored (or newest first)."""
        sql = f"{_SELECT_MODEL} WHERE cid = ? AND store = ?"
        args: list[Any] = [cid, store]
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args += list(states)
        sql += " ORDER BY seq" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.db.read() as c:
            return [_model(r) for r in c.execute(sql, args)]

    def find_copy(self, cid: str, store: str, state: int, source_model_id: str,
                  sha256: str) -> ModelRecord | None:
        """A model already copied here from the same source with the same bytes."""
        with self.db.read() as c:
            row = c.execute(f"{_SELECT_MODEL} WHERE cid = ? AND store = ? AND state = ? "
                            "AND source_model_id = ? AND sha256 = ? ORDER BY seq LIMIT 1",
                            (cid, store, state, source_model_id, sha256)).fetchone()
        return _model(row) if row else None

    def delete_models(self, cid: str, store: str, model_id: str | None = None
                      ) -> tuple[int, list[str]]:
        """Delete one model (or all of the store's); (count, digests left unreferenced).
        Call under `holding_lock` and remove those files before releasing it."""
        where, args = "cid = ? AND store = ?", [cid, store]
        if model_id is not None:
            where += " AND model_id = ?"
            args.append(model_id)
        with self.db.transaction() as c:
            digests = [r[0] for r in c.execute(
                f"SELECT DISTINCT sha256 FROM ms_models WHERE {where}", args)]
            count = c.execute(f"DELETE FROM ms_models WHERE {where}", args).rowcount
            return count, [d for d in digests if not _referenced(c, d)]

    def referenced_digests(self) -> set[str]:
        with self.db.read() as c:
            return {r[0] for r in c.execute("SELECT DISTINCT sha256 FROM ms_models")}

    # -- parties -----------------------------------------------------------------------
    def add_party(self, rec: PartyRecord) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT INTO ms_parties VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (rec.cid, rec.id, rec.tenant_id, rec.tenant_name, rec.description,
                       rec.hop_count, rec.created, rec.updated))

    def parties(self, cid: str) -> list[PartyRecord]:
        with self.db.read() as c:
            rows = c.execute("SELECT cid, id, tenant_id, tenant_name, description, hop_count, "
                             "created, updated FROM ms_parties WHERE cid = ? ORDER BY created",
                             (cid,)).fetchall()
        return [PartyRecord(*r) for r in rows]

    def delete_party(self, cid: str, party_id: str) -> int:
        with self.db.transaction() as c:
            return int(c.execute("DELETE FROM ms_parties WHERE cid = ? AND id = ?",
                                 (cid, party_id)).rowcount)

    # -- upstreams set by an admin -----------------------------------------------------
    def set_upstream(self, rec: UpstreamRecord) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT INTO ms_upstreams VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (cid, store) DO UPDATE SET endpoint = excluded.endpoint, "
                      "upstream_store = excluded.upstream_store, apikey = excluded.apikey, "
                      "secret = excluded.secret, enabled = excluded.enabled, "
                      "updated = excluded.updated",
                      (rec.cid, rec.store, rec.endpoint, rec.upstream_store, rec.apikey,
                       rec.secret, int(rec.enabled), rec.created, rec.updated))

    def get_upstream(self, cid: str, store: str) -> UpstreamRecord | None:
        with self.db.read() as c:
            row = c.execute("SELECT cid, store, endpoint, upstream_store, apikey, secret, "
                            "enabled, created, updated FROM ms_upstreams "
                            "WHERE cid = ? AND store = ?", (cid, store)).fetchone()
        if row is None:
            return None
        values = list(row)
        values[6] = bool(values[6])
        return UpstreamRecord(*values)

    def delete_upstream(self, cid: str, store: str) -> int:
        with self.db.transaction() as c:
            return int(c.execute("DELETE FROM ms_upstreams WHERE cid = ? AND store = ?",
                                 (cid, store)).rowcount)


def _usage(c: sqlite3.Connection, cid: str, store: str) -> tuple[int, int]:
    size, count = c.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM ms_models "
                            "WHERE cid = ? AND store = ?", (cid, store)).fetchone()
    return int(size), int(count)


def _referenced(c: sqlite3.Connection, sha256: str) -> bool:
    return c.execute("SELECT 1 FROM ms_models WHERE sha256 = ? LIMIT 1",
                     (sha256,)).fetchone() is not None
