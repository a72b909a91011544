"""Federation over NATS JetStream: contracts, schedules, wire format, the agent, the REST facade.

`install(app)` is what the node's `create_app` calls: it opens the node's federations
(`Hub`, in `<data_dir>/federation.sqlite`), registers them as a source of peers'
statistics with the project service, mounts the `fedml` router, maps federation errors
to 400 envelopes, starts/stops the agents with the app, makes a deleted project's agent
stop and be forgotten, and runs the `FEDSTATS_*` bootstrap (see `bootstrap`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .errors import FederationError, NotAdmin

__all__ = ["install"]

log = logging.getLogger("fedstats.federation")


def install(app: Any) -> None:
    """Plug the federation into a node app built by `fedstats.node.api.app.create_app`."""
    from starlette.requests import Request
    from starlette.responses import Response

    from ..api import fedml
    from ..api.envelope import error
    from .bootstrap import engine_of, install_bootstrap
    from .errors import BootstrapError
    from .hub import Hub

    try:
        engine = engine_of(os.environ)
    except BootstrapError as e:
        log.error("%s: new projects use cpu", e)
        engine = "cpu"
    hub = Hub(app.state.settings.data_dir, app.state.service, default_engine=_usable(engine))
    app.state.federation = hub
    app.state.on_startup.append(hub.startup)
    app.state.on_shutdown.append(hub.shutdown)
    _forget_deleted_projects(app.state.service, hub)
    app.state.bootstrap = install_bootstrap(app, hub, os.environ)

    async def federation_error(request: Request, exc: Exception) -> Response:
        kind = "not_admin" if isinstance(exc, NotAdmin) else "federation"
        return error(400, str(exc), kind)

    app.add_exception_handler(FederationError, federation_error)
    app.include_router(fedml.router)


def _usable(engine: str) -> str:
    from ..engine.xp import gpu_available

    if engine == "gpu" and not gpu_available():
        log.warning("FEDSTATS_ENGINE=cupy but this node has no CUDA GPU/CuPy: projects use cpu")
        return "cpu"
    return engine


def _forget_deleted_projects(service: Any, hub: Any) -> None:
    """Deleting a project (by any facade) first stops its agent and drops its federation."""
    service.register_delete_listener(hub.forget_from_any_thread)
