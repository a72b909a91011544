"""`ModelStoreService`: stores of model bytes per customer, on the node's volume.

Synchronous and blocking (SQLite commits, file hashing): the facade calls it from worker
threads, except `get_model`, `exists_model` and `exists_store`, one indexed read each on
a connection of their own that never waits for a writer (`_Reader`), which the facade
calls on the event loop; `get_model` answers a record it read before from memory
(`_Records`: a record is never changed once written, only deleted, and every delete
goes through this service, which forgets them). A store belongs to one customer (the `APIKey` that names it), like a project.
Files are content-addressed (`store.blobs`), records are rows (`store.modelmeta`); a put
is acknowledged once both are durable, and a quota is checked inside the transaction
that records the model, so two concurrent puts cannot both squeeze under it.

What a record says on creation (decided in docs/modelstore.md): a new `model_id` (UUID4)
for every stored copy; `round` is 0 for a first put, then the round of the store's latest
TRANSFERRED model, AGGREGATED is the store's previous largest aggregated round + 1, and a
copy keeps its source's round; `hop_count` counts the relays beyond the first link (a
copy of a copy adds one). The hierarchy (feedback, transfer, parties) is
`modelstore.hierarchy`, built on this.
"""

from __future__ import annotations

import logging
import re
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..store.blobs import BlobStore, BlobWriter
from ..store.db import Database
from ..store.modelmeta import ModelMeta, ModelRecord, StoreRecord, UpstreamRecord
from .aggregate import merge_snapshots
from .config import ModelStoreConfig, Upstream
from .errors import (
    AggregationError,
    Forbidden,
    IntegrityError,
    InvalidParams,
    ModelNotFound,
    ModelTooLarge,
    NoAggregatedModel,
    QuotaExceeded,
    StoreAlreadyExists,
    StoreNotFound,
)
from .events import SNAPSHOT_KIND, FlEvents

log = logging.getLogger(__name__)

_STORE_NAME = re.compile(r"^(ddc:)?[A-Za-z0-9._-]{1,128}$")
MAX_SNAPSHOT_BYTES = 1 << 30  # aggregation decodes snapshots in memory


def check_store_name(name: Any) -> str:
    """Exact, case-sensitive names: `[ddc:]` then 1-128 of `A-Za-z0-9._-`."""
    if not isinstance(name, str) or not _STORE_NAME.match(name):
        raise InvalidParams(f"model_store_ddc {name!r} is not a valid store name: use an "
                            "optional 'ddc:' then 1-128 letters, digits, '.', '_', '-'",
                            model_store_ddc=name if isinstance(name, str) else None)
    return name


