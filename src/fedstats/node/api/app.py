"""`create_app(settings) -> FastAPI`: the node's REST + WebSocket app over its project store.

Assembly only: the store is opened, the service loaded (every project and model back,
interrupted jobs marked failed), the routers mounted, the exception mapping and metrics
installed. Then the federation's `install(app)` is called with these already on
`app.state`:

    settings   Settings            service    ProjectService
    body_budget api.auth.BodyBudget (bytes of request bodies being read, node-wide)
    verifier   security Verifier   customers  {id: Customer}
    db         store Database      jobs       api.jobs.JobRunner
    metrics    api.metrics.Metrics executor   the worker ThreadPoolExecutor
    on_startup / on_shutdown       lists of async callables run by the lifespan, in order

Unauthenticated: `/healthz`, `/readyz`, `/metrics`, `/docs`, `/openapi.json`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from ..security.customers import Customer, load_customers
from ..security.signing import Verifier
from ..service import ProjectService
from ..settings import Settings
from ..store import JobStore, open_database
from . import errors, health, jobs, models, projects, ws
from .auth import BodyBudget
from .metrics import Metrics, MetricsMiddleware, metrics_endpoint

log = logging.getLogger(__name__)


class NodeApp(FastAPI):
    """FastAPI with `errors.CatchAll` outside every middleware (ServerErrorMiddleware too)."""

    def build_middleware_stack(self) -> ASGIApp:
        return errors.CatchAll(super().build_middleware_stack())


def create_app(settings: Settings, customers: Mapping[str, Customer] | None = None) -> FastAPI:
    """The node's app; `customers` defaults to `settings.customers_file` (or the env var)."""
    if customers is None:
        path = str(settings.customers_file) if settings.customers_file else None
        customers = load_customers(path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for fn in list(app.state.on_startup):
            await fn()
        try:
            yield
        finally:
            for fn in list(app.state.on_shutdown):
                await fn()
            app.state.executor.shutdown(wait=True)
            app.state.db.close()

    app = NodeApp(title="fedstats node", version="0.1.0", lifespan=lifespan,
                  description="Signed REST + WebSocket API of a fedstats node (SymetryML "
                              "style). Every /symetry request is signed: see the README.")
    db = open_database(settings.db_path)
    executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="fedstats-work")
    job_store = JobStore(db)
    interrupted = job_store.fail_interrupted()
    if interrupted:
        log.warning("%d job(s) were running when the node stopped: marked failed", interrupted)
    metrics = Metrics()
    state = app.state
    state.settings = settings
    state.customers = dict(customers)
    state.verifier = Verifier(state.customers)
    state.db = db
    state.service = ProjectService(db, settings)
    state.executor = executor
    state.body_budget = BodyBudget(settings.max_body_bytes_reading)
    state.jobs = jobs.JobRunner(job_store, executor)
    state.metrics = metrics
    state.on_startup = []
    state.on_shutdown = []

    errors.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], tags=["health"],
                      summary="Prometheus metrics")
    app.include_router(projects.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(ws.router)
    _install_federation(app)
    return app


def _install_federation(app: FastAPI) -> None:
    """Plug the federation in (imported here: the federation's router imports this package)."""
    from ..federation import install

    install(app)
