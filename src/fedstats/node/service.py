"""`ProjectService`: the node's projects, their statistics and models, durable and thread-safe.

Every public method is synchronous and may block (statistics, SQLite commits): the API
calls them from worker threads, never on the event loop. The shape that makes learns
durable and concurrent learns lossless:

* the batch's statistics (an accumulator of the batch alone) are computed outside any lock;
* under the project's lock, they are folded into a *copy* of the project's accumulator,
  appended to the project's log (committed, `synchronous=FULL`), and only then is the
  copy swapped in: a failure at any step leaves the project as it was, and readers
  (explore, build, the federation) take `project.acc` without locking, as it is never
  mutated once published;
* the same fold (`_apply`) replays the log at start, so a restarted node holds exactly
  the accumulator it acknowledged.

For the federation (`fedstats.node.federation`): `register_peer_source(fn)` where
`fn(cid, pid) -> list[Accumulator]` gives the peers' accumulators to merge into this
node's for build/explore/info; `local_accumulator(cid, pid)` (a copy of this node's own
rows' statistics), `effective_accumulator(cid, pid)` (local merged with peers'),
`project_exists(cid, pid)`.

Errors: `NotFound` (unknown project/model/job: 400, as the spec answers), `Conflict` (409),
`BadRequest` (400); engine errors (`EngineError`) pass through (400).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .engine.accumulator import Accumulator
from .engine.codec import decode_snapshot, encode_snapshot
from .engine.errors import FrameError, SchemaMismatch
from .engine.frame import Batch
from .engine.xp import EngineUnavailable, gpu_available
from .settings import Settings
from .store import Database, ModelStore, ProjectStore

log = logging.getLogger(__name__)

PeerSource = Callable[[str, str], list[Accumulator]]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class ServiceError(Exception):
    """Base of the service's own errors (the engine's are `EngineError`)."""


class NotFound(ServiceError):
    """An unknown project, model or job."""


class Conflict(ServiceError):
    """Creating what exists already."""


class BadRequest(ServiceError):
    """A request the service cannot act on (bad id, engine not available here, ...)."""


class Unavailable(ServiceError):
    """A project whose stored statistics would not load: quarantined, answered 503."""


def check_id(value: str | None, what: str) -> str:
    """Ids become paths and keys: letters, digits, `_ . -`, at most 128, not empty."""
    if not value or not _ID.match(value):
        raise BadRequest(
            f"{what} {value!r} is not valid: use 1-128 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return value


@dataclass
class Project:
    cid: str
    pid: str
    engine: str
    acc: Accumulator
    seq: int = 0  # last log sequence number written
    since_checkpoint: int = 0  # log entries not yet folded into the snapshot
    models: dict[str, Any] = field(default_factory=dict)  # model id -> Model
    lock: threading.Lock = field(default_factory=threading.Lock)
    deleted: bool = False


class ProjectService:
    """Projects of every customer on this node (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.projects_store = ProjectStore(db)
        self.models_store = ModelStore(db)
        self._projects: dict[tuple[str, str], Project] = {}
        self._registry_lock = threading.Lock()
        self._peer_sources: list[PeerSource] = []
        self._delete_listeners: list[Callable[[str, str], None]] = []
        # (cid, pid) -> (the parts merged, by identity; their merge): see `_view`
        self._merged: dict[tuple[str, str], tuple[tuple[Accumulator, ...], Accumulator]] = {}
        # projects whose snapshot or log would not load: (cid, pid) -> why (kept out of
        # service, listed by /readyz, deletable; the node serves every other project)
        self.unavailable: dict[tuple[str, str], str] = {}
        self._load()

    # ------------------------------------------------------------------ start
    def _load(self) -> None:
        """Every project back: snapshot, then the log replayed; every model reloaded.

        A project whose snapshot or log will not decode (or replay) is logged and
        quarantined in `unavailable`: one broken project must not keep the node down.
        """
        for rec in self.projects_store.all():
            try:
                self._projects[(rec.cid, rec.pid)] = self._load_project(rec)
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
                log.error("project %s/%s cannot be loaded and is unavailable: %s",
                          rec.cid, rec.pid, reason)
                self.unavailable[(rec.cid, rec.pid)] = reason
        for cid, pid, model_id, body in self.models_store.all():
            owner = self._projects.get((cid, pid))
            if owner is not None:
                owner.models[model_id] = _load_model(body)

    def _load_project(self, rec: Any) -> Project:
        engine = rec.engine
        if engine == "gpu" and not gpu_available():
            log.warning("project %s/%s is gpu but no GPU is here: loading it on cpu",
                        rec.cid, rec.pid)
            engine = "cpu"
        acc = decode_snapshot(rec.snapshot, engine) if rec.snapshot else Accumulator(engine)
        project = Project(rec.cid, rec.pid, engine, acc, seq=rec.snapshot_seq)
        for entry in self.projects_store.log(rec.cid, rec.pid, rec.snapshot_seq):
            _apply(project.acc, entry.kind, decode_snapshot(entry.stats, engine))
            project.seq = entry.seq
            project.since_checkpoint += 1
        return project

    def unavailable_projects(self) -> list[dict[str, str]]:
        """The quarantined projects: `[{customer, project, reason}]`."""
        return [{"customer": c, "project": p, "reason": r}
                for (c, p), r in sorted(self.unavailable.items())]

    # ------------------------------------------------------------------ projects
    def create_project(self, cid: str, pid: str, engine: str | None = None) -> None:
        check_id(pid, "project id")
        if engine is None:  # the node's default: a GPU node's projects run on CuPy
            engine = self.settings.default_engine
            if engine == "gpu" and not gpu_available():
                log.warning("default engine gpu, but this node has no GPU: project %s on cpu",
                            pid)
                engine = "cpu"
        if engine not in ("cpu", "gpu"):
            raise BadRequest(f"project type {engine!r} is not valid: use cpu or gpu")
        if engine == "gpu" and not gpu_available():
            raise BadRequest("project type 'gpu' needs a CUDA GPU and CuPy; this node has none")
        try:
            acc = Accumulator(engine)
        except EngineUnavailable as e:
            raise BadRequest(str(e)) from e
        with self._registry_lock:
            if (cid, pid) in self._projects or not self.projects_store.create(cid, pid, engine):
                raise Conflict(f"Customer [{cid}] already has a project with id [{pid}]")
            self._projects[(cid, pid)] = Project(cid, pid, engine, acc)

    def delete_project(self, cid: str, pid: str) -> None:
        if (cid, pid) in self.unavailable and (cid, pid) not in self._projects:
            with self._registry_lock:  # a quarantined project can still be removed
                self.projects_store.delete(cid, pid)
                self.unavailable.pop((cid, pid), None)
            return
        project = self._project(cid, pid)
        for listener in self._delete_listeners:  # e.g. the federation stops its agent
            listener(cid, pid)
        with project.lock, self._registry_lock:
            project.deleted = True
            self._projects.pop((cid, pid), None)
            self._merged.pop((cid, pid), None)
            self.projects_store.delete(cid, pid)

    def list_projects(self, cid: str) -> list[str]:
        return sorted(pid for c, pid in list(self._projects) if c == cid)

    def project_exists(self, cid: str, pid: str) -> bool:
        return (cid, pid) in self._projects

    def require_project(self, cid: str, pid: str) -> None:
        """NotFound (with the spec's message) unless the project exists."""
        self._project(cid, pid)

    def project_info(self, cid: str, pid: str) -> dict[str, Any]:
        """The smlInfo entity: rows (with peers'), local rows, attributes, columns, models."""
        project = self._project(cid, pid)
        acc = self._view(cid, pid)
        return {
            "id": pid,
            "type": project.engine,
            "rows": acc.n,
            "localRows": project.acc.n,
            "attributes": dict(acc.types),
            "attributeNames": list(acc.types),
            "attributeTypes": list(acc.types.values()),
            "columns": list(acc.columns),
            "version": project.acc.version,
            "models": sorted(project.models),
        }

    # ------------------------------------------------------------------ statistics
    def learn(self, cid: str, pid: str, batch: Batch) -> int:
        """Add the rows; returns once their statistics are durable."""
        return self._update(cid, pid, batch, "learn")

    def forget(self, cid: str, pid: str, batch: Batch) -> int:
        """Remove rows learned before; returns once that is durable."""
        return self._update(cid, pid, batch, "forget")

    def _update(self, cid: str, pid: str, batch: Batch, kind: str) -> int:
        project = self._project(cid, pid)
        if not batch.columns:
            raise FrameError("the DataFrame has no attribute to learn or forget (all X, or none)")
        part = Accumulator(project.engine)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked, below
            part.learn(batch)  # the expensive arithmetic, outside the lock
        _check_finite(part, "these rows' statistics")
        stats = encode_snapshot(part)
        with project.lock:
            if project.deleted:
                raise NotFound(_no_project(cid, pid))
            acc = project.acc.copy()
            with np.errstate(over="ignore", invalid="ignore"):
                _apply(acc, kind, part)
            _check_finite(acc, "the project's statistics with these rows")
            self.projects_store.append(cid, pid, project.seq + 1, kind, stats)
            project.seq += 1
            project.since_checkpoint += 1
            project.acc = acc
            if project.since_checkpoint >= self.settings.checkpoint_every:
                # The learn is durable already (the log is the truth): a checkpoint that
                # fails only leaves a longer log to replay, and is tried again next time.
                try:
                    self.projects_store.checkpoint(cid, pid, project.seq, encode_snapshot(acc))
                    project.since_checkpoint = 0
                except Exception as e:
                    log.error("checkpoint of project %s/%s failed (its log holds every "
                              "change; retried after the next one): %s: %s",
                              cid, pid, type(e).__name__, e)
        return batch.rows

    def register_delete_listener(self, fn: Callable[[str, str], None]) -> None:
        """`fn(cid, pid)` runs before a project is deleted (the federation stops its agent)."""
        self._delete_listeners.append(fn)

    def register_peer_source(self, fn: PeerSource) -> None:
        """`fn(cid, pid)` gives peers' accumulators to merge into this node's (federation)."""
        self._peer_sources.append(fn)

    def local_accumulator(self, cid: str, pid: str) -> Accumulator:
        """A copy of the statistics of this node's own rows."""
        return self._project(cid, pid).acc.copy()

    def local_view(self, cid: str, pid: str) -> Accumulator:
        """This node's own statistics, read-only and uncopied: a published accumulator is
        never mutated (a learn swaps in a new one), so readers need no copy of it."""
        return self._project(cid, pid).acc

    def effective_accumulator(self, cid: str, pid: str) -> Accumulator:
        """This node's statistics merged with those its peers share (a new object)."""
        return self._view(cid, pid).copy()

    def _view(self, cid: str, pid: str) -> Accumulator:
        """Local merged with peers', read-only, for info, explore and build.

        The merge is kept until one of its parts changes: a learn publishes a new local
        accumulator and a peer's snapshot arrives as a new object, so comparing the parts by
        identity is enough, and a polled `info` no longer re-merges every peer each time.
        """
        project = self._project(cid, pid)
        peers = [a for fn in self._peer_sources for a in fn(cid, pid)]
        if not peers:
            return project.acc
        parts = (project.acc, *peers)
        cached = self._merged.get((cid, pid))
        if cached is not None and len(cached[0]) == len(parts) and all(
                a is b for a, b in zip(cached[0], parts, strict=True)):
            return cached[1]
        merged = Accumulator.merged(parts, engine=project.engine)
        self._merged[(cid, pid)] = (parts, merged)
        return merged

    # ------------------------------------------------------------------ explore
    def explore(self, cid: str, pid: str, metric: str, attributes: list[str] | None) -> Any:
        from .engine import explore

        acc = self._view(cid, pid)
        if metric == "uni":
            return explore.explore_uni(acc, attributes)
        if metric == "bi":
            return explore.explore_bi(acc, attributes)
        raise BadRequest(f"metric {metric!r} is not supported: use uni or bi")

    def explore_pca(self, cid: str, pid: str, attributes: list[str] | None,
                    k: int | None) -> Any:
        from .engine import explore

        return explore.explore_pca(self._view(cid, pid), attributes, k)

    # ------------------------------------------------------------------ models
    def build(self, cid: str, pid: str, model_id: str, algo: str,
              context: dict[str, Any]) -> dict[str, Any]:
        """Build, store (durably) and register a model; returns its modelInfo."""
        from .engine.models import build_model

        check_id(model_id, "model id")
        project = self._project(cid, pid)
        model = build_model(algo, self._view(cid, pid), context)
        body = orjson.dumps(model.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
        with project.lock:
            if project.deleted:
                raise NotFound(_no_project(cid, pid))
            self.models_store.put(cid, pid, model_id, algo, body)
            project.models[model_id] = model
        return {"id": model_id, **model.info()}

    def check_algo(self, algo: str | None) -> str:
        from .engine.models import ALGORITHMS

        if not algo or algo not in ALGORITHMS:
            raise BadRequest(f"unknown algo {algo!r}: use one of {', '.join(sorted(ALGORITHMS))}")
        return algo

    def list_models(self, cid: str, pid: str) -> list[str]:
        return sorted(self._project(cid, pid).models)

    def model_info(self, cid: str, pid: str, model_id: str) -> dict[str, Any]:
        return {"id": model_id, **self._model(cid, pid, model_id).info()}

    def delete_model(self, cid: str, pid: str, model_id: str) -> None:
        project = self._project(cid, pid)
        with project.lock:
            if project.models.pop(model_id, None) is None:
                raise NotFound(_no_model(cid, pid, model_id))
            self.models_store.delete(cid, pid, model_id)

    def predict(self, cid: str, pid: str, model_id: str, batch: Batch) -> dict[str, list[str]]:
        """KSVSMap of predictions; a frame not matching the model is a `ModelError` (400)."""
        return self._model(cid, pid, model_id).predict(batch)

    # ------------------------------------------------------------------ lookups
    def _project(self, cid: str, pid: str) -> Project:
        project = self._projects.get((cid, pid))
        if project is None:
            if (cid, pid) in self.unavailable:
                raise Unavailable(
                    f"project [{pid}] of customer [{cid}] is unavailable: its stored "
                    "statistics cannot be loaded (see the node's log); it can only be deleted"
                )
            raise NotFound(_no_project(cid, pid))
        return project

    def _model(self, cid: str, pid: str, model_id: str) -> Any:
        model = self._project(cid, pid).models.get(model_id)
        if model is None:
            raise NotFound(_no_model(cid, pid, model_id))
        return model


def _no_project(cid: str, pid: str) -> str:
    return f"Cannot find project id [{pid}] for customer id [{cid}]"


def _no_model(cid: str, pid: str, model_id: str) -> str:
    return f"Cannot find model id [{model_id}] in project [{pid}] for customer id [{cid}]"


def _load_model(body: bytes) -> Any:
    from .engine.models import load_model

    return load_model(orjson.loads(body))


def _check_finite(acc: Accumulator, what: str) -> None:
    """BadRequest unless every moment (total and conditional) is finite.

    Finite values can still overflow float64 once squared or merged (1e200 and -1e200):
    such statistics could never be stored, explored or reloaded, so they are refused
    before anything reaches the log.
    """
    xp = acc.xp
    for m in (acc.total, *acc.cond.values()):
        for a in (m.mean, m.dmean, m.m2, m.m3, m.m4):
            if a.size and not bool(xp.isfinite(a).all()):
                raise BadRequest(
                    f"{what} overflow (the moments are not finite): values this large "
                    "cannot be learned; rescale the attributes"
                )


def _apply(acc: Accumulator, kind: str, part: Accumulator) -> None:
    """Fold one batch's statistics into `acc` in place: the live path and the replay.

    Learn and forget alike need every attribute of the project in the batch. A forget
    must remove rows that were learned: when it leaves a variance (total or conditional)
    clearly negative, it is refused (`acc` is then a spoiled copy the caller drops).
    """
    missing = [a for a in acc.types if a not in part.types]
    if missing:
        raise SchemaMismatch(
            f"the rows lack attribute(s) {', '.join(map(repr, missing))} that the project has"
        )
    if kind == "learn":
        acc.merge(part)
        return
    before = _m2_diagonals(acc)
    acc.unmerge(part)
    after = _m2_diagonals(acc)
    for key, old in before.items():
        new = after.get(key)
        if new is None or not new.size:
            continue
        # rounding leaves at most a tiny negative relative to the variance removed from
        if bool((new < -_NEGATIVE_TOLERANCE * np.abs(old)).any()) or not bool(
                np.isfinite(new).all()):
            raise BadRequest(
                "these rows were not learned: forgetting them would leave a negative "
                "variance" + (f" given {key!r}" if key else "")
            )


_NEGATIVE_TOLERANCE = 1e-7


def _m2_diagonals(acc: Accumulator) -> dict[str, np.ndarray]:
    """The diagonal of m2 (sums of squared deviations): '' for the total, then each condition."""
    from .engine.xp import to_numpy

    out = {"": np.diagonal(to_numpy(acc.total.m2)).copy()}
    for col, m in acc.cond.items():
        out[col] = np.diagonal(to_numpy(m.m2)).copy()
    return out
