"""The `/v1/model/...` routes (§2.5): deploy (a child version), query, predict DSL and conf,
load, bind (the service id recorded on the model, and this node's part of the model served
under it by the node's own predict endpoints),
export (a zip of one party's model: its rows and its components' model outputs),
import (that zip, as a signed multipart form), store and restore (the same document kept
in, and brought back from, the node's model storage: its SQLite, checked by SHA-256).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import zipfile
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...service.errors import BadRequest, Conflict
from ...service.flowjobs import JobNotFound, JobRefused, dag
from ...service.flowjobs.serving import serving_model
from ...store.flowjobs import FlowJobStore
from .auth import header
from .envelope import (
    ARGUMENT_ERROR,
    DATA_ERROR,
    EXCEPTION_ERROR,
    OPERATING_ERROR,
    FlowError,
    of_error,
    respond,
)
from .jobs import attachment, error_response, jobs_of
from .routes import flow_handler, flow_state, new_job_id, read_form, require
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


def _named_model(request: Request, conf: dict[str, Any]) -> dict[str, Any] | None:
    """The first model row of the conf's model_id and model_version (both required)."""
    require(conf, "model_id", "model_version")
    rows = _models(request, {k: conf[k] for k in ("model_id", "model_version")})
    return rows[0] if rows else None


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
    m = _named_model(request, conf)
    if m is None:
        return error_response(210, "No model found")
    dsl = m["inference_dsl"]
    if conf.get("filename"):
        return attachment(orjson.dumps(dsl, option=orjson.OPT_INDENT_2), str(conf["filename"]),
                          "application/json")
    return respond(data=dsl)


@router.post("/model/get/predict/conf")
@flow_handler
async def predict_conf(request: Request, conf: dict[str, Any]) -> Response:
    m = _named_model(request, conf)
    if m is None:
        return error_response(210, "No model found")
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
    """Record the service id on the model and serve this node's part of it under that id:
    project and model `<service_id>` of the binding customer, through the node's REST and
    WebSocket predict endpoints (service/flowjobs/serving.py)."""
    if not conf.get("service_id"):
        return respond(ARGUMENT_ERROR, "no service id")
    service_id = str(conf["service_id"])
    key = _model_key(request, conf)
    rows = _models(request, {"model_id": key[0], "model_version": key[1]}) if key else []
    if not key or not rows:
        return respond(ARGUMENT_ERROR, "failed: no such model")
    jobs = jobs_of(request)
    customer = header(request.headers, "APP_KEY")
    if not flow_state(request).config.auth or customer is None:
        jobs.store.update_models(*key, service=service_id)
        return respond(retmsg=f"service id is {service_id} (not served here: a request "
                       "without APP_KEY names no customer to serve it for)")
    mine = [r for r in rows if r["role"] != "arbiter" and jobs.sites.serves(r["party_id"])]
    if not mine:
        return respond(ARGUMENT_ERROR, f"no party of model {key[0]} {key[1]} is served here")
    part = mine[0]
    try:
        model = await run_in_threadpool(serving_model, jobs.store, key[0], key[1],
                                        part["role"], str(part["party_id"]))
        await run_in_threadpool(_serve, request.app.state.service, customer, service_id, model)
    except JobRefused as e:
        return respond(OPERATING_ERROR, f"service id {service_id}: {e}")
    except BadRequest as e:
        return respond(ARGUMENT_ERROR, f"service id {service_id}: {e}")
    jobs.store.update_models(*key, service=service_id)
    return respond(retmsg=f"service id is {service_id}",
                   data={"service_id": service_id, "role": part["role"],
                         "party_id": str(part["party_id"]),
                         "predict": f"/symetry/rest/{customer}/projects/{service_id}/predict/"
                                    f"{service_id}"})


def _serve(service: Any, customer: str, service_id: str, model: Any) -> None:
    with contextlib.suppress(Conflict):  # bound before: the new model replaces the old one
        service.create_project(customer, service_id)
    service.store_model(customer, service_id, service_id, "lr", model)


EXPORT_KINDS = ("model", "model_meta", "summary")
MAX_MODEL_JSON = 64 << 20


def _export_doc(store: FlowJobStore, role: str, party: str, model_id: str,
                version: str) -> dict[str, Any] | None:
    """One party's model as `model/export` writes it (and `model/store` keeps it)."""
    rows = store.models({"model_id": model_id, "model_version": version, "role": role,
                         "party_id": party})
    if not rows:
        return None
    outputs = [{"component": c, "kind": k, "body": b}
               for c, k, b in store.party_outputs(rows[0]["job_id"], role, party)
               if k in EXPORT_KINDS]
    return {"format": "fedstats-flow-model/1", "models": rows, "outputs": outputs}


def _key(conf: dict[str, Any]) -> tuple[str, str, str, str]:
    require(conf, "role", "party_id", "model_id", "model_version")
    return (str(conf["model_id"]), str(conf["model_version"]), str(conf["role"]),
            str(conf["party_id"]))


@router.get("/model/export")  # FATE sends both: one route each (their own OpenAPI ids)
@router.post("/model/export")
@flow_handler
async def export(request: Request, conf: dict[str, Any]) -> Response:
    model_id, version, role, party = _key(conf)
    doc = _export_doc(jobs_of(request).store, role, party, model_id, version)
    if doc is None:
        return error_response(404, f"model {role}#{party}#{model_id} {version} not found")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.json", orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return attachment(buf.getvalue(), f"{role}#{party}#{model_id}_{version}.zip",
                      "application/zip")


