"""What a node remembers about its federations, in its own SQLite file (`federation.sqlite`).

Per federated project (customer id, project id): the federation's configuration (the
secret key included: the node needs it to read peers' snapshots), whether it is pulsing,
the last version it published and the bytes of that snapshot (the increment floor is
measured against it), the newest snapshot received from each peer, the counters of
`syncStats` and bounded error and sync logs. All of it survives a restart: a node that
comes back resumes its pulse and merges the peers' last snapshots before it hears from
them again. A connection per operation, WAL: calls come from the event loop and from
the thread pool alike.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .subjects import DEFAULT_PEER_PENDING, DEFAULT_STREAM_MAX_MEMORY

LOG_KEEP = 500  # entries per log and project: enough to debug, bounded for a long-lived node

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fed_projects (
    cid TEXT NOT NULL, pid TEXT NOT NULL, config BLOB NOT NULL,
    pulsing INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
    sent BLOB, sent_digest TEXT, counters BLOB,
    PRIMARY KEY (cid, pid));
CREATE TABLE IF NOT EXISTS fed_peer_snapshots (
    cid TEXT NOT NULL, pid TEXT NOT NULL, peer TEXT NOT NULL, version INTEGER NOT NULL,
    data BLOB NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (cid, pid, peer));
CREATE TABLE IF NOT EXISTS fed_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, cid TEXT NOT NULL, pid TEXT NOT NULL,
    kind TEXT NOT NULL, at REAL NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS fed_logs_by_project ON fed_logs (cid, pid, kind, id);
"""


@dataclass
class FedConfig:
    """A federated project's settings, as created (admin) or joined (peer)."""

    fed_name: str
    fed_secret_key: str
    role: str  # "admin" or "peer"
    peer_id: str
    admin_peer: str = "admin"
    topology: str = "decentralized"
    merges: bool = True  # reads and merges peers' snapshots (hybrid: per peer)
    sync_sched: str = "m30"
    schedule_seq: int = 0
    contract: list[str] = field(default_factory=list)
    contract_seq: int = 0
    fed_local_type: str = "cpu"
    nats_hosts: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    nats_req_timeout: float = 30.0
    nats_stream_max_memory: int = DEFAULT_STREAM_MAX_MEMORY
    # bytes of unfinished chunked messages held per sending peer (see wire.Reassembler)
    reassembly_max_bytes: int = DEFAULT_PEER_PENDING
    nats_sec_user: str | None = None
    nats_sec_passwd: str | None = None
    nats_sec_token: str | None = None
    nats_sec_nkey_seed: str | None = None
    allow_peers_explore: bool = False
    fed_rest_host: str | None = None
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)  # admin: who joined
    # admin: peer id -> digest of the newest invitation's token (older ones are revoked)
    invites: dict[str, str] = field(default_factory=dict)
    # admin: peer id -> digest of the token that admitted it (only it may abandon the join)
    joined_with: dict[str, str] = field(default_factory=dict)
    # peers the admin removed: their snapshots are dropped and later ones ignored
    removed: list[str] = field(default_factory=list)
    # peer id -> sequence of the newest membership announcement applied (never rolled back)
    member_seqs: dict[str, int] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> FedConfig:
        data = orjson.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def empty_counters() -> dict[str, Any]:
    return {
        "sndCount": 0,
        "sndContractError": 0,
        "sndError": 0,  # snapshots that could not be published (too large, publish failed)
        "rcvCount": 0,
        "rcvError": 0,
        "rcvContractError": {},
    }


