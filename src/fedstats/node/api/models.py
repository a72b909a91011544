"""Models: build (an async job, 202 + Location + sym-job-id), list, info, delete, predict.

Predictions answer the reference's KSVSMap, `{"values": [{"res": ...}, ...]}`, one map of
strings per input row (the engine builds it). Model info answers Appendix A's ModelInfo:
its fields, plus `modelId`, `attributeIndexes` and `targetindexes` (indexes into the
project's attributes, which only this layer sees), beside fedstats' own fields.

Documented endpoints and algorithm ids this node does not offer are answered 400 naming
them (`NOT_OFFERED`, `REFERENCE_ALGORITHMS`), never a bare 404 or a 500.

`lr` and `poisson` are fitted from kept rows by Newton rounds (docs/glm.md): on a
federated project by the federation's rounds (`Hub.fit_glm`, the admin coordinating),
otherwise on this node's own rows (`service.glm.build_local`); both as the same job.

Predict is a hot path: the raw body goes straight to `body.parse_rows`, and small frames
are answered inline (`context.run_sized`) rather than through a worker thread. A frame
whose attributes do not match the model is a `ModelError`, answered 400 naming them.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..engine.errors import ModelError
from ..federation.hub import Hub
from ..service import BadRequest, check_id
from ..service import glm as glm_builds
from .auth import body_of, signed_customer
from .body import parse_json, parse_rows
from .context import limits_of, run_sized, run_sync, service_of
from .envelope import accepted, ok
from .jobs import job_path, runner_of
from .schemas import AUTOSELECT, DATAFRAME, MLCONTEXT, body

router = APIRouter(prefix="/symetry/rest/{cid}/projects/{pid}", tags=["models"],
                   dependencies=[Depends(signed_customer)])


@router.post("/build", openapi_extra=body(MLCONTEXT), status_code=202,
             summary="Build a model from the project's statistics (202 + Location of the job)")
async def build(request: Request, cid: str, pid: str, modelid: str = Query(...),
                algo: str = Query(...)) -> Response:
    service = service_of(request)
    service.require_project(cid, pid)
    check_id(modelid, "model id")
    if algo in REFERENCE_ALGORITHMS:
        from ..engine.models import ALGORITHMS  # lazily: the numeric stack loads at first use

        raise BadRequest(
            f"algo {algo!r} ({REFERENCE_ALGORITHMS[algo]}) is a reference algorithm this node "
            f"does not offer: use one of {', '.join([*ALGORITHMS, 'lr', 'poisson'])}")
    rows = glm_builds.is_glm(algo)
    hub: Hub = request.app.state.federation
    if not rows:
        service.check_algo(algo)
    else:
        await run_sync(request, _check_glm, hub, service, cid, pid, algo)
    raw = body_of(request)
    context = parse_json(raw) if raw.strip() else {}
    if not isinstance(context, dict):
        raise ModelError("the body must be an MLContext JSON object")
    metrics = request.app.state.metrics

    def work() -> dict[str, Any]:
        if not rows:
            info = service.build(cid, pid, modelid, algo, context)
        elif hub.federated(cid, pid):
            info = hub.fit_glm(cid, pid, modelid, algo, context)
        else:
            info = glm_builds.build_local(service, cid, pid, modelid, algo, context)
        metrics.model_builds.labels(algo).inc()
        return {"modelInfo": _entity(service, cid, pid, info)}

    job_id = await runner_of(request).submit(cid, "build", work)
    return accepted(job_path(cid, job_id), str(job_id))


def _check_glm(hub: Hub, service: Any, cid: str, pid: str, algo: str) -> None:
    """Refuse at once what the job would: a peer's federated fit (403), no kept rows (400)."""
    if hub.federated(cid, pid):
        hub.admin_agent(cid, pid, f"fit {algo} across the federation")
    elif not service.keeps_rows(cid, pid):
        raise glm_builds.no_kept_rows(pid, algo)


@router.post("/autoSelect", status_code=202, openapi_extra=body(AUTOSELECT),
             summary="Build the best model for a task, scored on a validation DataFrame")
