"""Projects: create, list, info, delete, learn / forget (JSON, CSV, Arrow) and explore.

Explore answers `KSVDMap` (uni: per column statistics; bi: covar, linCorr, cond*);
explorepca answers `pcaValues`, `pcaVectors` and the whole decomposition under `pca`.

Learn and forget are the hot path: the raw body goes to `body.parse_rows` and the service
on a worker thread, and the answer (200 with the row count) is sent only once the
batch's statistics are committed. `?async=true` answers 202 with a job instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..engine.errors import FrameError
from .auth import body_of, signed_customer
from .body import ARROW, CSV, parse_json, parse_rows
from .context import run_sync, service_of
from .envelope import accepted, ok
from .jobs import job_path, runner_of
from .schemas import DATAFRAME, EXPLORE_CONTEXT, MLCONTEXT, body

router = APIRouter(prefix="/symetry/rest/{cid}", tags=["projects"],
                   dependencies=[Depends(signed_customer)])


@router.post("/projects", status_code=201, summary="Create a project (409 if it exists)")
async def create_project(request: Request, cid: str, pid: str = Query(...),
                         type: str | None = Query(None, pattern="^(cpu|gpu)$")) -> Response:
    await run_sync(request, service_of(request).create_project, cid, pid, type)
    return ok(status=201, status_string=f"Project created with id:{pid}")


@router.get("/projects/list", summary="This customer's project ids (stringList)")
async def list_projects(request: Request, cid: str) -> Response:
    return ok({"stringList": service_of(request).list_projects(cid)})


@router.get("/projects/{pid}/info", summary="Rows, attributes, columns, version, models")
async def project_info(request: Request, cid: str, pid: str) -> Response:
    info = await run_sync(request, service_of(request).project_info, cid, pid)
    return ok({"smlInfo": info})


@router.delete("/projects/{pid}", summary="Delete a project with its statistics and models")
async def delete_project(request: Request, cid: str, pid: str) -> Response:
    await run_sync(request, service_of(request).delete_project, cid, pid)
    return ok(status_string=f"Project {pid} deleted")


_ROWS_BODY = body(DATAFRAME, CSV, ARROW)


@router.post("/projects/{pid}/learn", openapi_extra=_ROWS_BODY,
             summary="Learn rows: JSON DataFrame, CSV (?types=C,B,...) or Arrow stream")
async def learn(request: Request, cid: str, pid: str,
                async_: bool = Query(False, alias="async"),
                types: str | None = Query(None)) -> Response:
    return await _update(request, cid, pid, "learn", async_, types)


@router.post("/projects/{pid}/forget", openapi_extra=_ROWS_BODY,
             summary="Forget rows learned before (the exact inverse of learn)")
async def forget(request: Request, cid: str, pid: str,
                 async_: bool = Query(False, alias="async"),
                 types: str | None = Query(None)) -> Response:
    return await _update(request, cid, pid, "forget", async_, types)


async def _update(request: Request, cid: str, pid: str, kind: str, async_: bool,
                  types: str | None) -> Response:
    service = service_of(request)
    service.require_project(cid, pid)  # an unknown project is refused before any job starts
    raw = body_of(request)
    content_type = request.headers.get("content-type")
    apply = service.learn if kind == "learn" else service.forget
    metrics = request.app.state.metrics

    def work() -> dict[str, Any]:
        rows = apply(cid, pid, parse_rows(raw, content_type, types))
        (metrics.rows_learned if kind == "learn" else metrics.rows_forgotten).inc(rows)
        return {"rows": rows}

    if async_:
        job_id = await runner_of(request).submit(cid, kind, work)
        return accepted(job_path(cid, job_id), str(job_id))
    return ok(await run_sync(request, work))


def _attributes(context: Any) -> list[str] | None:
    """The attributes an ExploreContext `{values: [MLContext]}` (or an MLContext) names."""
    if context is None:
        return None
    if not isinstance(context, dict):
        raise FrameError("an ExploreContext must be a JSON object {values: [MLContext]}")
    contexts = context.get("values", [context]) if "values" in context else [context]
    if not isinstance(contexts, list):
        raise FrameError("ExploreContext.values must be a list of MLContext objects")
    names: list[str] = []
    for c in contexts:
        if not isinstance(c, dict):
            raise FrameError("each ExploreContext value must be an MLContext object")
        for key in ("inputAttributeNames", "targetAttributeNames"):
            got = c.get(key) or []
            if not isinstance(got, list) or not all(isinstance(a, str) for a in got):
                raise FrameError(f"MLContext.{key} must be a list of strings")
            names.extend(a for a in got if a not in names)
    return names or None


def _context(request: Request) -> Any:
    raw = body_of(request)
    return parse_json(raw) if raw.strip() else None


@router.post("/projects/{pid}/explore", openapi_extra=body(EXPLORE_CONTEXT),
             summary="Univariate (uni) or bivariate (bi) statistics")
async def explore(request: Request, cid: str, pid: str,
                  metric: str = Query("uni", pattern="^(uni|bi)$")) -> Response:
    attributes = _attributes(_context(request))
    result = await run_sync(request, service_of(request).explore, cid, pid, metric, attributes)
    return ok({"KSVDMap": result})


@router.post("/projects/{pid}/explorepca", openapi_extra=body(MLCONTEXT),
             summary="Principal components (pcaValues, pcaVectors)")
async def explore_pca(request: Request, cid: str, pid: str,
                      k: int | None = Query(None, ge=1, le=100_000)) -> Response:
    attributes = _attributes(_context(request))
    result = await run_sync(request, service_of(request).explore_pca, cid, pid, attributes, k)
    # the spec's entities, plus the whole result (columns, count, explained variance, ...)
    return ok({"pcaValues": result.get("eigenvalues"), "pcaVectors": result.get("eigenvectors"),
               "pca": result})