class _Reader:
    """A second connection to the node's SQLite file, for the reads the facade makes on
    the event loop (get_model_info, exists_*). The node's database is in WAL mode, where a
    reader never waits for a writer: these reads never wait for the node's write lock,
    held by another thread across a transaction and its commit's fsync (which would stall
    the loop, and every connection on it, for as long). Read-only (`query_only`), its own
    small lock for the rare call from a worker thread. `store.db` could offer this."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                     timeout=30.0)
        self._conn.execute("PRAGMA query_only = ON")
        self._lock = threading.Lock()
        weakref.finalize(self, self._conn.close)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn


class _ReadMeta(ModelMeta):
    """`ModelMeta`'s reads over a `_Reader` (the tables exist: the node's ModelMeta made
    them, so nothing is created here)."""

    def __init__(self, reader: _Reader) -> None:
        self.db = reader  # type: ignore[assignment]


class _Records:
    """Model records `get_model` read, by (customer, store, model id), at most `size` (the
    oldest forgotten). Safe because a model's row is written once and never updated, and
    deleted only through `ModelStoreService` (one node process owns its data directory),
    which calls `forget` once a delete committed. A read that raced a delete is not kept:
    `generation` is taken before the read and `keep` stores only if no delete came since
    (both under one lock, so no forget falls between the check and the store)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._recs: dict[tuple[str, str, str], ModelRecord] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key: tuple[str, str, str]) -> ModelRecord | None:
        return self._recs.get(key)

    def keep(self, key: tuple[str, str, str], rec: ModelRecord, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            if len(self._recs) >= self.size:  # dicts keep insertion order: drop the oldest
                del self._recs[next(iter(self._recs))]
            self._recs[key] = rec

    def forget(self) -> None:
        with self._lock:
            self.generation += 1
            self._recs.clear()


@dataclass
class PutRequest:
    """What a put records besides its bytes (the upload's params and provenance)."""

    kind: str = ""
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    state: int = FlEvents.CREATED
    tenant_id: str | None = None
    round: int | None = None
    hop_count: int = 0
    source_model_id: str | None = None
    source_store: str | None = None
    source_endpoint: str | None = None
    start: float | None = None


class ModelStoreService:
    """Every customer's model stores on this node."""

    def __init__(self, db: Database, data_dir: Path, config: ModelStoreConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.meta = ModelMeta(db)
        self.reads = _ReadMeta(_Reader(db.path))  # the event loop's (see _Reader)
        self.records = _Records()  # get_model's, forgotten on every delete
        self.blobs = BlobStore(Path(data_dir) / "modelstore" / "blobs")
        self.clock = clock
        self.tenant_id = config.tenant_id or self.meta.node_id()
        self.tenant_name = config.tenant_name or socket.gethostname()
        self._aggregating: dict[tuple[str, str], threading.Lock] = {}
        self._agg_lock = threading.Lock()
        self.collect_garbage()

    def collect_garbage(self) -> int:
        """Remove files no record names (a crash between placing a file and its commit)."""
        with self.meta.holding_lock():
            referenced = self.meta.referenced_digests()
            orphans = [d for d in self.blobs.digests() if d not in referenced]
            for digest in orphans:
                self.blobs.remove(digest)
        if orphans:
            log.info("model store: removed %d unreferenced file(s)", len(orphans))
        return len(orphans)

    # -- stores --------------------------------------------------------------------------
    def initialize_store(self, cid: str, name: str) -> tuple[StoreRecord, int]:
        check_store_name(name)
        rec = self.meta.create_store(cid, name, self.clock())
        if rec is None:
            raise StoreAlreadyExists(f"model store {name!r} exists already", model_store_ddc=name)
        return rec, 0

    def exists_store(self, cid: str, name: str) -> bool:
        return self.reads.get_store(cid, check_store_name(name)) is not None

    def require_store(self, cid: str, name: str) -> StoreRecord:
        rec = self.meta.get_store(cid, check_store_name(name))
        if rec is None:
            raise StoreNotFound(f"no model store {name!r}", model_store_ddc=name)
        return rec

    def delete_store(self, cid: str, name: str, raise_if_no_exists: bool = True) -> int:
        check_store_name(name)
        with self.meta.holding_lock():
            existed, orphans = self.meta.delete_store(cid, name)
            self.records.forget()
            for digest in orphans:
                self.blobs.remove(digest)
        if not existed and raise_if_no_exists:
            raise StoreNotFound(f"no model store {name!r}", model_store_ddc=name)
        return int(existed)

    # -- puts ----------------------------------------------------------------------------
    def check_declared_size(self, size: int | None) -> None:
        """Refuse a body over the largest model before reading it."""
        limit = self.config.max_model_bytes
        if size is not None and size > limit + (1 << 20):  # the form's framing on top
            raise ModelTooLarge(f"a model of {size} bytes is over this node's limit of "
                                f"{limit} bytes", max_model_bytes=limit)

    def new_writer(self) -> BlobWriter:
        return self.blobs.writer()

    def check_written_size(self, size: int) -> None:
        limit = self.config.max_model_bytes
        if size > limit:
            raise ModelTooLarge(f"the model is over this node's limit of {limit} bytes",
                                max_model_bytes=limit)

    def commit_put(self, cid: str, store: str, writer: BlobWriter, req: PutRequest
                   ) -> ModelRecord:
        """Record a finished upload (its file fsynced by `writer.finish()` first)."""
        try:
            return self._commit(cid, store, writer, req)
        finally:
            writer.abort()  # a no-op once placed; removes the file of a refused put

    def put_bytes(self, cid: str, store: str, data: bytes, req: PutRequest) -> ModelRecord:
        writer = self.blobs.writer()
        try:
            writer.write(data)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        return self.commit_put(cid, store, writer, req)

    def _commit(self, cid: str, store: str, writer: BlobWriter, req: PutRequest) -> ModelRecord:
        self.require_store(cid, store)
        if req.state not in set(FlEvents):
            raise InvalidParams(f"model_state {req.state!r} is not one of "
                                f"{', '.join(f'{e.value} ({e.name})' for e in FlEvents)}",
                                model_store_ddc=store)
        sha = writer.sha256
        assert sha is not None, "commit of an unfinished upload"
        self.check_written_size(writer.size)
        if req.source_model_id and req.state in (FlEvents.FEEDBACKED, FlEvents.TRANSFERRED):
            # the same model fed back (or transferred) again counts once
            existing = self.meta.find_copy(cid, store, req.state, req.source_model_id, sha)
            if existing is not None:
                return existing
        now = self.clock()
        rec = ModelRecord(
            cid=cid, store=store, model_id=str(uuid.uuid4()), kind=req.kind,
            description=req.description, meta=req.meta, state=int(req.state), sha256=sha,
            size=writer.size, tenant_id=req.tenant_id or self.tenant_id,
            round=self._round(cid, store, req), hop_count=req.hop_count,
            lon=self.config.location[0], lat=self.config.location[1],
            start=req.start if req.start is not None else now, end=now,
            source_model_id=req.source_model_id, source_store=req.source_store,
            source_endpoint=req.source_endpoint)
        quota = self.config.store(store).quota

        def check(used_bytes: int, used_models: int) -> None:
            if quota.max_models is not None and used_models + 1 > quota.max_models:
                raise QuotaExceeded(f"model store {store!r} holds {used_models} models, its "
                                    f"quota is {quota.max_models}", model_store_ddc=store,
                                    max_models=quota.max_models)
            if quota.max_bytes is not None and used_bytes + rec.size > quota.max_bytes:
                raise QuotaExceeded(f"model store {store!r} holds {used_bytes} bytes; "
                                    f"{rec.size} more is over its quota of {quota.max_bytes}",
                                    model_store_ddc=store, max_bytes=quota.max_bytes)

        return self.meta.insert_model(rec, check=check, place=lambda: self.blobs.place(writer))

    def _round(self, cid: str, store: str, req: PutRequest) -> int:
        if req.round is not None:
            return req.round
        if req.state == FlEvents.AGGREGATED:
            aggregated = self.meta.models(cid, store, (FlEvents.AGGREGATED,))
            return max((m.round for m in aggregated), default=-1) + 1
        latest = self.meta.models(cid, store, (FlEvents.TRANSFERRED,), 1, newest_first=True)
        return latest[0].round if latest else 0

    # -- reads ---------------------------------------------------------------------------
    def get_model(self, cid: str, store: str, model_id: Any) -> ModelRecord:
        if isinstance(model_id, str):
            key = (cid, store, model_id)
            rec = self.records.get(key)
            if rec is not None:  # only a valid store name was ever kept
                return rec
            check_store_name(store)
            generation = self.records.generation
            rec = self.reads.get_model(cid, store, model_id)
            if rec is not None:
                self.records.keep(key, rec, generation)
                return rec
        check_store_name(store)
        # a model's row implies its store's (a foreign key): look only now
        if self.reads.get_store(cid, store) is None:
            raise StoreNotFound(f"no model store {store!r}", model_store_ddc=store)
        raise ModelNotFound(f"no model {model_id!r} in model store {store!r}",
                            model_store_ddc=store, model_id=model_id)

    def exists_model(self, cid: str, store: str, model_id: str) -> bool:
        check_store_name(store)
        return self.reads.get_model(cid, store, model_id) is not None

    def models(self, cid: str, store: str) -> list[ModelRecord]:
        self.require_store(cid, store)
        return self.meta.models(cid, store)

    def latest(self, cid: str, store: str, *states: FlEvents) -> ModelRecord | None:
        self.require_store(cid, store)
        found = self.meta.models(cid, store, tuple(states) or None, 1, newest_first=True)
        return found[0] if found else None

    def latest_for_transfer(self, cid: str, store: str) -> ModelRecord:
        """The newest model to hand down: AGGREGATED here, or TRANSFERRED from above."""
        rec = self.latest(cid, store, FlEvents.AGGREGATED, FlEvents.TRANSFERRED)
        if rec is None:
            raise NoAggregatedModel(f"model store {store!r} holds no aggregated model",
                                    model_store_ddc=store)
        return rec

    def latest_feedbacked(self, cid: str, store: str, round: int | None = None
                          ) -> list[ModelRecord]:
        """FEEDBACKED models newer than the latest AGGREGATED one, the latest per tenant."""
        self.require_store(cid, store)
        newest_first = self.meta.models(cid, store, (FlEvents.FEEDBACKED, FlEvents.AGGREGATED),
                                        newest_first=True)
        out: dict[str, ModelRecord] = {}
        for m in newest_first:
            if m.state == FlEvents.AGGREGATED:
                break
            if round is not None and m.round != round:
                continue
            out.setdefault(m.tenant_id, m)
        return sorted(out.values(), key=lambda m: m.seq)

    def open_verified(self, cid: str, store: str, model_id: str) -> tuple[ModelRecord, Path]:
        """The record and its file, once the file hashed right (IntegrityError otherwise)."""
        rec = self.get_model(cid, store, model_id)
        if not self.blobs.verify(rec.sha256, rec.size):
            log.error("model %s in store %s/%s: its file is damaged or missing on disk "
                      "(expected %d bytes, SHA-256 %s); refused", rec.model_id, cid, store,
                      rec.size, rec.sha256)
            raise IntegrityError(f"model {model_id} is damaged on this node's disk: its bytes "
                                 "no longer match its SHA-256; it is not served",
                                 model_store_ddc=store, model_id=model_id)
        return rec, self.blobs.path(rec.sha256)

    def read_verified(self, cid: str, store: str, model_id: str, limit: int) -> bytes:
        rec, path = self.open_verified(cid, store, model_id)
        if rec.size > limit:
            raise AggregationError(f"model {model_id} is {rec.size} bytes, over the "
                                   f"{limit} a snapshot may be", model_id=model_id)
        return path.read_bytes()

    # -- deletes -------------------------------------------------------------------------
    def delete_model(self, cid: str, store: str, model_id: str,
                     raise_if_no_exists: bool = True) -> int:
        self.require_store(cid, store)
        with self.meta.holding_lock():
            count, orphans = self.meta.delete_models(cid, store, model_id)
            self.records.forget()
            for digest in orphans:
                self.blobs.remove(digest)
        if not count and raise_if_no_exists:
            raise ModelNotFound(f"no model {model_id!r} in model store {store!r}",
                                model_store_ddc=store, model_id=model_id)
        return count

    def delete_all(self, cid: str, store: str) -> int:
        self.require_store(cid, store)
        with self.meta.holding_lock():
            count, orphans = self.meta.delete_models(cid, store)
            self.records.forget()
            for digest in orphans:
                self.blobs.remove(digest)
        return count

    # -- aggregation ---------------------------------------------------------------------
    def aggregate(self, cid: str, store: str) -> ModelRecord:
        """Merge the latest fedstats snapshot fed back by each tenant into an AGGREGATED
        model; the existing one when nothing changed since it was made."""
        self.require_store(cid, store)
        with self._agg_lock:
            lock = self._aggregating.setdefault((cid, store), threading.Lock())
        with lock:
            latest: dict[str, ModelRecord] = {}
            for m in self.meta.models(cid, store, (FlEvents.FEEDBACKED,), newest_first=True):
                if m.kind == SNAPSHOT_KIND:
                    latest.setdefault(m.tenant_id, m)
            parts = sorted(latest.values(), key=lambda m: m.seq)
            if not parts:
                raise AggregationError(f"model store {store!r} holds no fedstats snapshot "
                                       "fed back to aggregate", model_store_ddc=store)
            sources = [m.model_id for m in parts]
            previous = self.latest(cid, store, FlEvents.AGGREGATED)
            if (previous is not None and previous.kind == SNAPSHOT_KIND
                    and previous.meta.get("fedstats_sources") == sources):
                return previous
            data = [(m.model_id, self.read_verified(cid, store, m.model_id, MAX_SNAPSHOT_BYTES))
                    for m in parts]
            merged, rows = merge_snapshots(data)
            return self.put_bytes(cid, store, merged, PutRequest(
                kind=SNAPSHOT_KIND, description=f"exact merge of {len(parts)} snapshot(s)",
                meta={"fedstats_sources": sources, "fedstats_rows": rows,
                      "fedstats_tenants": [m.tenant_id for m in parts]},
                state=FlEvents.AGGREGATED))

    def after_put(self, rec: ModelRecord) -> None:
        """Aggregate a store configured for it when a fedstats snapshot is fed back."""
        if (rec.state != FlEvents.FEEDBACKED or rec.kind != SNAPSHOT_KIND
                or not self.config.store(rec.store).aggregate_on_feedback):
            return
        try:
            self.aggregate(rec.cid, rec.store)
        except Exception as e:  # the feedback itself is stored: report, do not fail it
            log.warning("model store %s/%s: aggregation after feedback of %s failed: %s",
                        rec.cid, rec.store, rec.model_id, e)

    # -- upstreams -----------------------------------------------------------------------
    def upstream_for(self, cid: str, store: str) -> Upstream | None:
        """The store's upstream: an admin's setting, else the configuration's."""
        rec = self.meta.get_upstream(cid, store)
        up: Upstream | None
        if rec is not None:
            up = Upstream(rec.endpoint, rec.upstream_store, rec.apikey, rec.secret, rec.enabled)
        else:
            up = self.config.store(store).upstream
        return up if up is not None and up.enabled else None

    def require_admin(self, cid: str) -> None:
        if cid not in self.config.admins:
            raise Forbidden(f"customer {cid!r} is not a model store admin of this node "
                            "(the configuration's 'admins')", customer=cid)

    def set_upstream(self, cid: str, store: str, upstream: Upstream) -> UpstreamRecord:
        self.require_admin(cid)
        self.require_store(cid, store)
        now = self.clock()
        old = self.meta.get_upstream(cid, store)
        rec = UpstreamRecord(cid, store, upstream.endpoint, upstream.model_store_ddc,
                             upstream.apikey, upstream.secret, upstream.enabled,
                             old.created if old else now, now)
        self.meta.set_upstream(rec)
        return rec

    def delete_upstream(self, cid: str, store: str) -> int:
        self.require_admin(cid)
        return self.meta.delete_upstream(cid, check_store_name(store))


def copy_request(rec: ModelRecord, state: FlEvents, source_endpoint: str | None,
                 **overrides: Any) -> PutRequest:
    """The PutRequest of a copy of `rec` made by a feedback or a transfer."""
    relayed = rec.state in (FlEvents.FEEDBACKED, FlEvents.TRANSFERRED)
    req = PutRequest(kind=rec.kind, description=rec.description, meta=dict(rec.meta),
                     state=state, tenant_id=rec.tenant_id, round=rec.round,
                     hop_count=rec.hop_count + (1 if relayed else 0),
                     source_model_id=rec.model_id, source_store=rec.store,
                     source_endpoint=source_endpoint)
    return replace(req, **overrides)
