"""Models: build (an async job, 202 + Location), list, info, delete, predict.

Predict is a hot path: the raw body goes straight to `body.parse_rows`, and small frames
are answered inline (`context.run_sized`) rather than through a worker thread. A frame
whose attributes do not match the model is a `ModelError`, answered 400 naming them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..engine.errors import ModelError
from ..service import check_id
from .auth import body_of, signed_customer
from .body import parse_json, parse_rows
from .context import run_sized, run_sync, service_of
from .envelope import accepted, ok
from .jobs import job_path, runner_of
from .schemas import DATAFRAME, MLCONTEXT, body

router = APIRouter(prefix="/symetry/rest/{cid}/projects/{pid}", tags=["models"],
                   dependencies=[Depends(signed_customer)])


@router.post("/build", openapi_extra=body(MLCONTEXT), status_code=202,
             summary="Build a model from the project's statistics (202 + Location of the job)")
async def build(request: Request, cid: str, pid: str, modelid: str = Query(...),
                algo: str = Query(...)) -> Response:
    service = service_of(request)
    service.require_project(cid, pid)
    check_id(modelid, "model id")
    service.check_algo(algo)
    raw = body_of(request)
    context = parse_json(raw) if raw.strip() else {}
    if not isinstance(context, dict):
        raise ModelError("the body must be an MLContext JSON object")
    metrics = request.app.state.metrics

    def work() -> dict[str, Any]:
        info = service.build(cid, pid, modelid, algo, context)
        metrics.model_builds.labels(algo).inc()
        return {"modelInfo": info}

    job_id = await runner_of(request).submit(cid, "build", work)
    return accepted(job_path(cid, job_id), str(job_id))


@router.get("/models", summary="The project's model ids (stringList)")
async def list_models(request: Request, cid: str, pid: str) -> Response:
    return ok({"stringList": service_of(request).list_models(cid, pid)})


@router.get("/models/{modelid}", summary="A model's modelInfo")
async def model_info(request: Request, cid: str, pid: str, modelid: str) -> Response:
    return ok({"modelInfo": service_of(request).model_info(cid, pid, modelid)})


@router.delete("/models/{modelid}", summary="Delete a model")
async def delete_model(request: Request, cid: str, pid: str, modelid: str) -> Response:
    await run_sync(request, service_of(request).delete_model, cid, pid, modelid)
    return ok(status_string=f"Model {modelid} deleted")


@router.post("/predict/{modelid}", openapi_extra=body(DATAFRAME),
             summary="Predict the rows of a DataFrame (KSVSMap)")
async def predict(request: Request, cid: str, pid: str, modelid: str) -> Response:
    raw = body_of(request)
    service = service_of(request)
    content_type = request.headers.get("content-type")

    def work() -> dict[str, Any]:
        return service.predict(cid, pid, modelid, parse_rows(raw, content_type))

    return ok({"KSVSMap": await run_sized(request, len(raw), work)})
