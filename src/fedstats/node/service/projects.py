"""`ProjectService`: the one object the facades and the federation call, over the parts beside it.

Every public method is synchronous and may block (statistics, SQLite commits): the API
calls them from worker threads, never on the event loop. The work is in the modules
beside this one (`registry`, `updates`, `merged`, `rules`); this class holds them
together and is the service's whole public surface.

The federation uses the part `fedstats.node.federation.ports.ProjectPort` names:
`register_peer_source(fn)` where `fn(cid, pid) -> list[Accumulator]` gives the peers'
accumulators to merge into this node's for build/explore/info; `local_view(cid, pid)`
(this node's own rows' statistics, read-only), `project_exists`, `require_project`,
`create_project`, `delete_project`. The composition root (`api/app.py`) also registers
the hub's `forget_from_any_thread` with `register_delete_listener`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from ..engine.accumulator import Accumulator
from ..engine.frame import Batch
from ..engine.xp import EngineUnavailable, gpu_available
from ..settings import Settings
from ..store import Database, ModelStore, ProjectStore
from . import rules, updates
from .errors import BadRequest, Conflict, no_model, no_project
from .merged import MergedView, PeerSource
from .registry import Registry
from .rows import KeptRows

log = logging.getLogger("fedstats.node.service")


class ProjectService:
    """Projects of every customer on this node (see the package docstring)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.projects_store = ProjectStore(db)
        self.models_store = ModelStore(db)
        self._registry = Registry(self.projects_store, self.models_store)
        self._merged = MergedView()
        self._delete_listeners: list[Callable[[str, str], None]] = []
        self._registry.load()
        self.kept = KeptRows(db, settings.data_dir)
        self._load_kept()

    def _load_kept(self) -> None:
        """Open the keep-rows projects' stores; drop orphans; statistics behind a crash
        between a row commit and its log commit are rebuilt from the rows (`rows.py`)."""
        for cid, pid in self.kept.load():
            if not self._registry.exists(cid, pid):
                if (cid, pid) not in self._registry.unavailable:
                    self.kept.drop(cid, pid)  # its project's creation never committed
                continue
            project = self._registry.get(cid, pid)
            if project.acc.n == self.kept.count(cid, pid):
                continue
            log.warning("project %s/%s: its kept rows (%d) and statistics (%d rows) differ "
                        "(a crash between their commits): statistics rebuilt from the rows",
                        cid, pid, self.kept.count(cid, pid), project.acc.n)
            project.acc = self.kept.rebuilt(cid, pid, project.engine)
            updates.checkpoint(self.projects_store, project)

    @property
    def unavailable(self) -> dict[tuple[str, str], str]:
        """Projects whose stored statistics would not load: (cid, pid) -> why."""
        return self._registry.unavailable

    def unavailable_projects(self) -> list[dict[str, str]]:
        """The quarantined projects: `[{customer, project, reason}]`."""
        return self._registry.unavailable_projects()

    # ------------------------------------------------------------------ projects
    def create_project(self, cid: str, pid: str, engine: str | None = None,
                       keep_rows: bool = False) -> None:
        """A new project; `keep_rows` keeps its learned rows (`rows.py`) for GLM builds."""
        rules.check_id(pid, "project id")
        chosen = rules.project_engine(engine, self.settings.default_engine, gpu_available)
        if engine is None and chosen != self.settings.default_engine:
            log.warning("default engine %s, but this node has no GPU: project %s on %s",
                        self.settings.default_engine, pid, chosen)
        try:
            acc = Accumulator(chosen)
        except EngineUnavailable as e:
            raise BadRequest(str(e)) from e
        if keep_rows:  # the store first: a crash before the project leaves an orphan, dropped at start
            if self._registry.exists(cid, pid):
                raise Conflict(f"Customer [{cid}] already has a project with id [{pid}]")
            self.kept.create(cid, pid)
            try:
                self._registry.create(cid, pid, chosen, acc)
            except BaseException:
                self.kept.drop(cid, pid)
                raise
            return
        self._registry.create(cid, pid, chosen, acc)

    def close(self) -> None:
        """Release what the service holds open (the kept-rows stores); at shutdown."""
        self.kept.close()

    def keeps_rows(self, cid: str, pid: str) -> bool:
        """Whether the project keeps its learned rows (created with keepRows)."""
        self._registry.get(cid, pid)
        return self.kept.keeps(cid, pid)

    def delete_project(self, cid: str, pid: str) -> None:
        if self._registry.delete_quarantined(cid, pid):  # it can still be removed
            return
        project = self._registry.get(cid, pid)
        for listener in self._delete_listeners:  # e.g. the federation stops its agent
            listener(cid, pid)
        with project.lock, self._registry.lock:
            self._registry.remove(project)
            self._merged.drop(cid, pid)
            self.kept.drop(cid, pid)

    def list_projects(self, cid: str) -> list[str]:
        return self._registry.ids(cid)

    def project_exists(self, cid: str, pid: str) -> bool:
        return self._registry.exists(cid, pid)

    def require_project(self, cid: str, pid: str) -> None:
        """NotFound (with the spec's message) unless the project exists."""
        self._registry.get(cid, pid)

    def project_info(self, cid: str, pid: str) -> dict[str, Any]:
        """The smlInfo entity: rows (with peers'), local rows, attributes, columns, models."""
        project = self._registry.get(cid, pid)
        acc = self._merged.of(project)
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
            "keepRows": self.kept.keeps(cid, pid),
            "models": sorted(project.models),
        }

    def register_delete_listener(self, fn: Callable[[str, str], None]) -> None:
        """`fn(cid, pid)` runs before a project is deleted (the federation stops its agent)."""
        self._delete_listeners.append(fn)

    # ------------------------------------------------------------------ statistics
    def learn(self, cid: str, pid: str, batch: Batch) -> int:
        """Add the rows; returns once their statistics are durable."""
        return self._update(cid, pid, batch, "learn")

    def forget(self, cid: str, pid: str, batch: Batch) -> int:
        """Remove rows learned before; returns once that is durable."""
        return self._update(cid, pid, batch, "forget")

    def _update(self, cid: str, pid: str, batch: Batch, kind: str) -> int:
        project = self._registry.get(cid, pid)
        return updates.update(self.projects_store, project, batch, kind,
                              self.settings.checkpoint_every, self.settings.limits,
                              self.kept)

    def register_peer_source(self, fn: PeerSource) -> None:
        """`fn(cid, pid)` gives peers' accumulators to merge into this node's (federation)."""
        self._merged.add_source(fn)

    def local_accumulator(self, cid: str, pid: str) -> Accumulator:
        """A copy of the statistics of this node's own rows."""
        return self._registry.get(cid, pid).acc.copy()

    def local_view(self, cid: str, pid: str) -> Accumulator:
        """This node's own statistics, read-only and uncopied: a published accumulator is
        never mutated (a learn swaps in a new one), so readers need no copy of it."""
        return self._registry.get(cid, pid).acc

    def effective_accumulator(self, cid: str, pid: str) -> Accumulator:
        """This node's statistics merged with those its peers share (a new object)."""
        return self._view(cid, pid).copy()

    def _view(self, cid: str, pid: str) -> Accumulator:
        """Local merged with peers', read-only, for info, explore and build (`merged`)."""
        return self._merged.of(self._registry.get(cid, pid))

    # ------------------------------------------------------------------ explore
    def explore(self, cid: str, pid: str, metric: str, attributes: list[str] | None) -> Any:
        from ..engine import explore

        acc = self._view(cid, pid)
        if metric == "uni":
            return explore.explore_uni(acc, attributes)
        if metric == "bi":
            return explore.explore_bi(acc, attributes)
        raise BadRequest(f"metric {metric!r} is not supported: use uni or bi")

    def explore_pca(self, cid: str, pid: str, attributes: list[str] | None,
                    k: int | None) -> Any:
        from ..engine import explore

        return explore.explore_pca(self._view(cid, pid), attributes, k)

    # ------------------------------------------------------------------ models
    def build(self, cid: str, pid: str, model_id: str, algo: str,
              context: dict[str, Any]) -> dict[str, Any]:
        """Build, store (durably) and register a model; returns its modelInfo."""
        from ..engine.models import build_model

        rules.check_id(model_id, "model id")
        project = self._registry.get(cid, pid)
        return self.store_model(cid, pid, model_id, algo,
                                build_model(algo, self._merged.of(project), context))

    def store_model(self, cid: str, pid: str, model_id: str, algo: str,
                    model: Any) -> dict[str, Any]:
        """Store (durably) and register a model built here or elsewhere (a GLM's rounds);
        its modelInfo. A project deleted meanwhile is refused, nothing stored."""
        rules.check_id(model_id, "model id")
        project = self._registry.get(cid, pid)
        body = orjson.dumps(model.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
        with project.lock:
            if project.deleted:
                raise no_project(cid, pid)
            self.models_store.put(cid, pid, model_id, algo, body)
            project.models[model_id] = model
        return {"id": model_id, **model.info()}

    def check_algo(self, algo: str | None) -> str:
        from ..engine.models import ALGORITHMS

        return rules.check_algo(algo, ALGORITHMS)

    def list_models(self, cid: str, pid: str) -> list[str]:
        return sorted(self._registry.get(cid, pid).models)

    def model_info(self, cid: str, pid: str, model_id: str) -> dict[str, Any]:
        return {"id": model_id, **self._registry.model(cid, pid, model_id).info()}

    def delete_model(self, cid: str, pid: str, model_id: str) -> None:
        project = self._registry.get(cid, pid)
        with project.lock:
            if project.models.pop(model_id, None) is None:
                raise no_model(cid, pid, model_id)
            self.models_store.delete(cid, pid, model_id)

    def predict(self, cid: str, pid: str, model_id: str, batch: Batch) -> dict[str, list[str]]:
        """KSVSMap of predictions; a frame not matching the model is a `ModelError` (400)."""
        return self._registry.model(cid, pid, model_id).predict(batch)

