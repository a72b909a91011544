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
from ..engine.explore import context_attributes
from .auth import body_of, signed_customer
from .body import ARROW, CSV, parse_json, parse_rows
from .context import limits_of, run_sync, service_of
from .envelope import accepted, ok
from .jobs import job_path, runner_of
from .schemas import DATAFRAME, EXPLORE_CONTEXT, MLCONTEXT, body

router = APIRouter(prefix="/symetry/rest/{cid}", tags=["projects"],
                   dependencies=[Depends(signed_customer)])


# Project types the reference documents that this node does not offer (projects API).
REFERENCE_TYPES = ("sequence", "partition", "mgpuf", "mgpud")
# Project parameters (query or body) read here; every project persists and autosaves.
_ALWAYS_TRUE = ("persist", "sml_project_autosave")
_NO_EFFECT = ("enableHistogram", "enable_histogram")  # no density API here: accepted
_KEEP_ROWS = ("sml_project_keep_rows", "keepRows")  # rows kept for GLM builds (service/rows.py)


@router.post("/projects", status_code=201, summary="Create a project (409 if it exists)")
async def create_project(request: Request, cid: str, pid: str = Query(...),
                         type: str | None = Query(None),
                         persist: str | None = Query(None),
                         enableHistogram: str | None = Query(None),
                         keepRows: str | None = Query(None)) -> Response:
    if type is not None and type not in ("cpu", "gpu"):
        offered = "a reference project type this node does not offer" \
            if type in REFERENCE_TYPES else "not a project type"
        raise FrameError(f"type {type!r} is {offered}: use cpu or gpu")
    options = _options(request)
    options.update({k: v for k, v in (("persist", persist),
                                      ("enableHistogram", enableHistogram),
                                      ("keepRows", keepRows)) if v is not None})
    for key, value in options.items():
        if key not in (*_ALWAYS_TRUE, *_NO_EFFECT, *_KEEP_ROWS):
            raise FrameError(f"project parameter {key!r} is not offered by this node "
                             "(see docs/conformance.md)")
        if str(value).strip().lower() not in ("true", "false"):
            raise FrameError(f"project parameter {key!r} must be 'true' or 'false'")
        if key in _ALWAYS_TRUE and str(value).strip().lower() != "true":
            raise FrameError(f"project parameter {key!r} must be true: every project on "
                             "this node is saved durably after each learn")
    keep = any(str(options.get(k, "false")).strip().lower() == "true" for k in _KEEP_ROWS)
    await run_sync(request, service_of(request).create_project, cid, pid, type, keep)
    return ok(status=201, status_string=f"Project Created with id:{pid}")


def _options(request: Request) -> dict[str, Any]:
    raw = body_of(request)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise FrameError("the body of a project creation must be a JSON object of parameters")
    return dict(body)


@router.get("/projects/list", summary="This customer's project ids (stringList)")
async def list_projects(request: Request, cid: str) -> Response:
    return ok({"stringList": {"values": service_of(request).list_projects(cid)}})


@router.get("/projects/{pid}/info", summary="Rows, attributes, columns, version, models")
async def project_info(request: Request, cid: str, pid: str) -> Response:
    service = service_of(request)

    def work() -> dict[str, Any]:
        info = service.project_info(cid, pid)
        models = list(info.get("models") or [])
        names = list(info.get("attributeNames") or [])
        # Appendix A's ProjectInfo fields, then fedstats' own (rows, columns, version, ...)
        return {
            "pid": pid,
            "modelsList": models,
            "modelTypeList": [service.model_info(cid, pid, m).get("modelType", "")
                              for m in models],
            "attributeIndexes": list(range(len(names))),
            "loaded": "true",
            "persisted": "true",
            "autoSave": "true",
            "histogramEnabled": "false",
            **info,
        }

    return ok({"smlInfo": await run_sync(request, work)})


@router.delete("/projects/{pid}", summary="Delete a project with its statistics and models")
async def delete_project(request: Request, cid: str, pid: str) -> Response:
    await run_sync(request, service_of(request).delete_project, cid, pid)
    return ok(status_string=f"deleted Project with id[{pid}] from Customer[{cid}] store")


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
    limits = limits_of(request)
    metrics = request.app.state.metrics

    def work() -> dict[str, Any]:
        rows = apply(cid, pid, parse_rows(raw, content_type, types, limits))
        (metrics.rows_learned if kind == "learn" else metrics.rows_forgotten).inc(rows)
        return {"rows": rows}

    if async_:
        job_id = await runner_of(request).submit(cid, kind, work)
        return accepted(job_path(cid, job_id), str(job_id))
    return ok(await run_sync(request, work))


@router.post("/projects/{pid}/explore", openapi_extra=body(EXPLORE_CONTEXT),
             summary="Univariate (uni) or bivariate (bi) statistics")
async def explore(request: Request, cid: str, pid: str,
                  metric: str = Query("uni", pattern="^(uni|bi)$")) -> Response:
    # parsed on a worker thread: a client's list is never walked on the event loop
    attributes = await run_sync(request, context_attributes, body_of(request), limits_of(request))
    result = await run_sync(request, service_of(request).explore, cid, pid, metric, attributes)
    return ok({"KSVDMap": result})


@router.post("/projects/{pid}/explorepca", openapi_extra=body(MLCONTEXT),
             summary="Principal components (pcaValues, pcaVectors)")
async def explore_pca(request: Request, cid: str, pid: str,
                      k: int | None = Query(None, ge=1, le=100_000)) -> Response:
    attributes = await run_sync(request, context_attributes, body_of(request), limits_of(request))
    result = await run_sync(request, service_of(request).explore_pca, cid, pid, attributes, k)
    # the spec's entities, plus the whole result (columns, count, explained variance, ...)
    return ok({"pcaValues": result.get("eigenvalues"), "pcaVectors": result.get("eigenvectors"),
               "pca": result})
