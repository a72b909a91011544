"""Which projects this node holds: loaded at start, created, looked up, deleted.

A project is its accumulator and its models in memory, over its row in the store (a
snapshot plus the log of updates since). At start every project comes back from there
(snapshot, then the log replayed through the same `fold` a live update uses); one whose
statistics will not decode or replay is quarantined in `unavailable` instead of keeping
the node down: it is listed by /readyz, answered 503, and may only be deleted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..engine.accumulator import Accumulator
from ..engine.codec import decode_snapshot
from ..engine.xp import gpu_available
from ..store import ModelStore, ProjectRecord, ProjectStore
from .errors import Conflict, no_model, no_project, quarantined
from .updates import fold

log = logging.getLogger("fedstats.node.service")


@dataclass
class Project:
    """One project in memory; `acc` is replaced on each update, never mutated once published."""

    cid: str
    pid: str
    engine: str
    acc: Accumulator
    seq: int = 0  # last log sequence number written
    since_checkpoint: int = 0  # log entries not yet folded into the snapshot
    models: dict[str, Any] = field(default_factory=dict)  # model id -> Model
    lock: threading.Lock = field(default_factory=threading.Lock)
    deleted: bool = False


class Registry:
    """The projects of every customer, by (customer, project)."""

    def __init__(self, projects_store: ProjectStore, models_store: ModelStore) -> None:
        self.projects_store = projects_store
        self.models_store = models_store
        self.lock = threading.Lock()  # held to add or remove a project
        self._projects: dict[tuple[str, str], Project] = {}
        # projects whose snapshot or log would not load: (cid, pid) -> why
        self.unavailable: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ start
    def load(self) -> None:
        """Every project back: snapshot, then the log replayed; every model reloaded."""
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

    def _load_project(self, rec: ProjectRecord) -> Project:
        engine = rec.engine
        if engine == "gpu" and not gpu_available():
            log.warning("project %s/%s is gpu but no GPU is here: loading it on cpu",
                        rec.cid, rec.pid)
            engine = "cpu"
        acc = decode_snapshot(rec.snapshot, engine) if rec.snapshot else Accumulator(engine)
        project = Project(rec.cid, rec.pid, engine, acc, seq=rec.snapshot_seq)
        for entry in self.projects_store.log(rec.cid, rec.pid, rec.snapshot_seq):
            fold(project.acc, entry.kind, decode_snapshot(entry.stats, engine))
            project.seq = entry.seq
            project.since_checkpoint += 1
        return project

    def unavailable_projects(self) -> list[dict[str, str]]:
        """The quarantined projects: `[{customer, project, reason}]`."""
        return [{"customer": c, "project": p, "reason": r}
                for (c, p), r in sorted(self.unavailable.items())]

    # ------------------------------------------------------------------ changes
    def create(self, cid: str, pid: str, engine: str, acc: Accumulator) -> None:
        """Add a new, empty project (stored first); Conflict if it exists."""
        with self.lock:
            if (cid, pid) in self._projects or not self.projects_store.create(cid, pid, engine):
                raise Conflict(f"Customer [{cid}] already has a project with id [{pid}]")
            self._projects[(cid, pid)] = Project(cid, pid, engine, acc)

    def delete_quarantined(self, cid: str, pid: str) -> bool:
        """Delete a quarantined project (it never loaded); whether it was one."""
        if (cid, pid) not in self.unavailable or (cid, pid) in self._projects:
            return False
        with self.lock:
            self.projects_store.delete(cid, pid)
            self.unavailable.pop((cid, pid), None)
        return True

    def remove(self, project: Project) -> None:
        """Delete `project` for good; the caller holds its lock and `self.lock`."""
        project.deleted = True  # an update waiting on its lock then finds it gone
        self._projects.pop((project.cid, project.pid), None)
        self.projects_store.delete(project.cid, project.pid)

    # ------------------------------------------------------------------ lookups
    def get(self, cid: str, pid: str) -> Project:
        """The project; NotFound (the spec's message), or Unavailable if quarantined."""
        project = self._projects.get((cid, pid))
        if project is None:
            if (cid, pid) in self.unavailable:
                raise quarantined(cid, pid)
            raise no_project(cid, pid)
        return project

    def exists(self, cid: str, pid: str) -> bool:
        return (cid, pid) in self._projects

    def ids(self, cid: str) -> list[str]:
        """The customer's project ids, sorted."""
        return sorted(pid for c, pid in list(self._projects) if c == cid)

    def model(self, cid: str, pid: str, model_id: str) -> Any:
        """A built model of the project; NotFound if it has none of that id."""
        model = self.get(cid, pid).models.get(model_id)
        if model is None:
            raise no_model(cid, pid, model_id)
        return model


def _load_model(body: bytes) -> Any:
    from ..engine.models import load_model

    return load_model(orjson.loads(body))
