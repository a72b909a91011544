"""The `/v1/model/...` routes (§2.5): deploy (a child version), query, predict DSL and conf,
load and bind (recorded on the model: serving predictions by service id is not offered yet).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...service.flowjobs import JobNotFound, dag
from .envelope import ARGUMENT_ERROR, EXCEPTION_ERROR, respond
from .jobs import attachment, error_response, jobs_of
from .routes import flow_handler, new_job_id, require
from .rows import model_row

router = APIRouter(prefix="/v1", tags=["fate-flow"])


def _cpn_list(conf: dict[str, Any]) -> list[str] | None:
    value = conf.get("cpn_list")
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return [c.strip() for c in value.strip("[]").replace("'", "").replace('"', "").split(",")
                if c.strip()]
    return [str(c) for c in value]


@router.post("/model/deploy")
@flow_handler
async def deploy(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "model_id", "model_version")
    dsl = conf.get("predict_dsl") or conf.get("dsl")
    if isinstance(dsl, str):
        dsl = orjson.loads(dsl)
    try:
        data = await run_in_threadpool(jobs_of(request).deploy, str(conf["model_id"]),
                                       str(conf["model_version"]), new_job_id(), _cpn_list(conf),
                                       dsl)
    except JobNotFound as e:
        return error_response(404, str(e))
    return respond(data=data)


def _models(request: Request, conf: dict[str, Any]) -> list[dict[str, Any]]:
    where = {k: str(conf[k]) for k in ("model_id", "model_version", "role", "party_id")
             if conf.get(k) not in (None, "")}
    return jobs_of(request).store.models(where)


@router.post("/model/query")
@flow_handler
async def query(request: Request, conf: dict[str, Any]) -> Response:
    rows = _models(request, conf)
    if not rows:
        return respond(EXCEPTION_ERROR, "Query model info failed, cannot find model from db.")
    store = jobs_of(request).store
    out = []
    for m in rows:
        job = store.job(m["job_id"])
        init = (job["initiator_role"], str(job["initiator_party"])) if job else ("", "")
        row = model_row(m, init)
        filters = conf.get("query_filters")
        if isinstance(filters, list) and filters:
            row = {k: v for k, v in row.items() if k[2:] in filters}
        out.append(row)
    return respond(retmsg="Query model info from db success.", data=out)


@router.post("/model/get/predict/dsl")
@flow_handler
async def predict_dsl(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "model_id", "model_version")
    rows = _models(request, {k: conf[k] for k in ("model_id", "model_version")})
    if not rows:
        return error_response(210, "No model found")
    dsl = rows[0]["inference_dsl"]
    if conf.get("filename"):
        return attachment(orjson.dumps(dsl, option=orjson.OPT_INDENT_2), str(conf["filename"]),
                          "application/json")
    return respond(data=dsl)


@router.post("/model/get/predict/conf")
@flow_handler
async def predict_conf(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "model_id", "model_version")
    rows = _models(request, {k: conf[k] for k in ("model_id", "model_version")})
    if not rows:
        return error_response(210, "No model found")
    m = rows[0]
    readers = [n for n, c in m["inference_dsl"]["components"].items() if c["module"] == "Reader"]
    body = dag.predict_conf(m["train_conf"]["role"], m["train_conf"]["initiator"],
                            m["model_id"], m["model_version"], readers)
    if conf.get("filename"):
        return attachment(orjson.dumps(body, option=orjson.OPT_INDENT_2), str(conf["filename"]),
                          "application/json")
    return respond(data=body)


def _model_key(request: Request, conf: dict[str, Any]) -> tuple[str, str] | None:
    params = conf.get("job_parameters") or {}
    if conf.get("job_id"):
        job = jobs_of(request).store.job(str(conf["job_id"]))
        return (job["model_id"], job["model_version"]) if job else None
    if params.get("model_id") and params.get("model_version"):
        return str(params["model_id"]), str(params["model_version"])
    return None


@router.post("/model/load")
@flow_handler
async def load(request: Request, conf: dict[str, Any]) -> Response:
    key = _model_key(request, conf)
    rows = _models(request, {"model_id": key[0], "model_version": key[1]}) if key else []
    if not key or not rows:
        return respond(ARGUMENT_ERROR, "failed: no such model")
    jobs_of(request).store.update_models(*key, loaded=True)
    data: dict[str, Any] = {"detail": {}}
    for r in rows:
        if r["role"] == "arbiter":
            continue
        data.setdefault(r["role"], {})[str(r["party_id"])] = 0
        data["detail"].setdefault(r["role"], {})[str(r["party_id"])] = {"retcode": 0,
                                                                       "retmsg": "success"}
    return respond(data=data, job_id=key[1])


@router.post("/model/bind")
@flow_handler
async def bind(request: Request, conf: dict[str, Any]) -> Response:
    if not conf.get("service_id"):
        return respond(ARGUMENT_ERROR, "no service id")
    key = _model_key(request, conf)
    if not key or not _models(request, {"model_id": key[0], "model_version": key[1]}):
        return respond(ARGUMENT_ERROR, "failed: no such model")
    jobs_of(request).store.update_models(*key, service=str(conf["service_id"]))
    return respond(retmsg=f"service id is {conf['service_id']}")
