"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store is open).

`/readyz` also lists `unavailableProjects` (customer, project, reason): projects whose
stored statistics would not load at start. The node serves every other project, so it
stays ready; those answer 503 until deleted.

Both are unauthenticated, like `/metrics` and the OpenAPI document: probes carry no keys.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from .envelope import error, ok

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Response:
    return ok({"status": "alive"})


@router.get("/readyz", summary="Readiness: the project store answers")
async def readyz(request: Request) -> Response:
    if request.app.state.db.ping():
        return ok({"status": "ready",
                   "unavailableProjects": request.app.state.service.unavailable_projects()})
    return error(503, "the project store is not open", "not_ready")
