"""Federation over NATS JetStream: contracts, schedules, wire format, the agent, the REST facade.

`install(app)` is what the node's `create_app` calls: it opens the node's federations
(`Hub`, in `<data_dir>/federation.sqlite`), registers them as a source of peers'
statistics with the project service, mounts the `fedml` router, maps federation errors
to 400 envelopes, and starts/stops the agents with the app.
"""

from __future__ import annotations

from typing import Any

from .errors import FederationError, NotAdmin

__all__ = ["install"]


def install(app: Any) -> None:
    """Plug the federation into a node app built by `fedstats.node.api.app.create_app`."""
    from starlette.requests import Request
    from starlette.responses import Response

    from ..api import fedml
    from ..api.envelope import error
    from .hub import Hub

    hub = Hub(app.state.settings.data_dir, app.state.service)
    app.state.federation = hub
    app.state.on_startup.append(hub.startup)
    app.state.on_shutdown.append(hub.shutdown)

    async def federation_error(request: Request, exc: Exception) -> Response:
        kind = "not_admin" if isinstance(exc, NotAdmin) else "federation"
        return error(400, str(exc), kind)

    app.add_exception_handler(FederationError, federation_error)
    app.include_router(fedml.router)
