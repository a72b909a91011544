"""The `/v1/tracking/...` routes (§2.3): components, metrics, parameters, model, output data.

Every call names a job, a component and a (role, party); without the role and party the
initiator's are used, as FATE does. Output data lives as CSV at its party (this node);
`output/data/download` packs it as FATE's tar.gz (`data.csv`, `data.meta`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...service.flowjobs import FlowJobs
from ...service.flowjobs.frames import output_csv, output_rows
from ...store.flowjobs import FlowJobStore
from . import remote
from .envelope import ARGUMENT_ERROR, EXCEPTION_ERROR, FlowError, respond
from .jobs import attachment, error_response, jobs_of, tar_gz
from .routes import flow_handler, require

router = APIRouter(prefix="/v1", tags=["fate-flow"])


def _task(store: FlowJobStore, conf: dict[str, Any]) -> tuple[str, str, str, str, dict[str, Any]]:
    require(conf, "job_id", "component_name")
    job = store.job(str(conf["job_id"]))
    if job is None:
        raise FlowError(ARGUMENT_ERROR, f"no job {conf['job_id']} on this node")
    role = str(conf.get("role") or job["initiator_role"])
    party = str(conf.get("party_id") or job["initiator_party"])
    return job["job_id"], str(conf["component_name"]), role, party, job


@router.post("/tracking/component/list")
@flow_handler
async def component_list(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    job = jobs_of(request).store.job(str(conf["job_id"]))
    if job is None:
        return respond(EXCEPTION_ERROR, "No job matched, please make sure the job id is valid.")
    return respond(data={"components": list(job["dsl"]["components"])})


@router.post("/tracking/component/metrics")
@flow_handler
async def metrics(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    job_id, cpn, role, party, _ = _task(store, conf)
    out: dict[str, list[str]] = {}
    for ns, name, _, _ in store.metrics(job_id, cpn, role, party):
        out.setdefault(ns, []).append(name)
    return respond(data=out) if out else respond(retmsg="no data", data={})


@router.post("/tracking/component/metric/all")
@flow_handler
async def metric_all(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    job_id, cpn, role, party, _ = _task(store, conf)
    out: dict[str, dict[str, Any]] = {}
    for ns, name, meta, data in store.metrics(job_id, cpn, role, party):
        out.setdefault(ns, {})[name] = {"data": data, "meta": meta}
    return respond(data=out) if out else respond(retmsg="no data", data={})


@router.post("/tracking/component/metric_data")
@flow_handler
async def metric_data(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    job_id, cpn, role, party, _ = _task(store, conf)
    require(conf, "metric_namespace", "metric_name")
    for ns, name, meta, data in store.metrics(job_id, cpn, role, party):
        if ns == conf["metric_namespace"] and name == conf["metric_name"]:
            return respond(data=data, meta=meta)
    return respond(retmsg="no data", data=[], meta={})


@router.post("/tracking/component/parameters")
@flow_handler
async def parameters(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    job_id, cpn, role, party, _ = _task(store, conf)
    tasks, _ = store.tasks({"job_id": job_id, "component": cpn, "role": role, "party_id": party})
    if not tasks:
        return respond(ARGUMENT_ERROR, "can not found this task")
    return respond(data={"module": tasks[0]["module"], "ComponentParam": tasks[0]["params"]})


@router.post("/tracking/component/output/model")
@flow_handler
async def output_model(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    job_id, cpn, role, party, _ = _task(store, conf)
    model = store.output(job_id, cpn, role, party, "model")
    if model is None:
        return respond(retmsg="no data", data={})
    meta = store.output(job_id, cpn, role, party, "model_meta") or {}
    return respond(data=model, meta=meta)


def _data_meta(jobs: FlowJobs, conf: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    store = jobs.store
    if remote.output_here(jobs, conf):
        # a job the federation's admin ran: this party's output data was written here,
        # beside its rows, and is served from here (the admin holds only its size)
        job_id, cpn, role, party = (str(conf[k]) for k in ("job_id", "component_name", "role",
                                                           "party_id"))
        path = jobs.output_path(job_id, role, party, cpn)
        meta = {"path": str(path)} if path.is_file() else None
    else:
        job_id, cpn, role, party, _ = _task(store, conf)
        meta = store.output(job_id, cpn, role, party, "data_meta")
    return meta, f"job_{job_id}_{cpn}_{role}_{party}_output_data"


@router.post("/tracking/component/output/data")
@flow_handler
async def output_data(request: Request, conf: dict[str, Any]) -> Response:
    meta, _ = _data_meta(jobs_of(request), conf)
    if meta is None or not Path(meta["path"]).is_file():
        return respond(retmsg="no data", data=[])
    limit = int(conf.get("limit", 100) or 100)
    header, rows, total = await run_in_threadpool(output_rows, Path(meta["path"]), limit)
    return respond(data=[rows], meta={"header": [header], "total": [total], "names": ["data"]})


@router.get("/tracking/component/output/data/download")  # FATE sends both: one route each (their own OpenAPI ids)
@router.post("/tracking/component/output/data/download")
@flow_handler
async def output_data_download(request: Request, conf: dict[str, Any]) -> Response:
    meta, name = _data_meta(jobs_of(request), conf)
    limit = int(conf.get("limit", -1) if conf.get("limit") is not None else -1)
    if limit == 0:
        return error_response(210, "limit is 0")
    if meta is None or not Path(meta["path"]).is_file():
        return error_response(210, "no data")
    path = Path(meta["path"])

    def pack() -> bytes:
        body, header = output_csv(path, limit)
        return tar_gz({"data.csv": body, "data.meta": json.dumps({"header": header}).encode()})

    return attachment(await run_in_threadpool(pack), f"{name}.tar.gz")


@router.post("/tracking/component/output/data/table")
@flow_handler
async def output_data_table(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id", "role", "party_id", "component_name")
    meta, _ = _data_meta(jobs_of(request), conf)
    if meta is None:
        return respond(EXCEPTION_ERROR, "No found table, please check if the parameters are correct")
    return respond(data=[{"data_name": "data", "table_name": "data",
                          "table_namespace": f"output_data_{conf['job_id']}_"
                                             f"{conf['component_name']}_0"}])


@router.get("/tracking/component/summary/download")  # FATE sends both: one route each (their own OpenAPI ids)
@router.post("/tracking/component/summary/download")
@flow_handler
async def summary(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    job_id, cpn, role, party, _ = _task(store, conf)
    body = store.output(job_id, cpn, role, party, "summary")
    if body is None:
        return error_response(210, "no data")
    if conf.get("filename"):
        return attachment(orjson.dumps(body, option=orjson.OPT_INDENT_2), str(conf["filename"]),
                          "application/json")
    return respond(data=body)
