"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store is open).

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
        return ok({"status": "ready"})
    return error(503, "the project store is not open", "not_ready")
