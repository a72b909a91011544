"""The `/v1/job/...` routes (§2.2): submit, query, list, stop, rerun, config, log, tasks.

A submission is checked here (the DSL v2 graph and the runtime conf, api/flow/dsl.py),
then handed to the node's `FlowJobs`, which answers once the job is durable and queued;
it then runs in the background and clients poll `job/query`. A predict job's DSL is the
deployed model's. Download endpoints answer files with HTTP 200 and their errors with the
HTTP status FATE uses (404 for a job without logs).
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...service.flowjobs import FlowJobs, JobNotFound, JobRefused, dag
from ...service.flowjobs import conf as confs
from . import remote
from .dsl import check_conf, check_dsl
from .envelope import ARGUMENT_ERROR, DATA_ERROR, OPERATING_ERROR, FlowError, respond
from .routes import flow_handler, flow_state, new_job_id, require
from .rows import job_rows, list_row, task_row

router = APIRouter(prefix="/v1", tags=["fate-flow"])


def jobs_of(request: Request) -> FlowJobs:
    jobs = flow_state(request).jobs
    assert jobs is not None
    return jobs


def error_response(code: int, msg: str) -> Response:
    """FATE's `error_response`: the HTTP status is the code."""
    return respond(code, msg, status=code)


def attachment(data: bytes, filename: str, media: str = "application/x-tar") -> Response:
    # unquoted filename: the clients parse `filename=(.+)`
    return Response(data, media_type=media,
                    headers={"Content-Disposition": f"attachment; filename={filename}"})


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@router.post("/job/submit")
@flow_handler
async def job_submit(request: Request, conf: dict[str, Any]) -> Response:
    """Check the DSL v2 and runtime conf, then queue the job (it runs in the background)."""
    jobs = jobs_of(request)
    runtime: Any = conf.get("job_runtime_conf", conf.get("runtime_conf"))
    dsl: Any = conf.get("job_dsl", conf.get("dsl"))
    if runtime in (None, ""):
        require(conf, "job_runtime_conf")
    parties = check_conf(runtime)
    common = confs.job_params(runtime)
    if common.get("job_type", "train") == "predict":
        if not isinstance(dsl, dict) or not dsl.get("components"):
            try:
                dsl = jobs.predict_dsl_of(str(common.get("model_id")),
                                          str(common.get("model_version")))
            except JobRefused as e:
                raise FlowError(OPERATING_ERROR, str(e)) from None
    elif str(runtime.get("dsl_version", 2)) != "2":
        raise FlowError(ARGUMENT_ERROR, "only the v2 version runtime conf is supported")
    if dsl in (None, ""):
        require(conf, "job_dsl")
    check_dsl(dsl)
    job_id = new_job_id()
    try:
        data = await run_in_threadpool(jobs.submit, job_id, dsl, runtime, parties)
    except (JobRefused, JobNotFound) as e:
        return respond(OPERATING_ERROR, f"create job failed: {e}", job_id=job_id)
    return respond(data=data, job_id=job_id)


