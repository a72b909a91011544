"""`create_app(settings) -> FastAPI`: the node's one composition root.

Assembly only, and all of it here: the store is opened, the service loaded (every project
and model back, interrupted jobs marked failed), the federation hub opened and plugged into
the service (source of peers' statistics, delete listener), the `FEDSTATS_*` bootstrap
planned, every router mounted (REST, WebSocket, federation), the one exception mapping
(`errors.install`) and metrics installed, and startup/shutdown ordered in the lifespan.
No facade mounts itself or registers its own error handler. What a route finds on
`app.state`:

    settings    Settings            service    ProjectService
    gate        api.transport.Gate (connections and bytes in flight, node-wide and per address)
    verifier    security Verifier   customers  {id: Customer}
    db          store Database      jobs       api.jobs.JobRunner
    metrics     api.metrics.Metrics executor   the worker ThreadPoolExecutor
    federation  federation Hub      bootstrap  federation Bootstrap | None

Unauthenticated: `/healthz`, `/readyz`, `/metrics`, `/docs`, `/openapi.json`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from ..engine.xp import gpu_available
from ..federation.bootstrap import engine_of, make_bootstrap
from ..federation.errors import BootstrapError
from ..federation.hub import Hub
from ..security.customers import Customer, load_customers
from ..security.signing import Verifier
from ..service import ProjectService
from ..settings import Settings
from ..store import JobStore, open_database
from . import errors, fedml, flow, health, jobs, jsonrpc, models, projects, ws
from .metrics import Metrics, MetricsMiddleware, metrics_endpoint
from .transport import Gate

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

    on_startup: list[Callable[[], Awaitable[None]]] = []
    on_shutdown: list[Callable[[], Awaitable[None]]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for fn in on_startup:
            await fn()
        try:
            yield
        finally:
            for fn in on_shutdown:
                await fn()
            app.state.executor.shutdown(wait=True)
            app.state.service.close()  # the kept-rows stores' directory locks
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
    state.gate = Gate(settings.limits, settings.max_body_bytes_reading)
    state.jobs = jobs.JobRunner(job_store, executor)
    state.metrics = metrics

    hub = Hub(settings.data_dir, state.service, default_engine=_default_engine(os.environ),
              limits=settings.limits)
    state.service.register_delete_listener(hub.forget_from_any_thread)
    state.federation = hub
    state.bootstrap = make_bootstrap(hub, os.environ, state.customers)
    on_startup.append(hub.startup)
    on_shutdown.append(hub.shutdown)
    if state.bootstrap is not None:  # after the hub's startup, stopped before the hub
        on_startup.append(state.bootstrap.startup)
        on_shutdown.insert(0, state.bootstrap.shutdown)

    errors.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], tags=["health"],
                      summary="Prometheus metrics")
    app.include_router(projects.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(ws.router)
    app.include_router(fedml.router)
    jsonrpc.mount(app)  # the model store (/jsonrpc): state.modelstore
    on_shutdown.append(flow.mount(app).shutdown)  # FATE-Flow v1 (/v1): state.flow
    return app


def _default_engine(env: Mapping[str, str]) -> str:
    """The engine of new projects FEDSTATS_ENGINE asks for, cpu where it cannot be had."""
    try:
        engine = engine_of(env)
    except BootstrapError as e:
        log.error("%s: new projects use cpu", e)
        return "cpu"
    if engine == "gpu" and not gpu_available():
        log.warning("FEDSTATS_ENGINE=cupy but this node has no CUDA GPU/CuPy: projects use cpu")
        return "cpu"
    return engine