class FedState:
    """The federation's SQLite file in a node's data directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0)
        try:
            with db:  # one transaction, committed on success
                yield db
        finally:
            db.close()

    # ------------------------------------------------------------ projects
    def save_config(self, cid: str, pid: str, config: FedConfig) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO fed_projects (cid, pid, config) VALUES (?, ?, ?) "
                "ON CONFLICT (cid, pid) DO UPDATE SET config = excluded.config",
                (cid, pid, config.to_json()),
            )

    def config(self, cid: str, pid: str) -> FedConfig | None:
        with self._db() as db:
            row = db.execute(
                "SELECT config FROM fed_projects WHERE cid = ? AND pid = ?", (cid, pid)
            ).fetchone()
        return FedConfig.from_json(row[0]) if row else None

    def projects(self) -> list[tuple[str, str]]:
        with self._db() as db:
            return [tuple(r) for r in db.execute("SELECT cid, pid FROM fed_projects")]

    def delete(self, cid: str, pid: str) -> None:
        with self._db() as db:
            for table in ("fed_projects", "fed_peer_snapshots", "fed_logs"):
                db.execute(f"DELETE FROM {table} WHERE cid = ? AND pid = ?", (cid, pid))

    def set_pulsing(self, cid: str, pid: str, pulsing: bool) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE fed_projects SET pulsing = ? WHERE cid = ? AND pid = ?",
                (int(pulsing), cid, pid),
            )

    def pulsing(self, cid: str, pid: str) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT pulsing FROM fed_projects WHERE cid = ? AND pid = ?", (cid, pid)
            ).fetchone()
        return bool(row and row[0])

    def next_version(self, cid: str, pid: str) -> int:
        """A version above every one published before, even if this file were lost:
        microseconds since the epoch, or the last version + 1 when the clock is behind."""
        with self._db() as db:
            (seq,) = db.execute(
                "SELECT seq FROM fed_projects WHERE cid = ? AND pid = ?", (cid, pid)
            ).fetchone()
            version = max(int(seq) + 1, time.time_ns() // 1000)
            db.execute(
                "UPDATE fed_projects SET seq = ? WHERE cid = ? AND pid = ?", (version, cid, pid)
            )
        return version

    def save_sent(self, cid: str, pid: str, data: bytes, digest: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE fed_projects SET sent = ?, sent_digest = ? WHERE cid = ? AND pid = ?",
                (data, digest, cid, pid),
            )

    def sent(self, cid: str, pid: str) -> tuple[bytes | None, str | None]:
        with self._db() as db:
            row = db.execute(
                "SELECT sent, sent_digest FROM fed_projects WHERE cid = ? AND pid = ?", (cid, pid)
            ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def save_counters(self, cid: str, pid: str, counters: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE fed_projects SET counters = ? WHERE cid = ? AND pid = ?",
                (orjson.dumps(counters), cid, pid),
            )

    def counters(self, cid: str, pid: str) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute(
                "SELECT counters FROM fed_projects WHERE cid = ? AND pid = ?", (cid, pid)
            ).fetchone()
        return {**empty_counters(), **orjson.loads(row[0])} if row and row[0] else empty_counters()

    # ------------------------------------------------------------ peers' snapshots
    def save_peer(self, cid: str, pid: str, peer: str, version: int, data: bytes) -> bool:
        """Keep `data` if it is newer than what is known of `peer`; whether it was kept."""
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO fed_peer_snapshots (cid, pid, peer, version, data, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cid, pid, peer) DO UPDATE SET "
                "version = excluded.version, data = excluded.data, "
                "received_at = excluded.received_at WHERE excluded.version > version",
                (cid, pid, peer, version, data, time.time()),
            )
            return cur.rowcount == 1

    def delete_peer(self, cid: str, pid: str, peer: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM fed_peer_snapshots WHERE cid = ? AND pid = ? AND peer = ?",
                (cid, pid, peer),
            )

    def peer_snapshots(self, cid: str, pid: str) -> dict[str, tuple[int, bytes]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT peer, version, data FROM fed_peer_snapshots WHERE cid = ? AND pid = ?",
                (cid, pid),
            ).fetchall()
        return {peer: (int(v), bytes(d)) for peer, v, d in rows}

    # ------------------------------------------------------------ logs
    def log(self, cid: str, pid: str, kind: str, message: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO fed_logs (cid, pid, kind, at, message) VALUES (?, ?, ?, ?, ?)",
                (cid, pid, kind, time.time(), message),
            )
            db.execute(
                "DELETE FROM fed_logs WHERE cid = ? AND pid = ? AND kind = ? AND id <= "
                "(SELECT id FROM fed_logs WHERE cid = ? AND pid = ? AND kind = ? "
                "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (cid, pid, kind, cid, pid, kind, LOG_KEEP),
            )

    def logs(self, cid: str, pid: str, kind: str) -> list[str]:
        with self._db() as db:
            rows = db.execute(
                "SELECT at, message FROM fed_logs WHERE cid = ? AND pid = ? AND kind = ? "
                "ORDER BY id",
                (cid, pid, kind),
            ).fetchall()
        return [f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(at))}Z {msg}" for at, msg in rows]

    def clear_logs(self, cid: str, pid: str, kind: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM fed_logs WHERE cid = ? AND pid = ? AND kind = ?", (cid, pid, kind)
            )