def _filters(conf: dict[str, Any]) -> dict[str, Any]:
    where: dict[str, Any] = {}
    for key in ("job_id", "status", "description", "tag"):
        value = conf.get(key)
        if value not in (None, "", []):
            where[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return where


def _rows_for(conf: dict[str, Any], job: dict[str, Any]) -> list[dict[str, Any]]:
    role = conf.get("role") or None
    party = conf.get("party_id")
    rows = job_rows(job, str(role) if role else None,
                    str(party) if party not in (None, "") else None)
    if conf.get("is_initiator") not in (None, ""):
        rows = [r for r in rows if r["f_is_initiator"] == bool(conf["is_initiator"])]
    return rows


@router.post("/job/query")
@flow_handler
async def job_query(request: Request, conf: dict[str, Any]) -> Response:
    jobs = jobs_of(request)
    where = _filters(conf)
    if not where and not conf.get("role") and conf.get("party_id") in (None, ""):
        return respond(retmsg="no job could be found", data=[])
    found, _ = jobs.store.jobs(where)
    rows = [r for job in found for r in _rows_for(conf, job)]
    if not rows:
        return respond(retmsg="no job could be found", data=[])
    return respond(data=rows)


@router.post("/job/list/job")
@flow_handler
async def job_list(request: Request, conf: dict[str, Any]) -> Response:
    jobs = jobs_of(request)
    try:
        limit = int(conf.get("limit", 10) or 10)
        page = max(int(conf.get("page", 1) or 1), 1)
    except (TypeError, ValueError):
        return error_response(400, "limit and page must be integers")
    order_by = str(conf.get("order_by", "create_time"))
    columns = {"create_time": "created", "start_time": "started", "end_time": "ended",
               "job_id": "job_id", "elapsed": "(ended - started)", "task_version": "version"}
    if order_by not in columns or str(conf.get("order", "desc")) not in ("asc", "desc"):
        return error_response(400, f"order_by must be one of {', '.join(columns)} and order "
                              "asc or desc")
    where = {k: v for k, v in _filters(conf).items() if k != "job_id"}
    found, _ = jobs.store.jobs(where, order=f"{columns[order_by]} {conf.get('order', 'desc')}")
    if conf.get("job_id"):
        found = [j for j in found if str(conf["job_id"]) in j["job_id"]]
    member = request.scope.get(remote.PEER)
    if member is not None:  # a member's list, forwarded: only the jobs its parties are in
        parties = {str(p) for p in member[1]}
        found = [j for j in found
                 if parties & {str(p) for ids in j["roles"].values() for p in ids}]
    rows = []
    for job in found:
        if job["tag"] == "submit_failed":
            continue
        role, party = job["initiator_role"], str(job["initiator_party"])
        if conf.get("party_id") not in (None, "") or conf.get("role"):
            mine = _rows_for(conf, job)
            if not mine:
                continue
            role, party = mine[0]["f_role"], mine[0]["f_party_id"]
        rows.append(list_row(job, role, party))
    state = flow_state(request)
    if member is None and state.link is not None and jobs.store.forwarded_jobs():
        # the jobs this member sent to the admin are listed here too, as the admin has them
        known = {r["job_id"] for r in rows}
        more = await remote.admin_jobs(request, state.link, {**conf, "page": 1,
                                                             "limit": remote.MAX_LISTED})
        rows += [r for r in more if r.get("job_id") not in known]
        key = order_by if order_by != "task_version" else "create_time"  # the rows' names
        rows.sort(key=lambda r: (r.get(key) is None, r.get(key) or 0),
                  reverse=str(conf.get("order", "desc")) == "desc")
    return respond(data={"jobs": rows[(page - 1) * limit: page * limit], "count": len(rows)})


@router.post("/job/stop")
@flow_handler
async def job_stop(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    try:
        await run_in_threadpool(jobs_of(request).stop, str(conf["job_id"]),
                                str(conf.get("stop_status") or "canceled"))
    except JobNotFound:
        return respond(DATA_ERROR, "can not found job")
    return respond(retmsg="stop job on this party success; stop job on all party success")


@router.post("/job/rerun")
@flow_handler
async def job_rerun(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    try:
        await run_in_threadpool(jobs_of(request).rerun, str(conf["job_id"]),
                                bool(conf.get("force")))
    except JobNotFound:
        return respond(DATA_ERROR, "can not found job")
    except JobRefused as e:
        return respond(OPERATING_ERROR, f"rerun job failed:\n{e}")
    return respond(retmsg="rerun job success")


@router.post("/job/update")
@flow_handler
async def job_update(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    jobs = jobs_of(request)
    if jobs.store.job(str(conf["job_id"])) is None:
        return respond(ARGUMENT_ERROR, "find job failed")
    jobs.store.set_job(str(conf["job_id"]), description=str(conf.get("notes", "")))
    return respond()


@router.post("/job/config")
@flow_handler
async def job_config(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    job = jobs_of(request).store.job(str(conf["job_id"]))
    if job is None:
        return respond(ARGUMENT_ERROR, "find job failed")
    return respond(data={"job_id": job["job_id"], "dsl": job["dsl"], "runtime_conf": job["conf"],
                         "train_runtime_conf": {},
                         "model_info": {"model_id": job["model_id"],
                                        "model_version": job["model_version"]}})


@router.get("/job/log/download")  # FATE sends both: one route each (their own OpenAPI ids)
@router.post("/job/log/download")
@flow_handler
async def job_log(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    jobs = jobs_of(request)
    job_id = str(conf["job_id"])
    directory = jobs.logs.directory(job_id)
    if not job_id.isdigit() or not directory.is_dir():
        return error_response(404, f"Log file path: '{directory}' not found. Please check if "
                              "the job id is valid.")

    def pack() -> bytes:
        files = {str(p.relative_to(directory)): p.read_bytes()
                 for p in sorted(directory.rglob("*")) if p.is_file()}
        return tar_gz(files)

    return attachment(await run_in_threadpool(pack), f"job_{job_id}_log.tar.gz")


@router.post("/job/log/path")
@flow_handler
async def job_log_path(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    return respond(data={"logs_directory": str(jobs_of(request).logs.directory(str(conf["job_id"])))})


def _task_where(conf: dict[str, Any]) -> dict[str, Any]:
    where = _filters({k: conf.get(k) for k in ("job_id", "status")})
    for key, column in (("role", "role"), ("party_id", "party_id"),
                        ("component_name", "component")):
        if conf.get(key) not in (None, ""):
            where[column] = str(conf[key])
    if conf.get("task_id"):
        job_id, _, cpn = str(conf["task_id"]).partition("_")
        where.update(job_id=job_id, component=cpn)
    return where


@router.post("/job/task/query")
@flow_handler
async def task_query(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    tasks, _ = store.tasks(_task_where(conf))
    if not tasks:
        return respond(ARGUMENT_ERROR, "find task failed")
    jobs = {t["job_id"]: store.job(t["job_id"]) or {} for t in tasks}
    return respond(data=[task_row(t, jobs[t["job_id"]]) for t in tasks])


@router.post("/job/list/task")
@flow_handler
async def task_list(request: Request, conf: dict[str, Any]) -> Response:
    store = jobs_of(request).store
    try:
        limit = int(conf.get("limit", 10) or 10)
        page = max(int(conf.get("page", 1) or 1), 1)
    except (TypeError, ValueError):
        return error_response(400, "limit and page must be integers")
    tasks, count = store.tasks(_task_where(conf), limit, (page - 1) * limit)
    jobs = {t["job_id"]: store.job(t["job_id"]) or {} for t in tasks}
    rows = [{k[2:]: v for k, v in task_row(t, jobs[t["job_id"]]).items()} for t in tasks]
    return respond(data={"tasks": rows, "count": count})


@router.post("/job/dsl/generate")
@flow_handler
async def dsl_generate(request: Request, conf: dict[str, Any]) -> Response:
    import orjson

    train: Any = conf.get("train_dsl")
    try:
        train = orjson.loads(train) if isinstance(train, str) else train
        check_dsl(train)
    except (orjson.JSONDecodeError, FlowError) as e:
        return error_response(210, f"DSL generating failed. {e}")
    cpn = conf.get("cpn_str") or []
    cpns = [c.strip() for c in cpn.split(",")] if isinstance(cpn, str) else list(cpn)
    unknown = [c for c in cpns if c not in train["components"]]
    if unknown:
        return error_response(210, f"DSL generating failed. components {unknown} are not in "
                              "the train DSL")
    dsl = dag.predict_dsl(train, cpns or None)
    if conf.get("filename"):
        return attachment(orjson.dumps(dsl, option=orjson.OPT_INDENT_2), str(conf["filename"]),
                          "application/json")
    return respond(data=dsl)


@router.post("/job/clean/queue")
@flow_handler
async def clean_queue(request: Request, conf: dict[str, Any]) -> Response:
    jobs = jobs_of(request)
    waiting, _ = jobs.store.jobs({"status": "waiting"})
    out = {}
    for job in waiting:
        try:
            jobs.stop(job["job_id"], "canceled")
            out[job["job_id"]] = 0
        except (JobRefused, JobNotFound):
            out[job["job_id"]] = 1
    return respond(data=out)


@router.post("/job/data/view/query")
@flow_handler
async def data_view(request: Request, conf: dict[str, Any]) -> Response:
    require(conf, "job_id")
    store = jobs_of(request).store
    job_id = str(conf["job_id"])
    job = store.job(job_id)
    rows = []
    for cpn, role, party, meta in store.outputs(job_id, "data_meta"):
        if any(conf.get(k) not in (None, "") and str(conf[k]) != v
               for k, v in (("role", role), ("party_id", party), ("component_name", cpn))):
            continue
        rows.append({"f_job_id": job_id, "f_component_name": cpn, "f_task_id": f"{job_id}_{cpn}",
                     "f_task_version": job["version"] if job else 0, "f_data_name": "data",
                     "f_role": role, "f_party_id": party, "f_table_name": "data",
                     "f_table_namespace": f"output_data_{job_id}_{cpn}_0",
                     "f_description": "", "f_count": meta.get("count")})
    if not rows:
        return respond(ARGUMENT_ERROR, "find data view failed")
    return respond(data=rows)


@router.post("/job/parameter/update")
@flow_handler
async def parameter_update(request: Request, conf: dict[str, Any]) -> Response:
    """Change a finished job's parameters; `job/rerun` then runs it with them."""
    require(conf, "job_id")
    jp, cp = conf.get("job_parameters"), conf.get("component_parameters")
    if not isinstance(jp or {}, dict) or not isinstance(cp or {}, dict):
        raise FlowError(ARGUMENT_ERROR, "job_parameters and component_parameters must be objects")
    data = await run_in_threadpool(jobs_of(request).update_parameters, str(conf["job_id"]), jp, cp)
    return respond(data=data)