async def auto_select(request: Request, cid: str, pid: str, modelid: str = Query(...),
                      task: str = Query(...)) -> Response:
    """Body `{"dataframe": DataFrame, "mlcontext": MLContext}` (auto-select-with-symetryml.md,
    "Auto Select DataFrame Rest API"); a job whose result is the chosen model's ModelInfo
    and, as a KSVSMap row, what was chosen and its score (`engine.models.select`)."""
    service = service_of(request)
    service.require_project(cid, pid)
    check_id(modelid, "model id")
    raw = body_of(request)
    spec = parse_json(raw) if raw.strip() else None
    if not isinstance(spec, dict) or not isinstance(spec.get("dataframe"), dict):
        raise ModelError('the body must be {"dataframe": DataFrame, "mlcontext": MLContext}')
    unknown = set(spec) - {"dataframe", "mlcontext"}
    if unknown:
        raise ModelError(f"autoSelect body has unknown field(s): {', '.join(sorted(unknown))}")
    validation = parse_rows(orjson.dumps(spec["dataframe"]), "application/json", None,
                            limits_of(request))
    metrics = request.app.state.metrics

    def work() -> dict[str, Any]:
        from ..engine.models.select import auto_select as select

        chosen = select(task, service.effective_accumulator(cid, pid), spec.get("mlcontext"),
                        validation)
        info = service.build(cid, pid, modelid, chosen.algo, chosen.context)
        metrics.model_builds.labels(chosen.algo).inc()
        return {"modelInfo": _entity(service, cid, pid, info),
                "KSVSMap": {"values": [chosen.summary()]}}

    job_id = await runner_of(request).submit(cid, "autoSelect", work)
    return accepted(job_path(cid, job_id), str(job_id))


@router.get("/models", summary="The project's model ids (stringList)")
async def list_models(request: Request, cid: str, pid: str) -> Response:
    return ok({"stringList": {"values": service_of(request).list_models(cid, pid)}})


@router.get("/models/{modelid}", summary="A model's modelInfo")
async def model_info(request: Request, cid: str, pid: str, modelid: str) -> Response:
    service = service_of(request)

    def work() -> dict[str, Any]:
        return _entity(service, cid, pid, service.model_info(cid, pid, modelid))

    return ok({"modelInfo": await run_sync(request, work)})


def _entity(service: Any, cid: str, pid: str, info: dict[str, Any]) -> dict[str, Any]:
    """ModelInfo's project-relative fields added to the model's own summary."""
    attributes = list(service.project_info(cid, pid).get("attributeNames") or [])
    where = {a: i for i, a in enumerate(attributes)}
    return {
        "modelId": info.get("id"),
        **info,
        "attributeIndexes": [where.get(a, -1) for a in info.get("attributeNames", [])],
        "targetindexes": [where.get(a, -1) for a in info.get("targetNames", [])],
    }


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
    limits = limits_of(request)

    def work() -> dict[str, Any]:
        return service.predict(cid, pid, modelid, parse_rows(raw, content_type, None, limits))

    return ok({"KSVSMap": await run_sized(request, len(raw), work)})


# Documented algorithm ids (modeling-api.md, "Model Algorithm Id") not offered here.
REFERENCE_ALGORITHMS = {
    "covest": "Covariance Estimator", "ecod": "ECOD", "evt": "EVT", "hmm": "Hidden Markov",
    "km": "Kaplan Meier", "kmeans": "KMeans Clustering",
    "lsvm": "Linear SVM",
    "lsvr": "Linear Support Vector Regression", "mc": "Markov Chains",
    "plsq": "Partial Least Square Regression", "powerreg": "Power Regression",
    "rf_classifier": "Online Random Forest Classifier",
    "rf_regressor": "Online Random Forest Regression", "rf_anomaly": "Random Forest anomaly",
    "oospca": "out of sample PCA anomaly", "hba": "histogram anomaly",
}

# Documented endpoints under /projects/{pid} not offered here: (method, path) -> where
NOT_OFFERED = {
    ("POST", "/autoSelect/{dsid}"): "auto-select-with-symetryml.md (data sources)",
    ("POST", "/reduce"): "modeling-api.md, Features Reduction Model Building",
    ("POST", "/kmeansOptimize"): "modeling-api.md, KMeans Clustering Model Optimization",
    ("POST", "/learnpredict/{modelid}"): "prediction-api.md, LearnPredict",
    ("POST", "/dss/predict/{modelid}"): "prediction-api.md, DS Predict",
    ("GET", "/models/{modelid}/code"): "modeling-api.md, Get Code for Model",
    ("POST", "/{modelid}/evtwrapper"): "modeling-api.md, EVT Wrapper Management",
    ("DELETE", "/{modelid}/evtwrapper"): "modeling-api.md, EVT Wrapper Management",
}


def _not_offered(method: str, path: str, where: str) -> None:
    name = path.strip("/").split("/")[0] if not path.startswith("/{") else "evtwrapper"

    async def refuse(request: Request, cid: str, pid: str) -> Response:
        raise BadRequest(f"{name} ({method} .../projects/{{pid}}{path}, {where}) is a "
                         "reference endpoint this node does not offer: see docs/conformance.md")

    router.add_api_route(path, refuse, methods=[method], include_in_schema=False,
                         name=f"not_offered_{method.lower()}_{name}_{len(path)}")


for (_method, _path), _where in NOT_OFFERED.items():
    _not_offered(_method, _path, _where)
