"""GLM builds (`lr`, `poisson`) from a project's kept rows, and a site's share of a round.

A GLM needs the rows once per Newton round (`engine.models.glm`), so only a project that
keeps rows (`rows.py`) can fit one. `SiteRows` is one site's side of a fit: it pins a
row-store snapshot for the fit's whole life (every round then reads the same rows, even
while learns and forgets go on) and answers the round statistics at given coefficients.
The local build is the Newton driver over one `SiteRows`; the federation's coordinator
(`federation.rounds`) drives the same solver over every member's `SiteRows`.

Rows are read from the store each round, batch by batch (memory bounded); a pinned fit
whose design matrix is small (`CACHE_BYTES`) keeps it in memory instead, so the rounds
after the first cost only the arithmetic. A `gpu` project's rows go to the device
(`engine.xp.array_module`), where `round_stats` runs on cuBLAS. Storing a finished model is `store_model`,
the same durable path as the service's own builds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..engine.errors import ModelError
from ..engine.glm import RoundStats, round_stats
from ..engine.models import ROW_ALGORITHMS, MLContext
from ..engine.models.glm import GlmModel, GlmProblem, build_glm
from ..engine.xp import array_module
from ..store.rows import Snapshot
from . import rules
from .errors import BadRequest

if TYPE_CHECKING:
    from .projects import ProjectService

BATCH_ROWS = 65536
CACHE_BYTES = 64 << 20  # a pinned fit's X and y kept in memory up to this size
IDLE_S = 600.0  # a fit whose rounds stopped coming releases its snapshot after this


def is_glm(algo: str) -> bool:
    return algo in ROW_ALGORITHMS


def no_kept_rows(pid: str, algo: str = "lr") -> BadRequest:
    return BadRequest(
        f"algo {algo!r} is fitted from rows, and project [{pid}] does not keep rows: create "
        "it with keepRows=true (or sml_project_keep_rows)")


class SiteRows:
    """One site's kept rows as seen by one fit at a time (thread-safe)."""

    def __init__(self, service: ProjectService, cid: str, pid: str) -> None:
        self.service, self.cid, self.pid = service, cid, pid
        self._lock = threading.Lock()
        self._fit: str | None = None
        self._snap: Snapshot | None = None
        self._cache: tuple[Any, Any] | None = None
        self._used = 0.0

    def keeps_rows(self) -> bool:
        return self.service.kept.keeps(self.cid, self.pid)

    def pinned_rows(self, fit: str) -> int:
        """How many rows fit `fit` reads here (pinning them at its first call)."""
        with self._lock:
            return self._pin(fit).count

    def stats(self, fit: str, problem: GlmProblem, coef: Any) -> RoundStats:
        """Σ loss, gradient and Hessian of this site's rows (as pinned for `fit`) at coef."""
        with self._lock:
            snap = self._pin(fit)
            p = problem.coef_shape() * (problem.d + 1)
            if self._cache is not None:
                x, y = self._cache
                return round_stats(x, y, coef, problem.family) if len(y) else RoundStats.zeros(p)
            xp = array_module(self.service.local_view(self.cid, self.pid).engine)
            total = RoundStats.zeros(p)
            xs, ys, size = [], [], 0
            for x, y in self._rows(snap, problem):
                x, y = xp.asarray(x), xp.asarray(y)
                total.add(round_stats(x, y, coef, problem.family))
                size += x.nbytes + y.nbytes
                if size <= CACHE_BYTES:
                    xs.append(x)
                    ys.append(y)
            if size <= CACHE_BYTES:
                self._cache = (xp.concatenate(xs) if xs else xp.zeros((0, problem.d)),
                               xp.concatenate(ys) if ys else xp.zeros(0))
            return total

    def release(self) -> None:
        with self._lock:
            self._drop()

    def release_idle(self, idle_s: float) -> None:
        """Release the pinned rows if no round came for `idle_s` (a member never hears
        that a fit ended: its rounds just stop coming)."""
        with self._lock:
            if self._snap is not None and time.monotonic() - self._used >= idle_s:
                self._drop()

    def _pin(self, fit: str) -> Snapshot:
        store = self.service.kept.get(self.cid, self.pid)
        if store is None:
            raise no_kept_rows(self.pid)
        now = time.monotonic()
        if self._fit != fit or self._snap is None or now - self._used > IDLE_S:
            self._drop()
            self._snap, self._fit = store.snapshot(), fit
        self._used = now
        return self._snap

    def _drop(self) -> None:
        if self._snap is not None:
            self._snap.close()
        self._snap, self._fit, self._cache = None, None, None

    @staticmethod
    def _rows(snap: Snapshot, problem: GlmProblem) -> Iterator[tuple[Any, Any]]:
        for batch in snap.batches(BATCH_ROWS):
            problem.check_columns(batch)
            yield problem.rows(batch)


def problem_of(acc: Any, algo: str, context: dict[str, Any]) -> GlmProblem:
    """The fit `algo` on the statistics `acc` describes (ModelError if it cannot be one)."""
    if acc.n == 0:
        raise ModelError("the project has no rows: learn some before building a model")
    return GlmProblem.of(algo, acc, MLContext.parse(context))


def build_local(service: ProjectService, cid: str, pid: str, model_id: str, algo: str,
                context: dict[str, Any]) -> dict[str, Any]:
    """Fit `algo` on this node's kept rows of a project that is not federated; modelInfo."""
    rules.check_id(model_id, "model id")
    if not service.keeps_rows(cid, pid):
        raise no_kept_rows(pid, algo)
    problem = problem_of(service.local_view(cid, pid), algo, context)
    site = SiteRows(service, cid, pid)
    fit = f"local-{time.time_ns()}"
    started = time.perf_counter_ns()
    try:
        model = build_glm(problem, lambda coef: site.stats(fit, problem, coef))
    finally:
        site.release()
    model.meta["buildTimeNanosec"] = time.perf_counter_ns() - started
    return store_model(service, cid, pid, model_id, algo, model)


def store_model(service: ProjectService, cid: str, pid: str, model_id: str, algo: str,
                model: GlmModel | Any) -> dict[str, Any]:
    """Store (durably) and register a built model: `ProjectService.store_model`."""
    return service.store_model(cid, pid, model_id, algo, model)