@router.post("/model/store")
@flow_handler
async def store_model(request: Request, conf: dict[str, Any]) -> Response:
    """`flow model export --to-database`: the party's model kept in the node's model storage
    (its SQLite, with the document's SHA-256), replaced only with `force_update`."""
    key = _key(conf)
    model_id, version, role, party = key
    store = jobs_of(request).store
    doc = _export_doc(store, role, party, model_id, version)
    if doc is None:
        raise FlowError(DATA_ERROR, f"model {role}#{party}#{model_id} {version} not found")
    if store.stored_model_doc(key) is not None and not _forced(conf):
        raise FlowError(OPERATING_ERROR, f"model {role}#{party}#{model_id} {version} is already "
                        "stored: set force_update to replace it")
    body = orjson.dumps(doc)
    digest = hashlib.sha256(body).hexdigest()
    await run_in_threadpool(store.store_model_doc, key, digest, body)
    job_id = new_job_id()
    return respond(data={"job_id": job_id, "model_id": model_id, "model_version": version,
                         "role": role, "party_id": party, "sha256": digest}, job_id=job_id)


@router.post("/model/restore")
@flow_handler
async def restore_model(request: Request, conf: dict[str, Any]) -> Response:
    """`flow model import --from-database`: the stored model back in place (its SHA-256
    checked, and against `sha256` when the request names one)."""
    key = _key(conf)
    model_id, version, role, party = key
    store = jobs_of(request).store
    stored = store.stored_model_doc(key)
    if stored is None:
        raise FlowError(DATA_ERROR, f"model {role}#{party}#{model_id} {version} is not in the "
                        "model storage (model/store it first)")
    digest, body = stored
    if hashlib.sha256(body).hexdigest() != digest:
        raise FlowError(OPERATING_ERROR, f"the stored model {role}#{party}#{model_id} {version} "
                        "does not match its SHA-256: refused")
    if conf.get("sha256") not in (None, "") and str(conf["sha256"]) != digest:
        raise FlowError(ARGUMENT_ERROR, f"sha256 {conf['sha256']} is not the stored model's "
                        f"({digest})")
    doc = orjson.loads(body)
    mine = [m for m in doc["models"] if m["role"] == role and str(m["party_id"]) == party]
    await run_in_threadpool(_put_back, store, doc, mine, role, party)
    job_id = new_job_id()
    return respond(data={"job_id": job_id, "model_id": model_id, "model_version": version,
                         "role": role, "party_id": party, "sha256": digest}, job_id=job_id)


def _put_back(store: FlowJobStore, doc: dict[str, Any], mine: list[dict[str, Any]], role: str,
              party: str) -> None:
    """One party's model rows and its components' outputs from an export document."""
    job_id = str(mine[0]["job_id"])
    store.import_party_model(mine, [(job_id, o["component"], role, party, o["kind"], o["body"])
                                    for o in doc["outputs"] if o["kind"] in EXPORT_KINDS])


def _forced(conf: dict[str, Any]) -> bool:
    return str(conf.get("force_update", "0")).strip().lower() in ("1", "true", "yes")


@router.post("/model/import")
async def import_model(request: Request) -> Response:
    """A zip `model/export` wrote, as FATE's client sends it: form fields and a file."""
    try:
        fields, files = await read_form(request)
        for key in ("role", "party_id", "model_id", "model_version"):
            if not fields.get(key):
                return error_response(400, f"required parameter {key} is missing")
        if "file" not in files:
            return error_response(400, "no file part: the model zip is missing")
        doc = _read_zip(files["file"])
        role, party = fields["role"], str(fields["party_id"])
        model_id, version = fields["model_id"], fields["model_version"]
        mine = [m for m in doc["models"] if m["role"] == role and str(m["party_id"]) == party
                and m["model_id"] == model_id and m["model_version"] == version]
        if not mine:
            return error_response(400, f"the zip holds no model {role}#{party}#{model_id} "
                                  f"{version}")
        store = jobs_of(request).store
        exists = store.models({"model_id": model_id, "model_version": version, "role": role,
                               "party_id": party})
        if exists and not _forced(fields):
            return error_response(409, "Model already exists.")
        await run_in_threadpool(_put_back, store, doc, mine, role, party)
        return respond(data={"job_id": new_job_id(), "role": role, "party_id": party,
                             "model_id": model_id, "model_version": version},
                       job_id=str(mine[0]["job_id"]))
    except FlowError as e:
        return of_error(e)


def _read_zip(data: bytes) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            info = z.getinfo("model.json")
            if info.file_size > MAX_MODEL_JSON:
                raise FlowError(ARGUMENT_ERROR, "model.json in the zip is too large")
            doc: dict[str, Any] = orjson.loads(z.read(info))
    except (zipfile.BadZipFile, KeyError, orjson.JSONDecodeError) as e:
        raise FlowError(ARGUMENT_ERROR, f"the file is not a model zip of this node: {e}") from None
    if doc.get("format") != "fedstats-flow-model/1" or not isinstance(doc.get("models"), list) \
            or not isinstance(doc.get("outputs"), list):
        raise FlowError(ARGUMENT_ERROR, "the file is not a model zip of this node (format)")
    return doc
