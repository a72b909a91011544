"""Jobs across parties on several nodes: this facade's side of `federation/flowlink.py`.

A job whose parties are not all served here runs at the federation's admin (FATE's
arbiter). At a member, `flow_handler` forwards such a submit — and every later request
about a job or model version it forwarded (query, task query, stop, rerun, log, tracking,
model deploy/query/predict...) — to the admin as it came, and answers with the admin's
answer, so the initiator serves the job for every party. The ledger of what went there is
durable (`flow_forwarded`), so a restarted member still forwards. At the admin, a
forwarded request runs through this app in-process with the member's identity on the
ASGI scope (`PEER`, which no HTTP client can set) instead of a signature, and only for a
job one of the member's announced parties is in. A member answers the admin's calls on
its own parties' rows (`executor`): frames live there for the job's life, outputs are
written under its own jobs directory.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

from ...federation.errors import FederationError
from ...federation.flowlink import FlowLink, checked_job_path, decode_value
from ...service.flowjobs import FlowJobs, Sites
from ...service.flowjobs.errors import ComponentFailed
from .envelope import OPERATING_ERROR, FlowError

PEER = "fedstats.flow_peer"  # ASGI scope key: (peer, its party ids) of a forwarded request
FORWARDED_PREFIXES = ("/v1/job/", "/v1/tracking/", "/v1/model/")
MAX_LISTED = 10_000  # jobs a member's `job list` asks the admin for


def link_for(app: FastAPI, party_ids: tuple[int, ...], project: tuple[str, str] | None,
             call_timeout: float) -> FlowLink:
    """The node's FlowLink, plugged into its federation hub (before the hub starts)."""
    link = FlowLink(party_ids, project, call_timeout)
    app.state.federation.flow = link
    return link


def wire(app: FastAPI, link: FlowLink, jobs: FlowJobs, jobs_dir: Path) -> None:
    link.executor = executor(jobs.sites, jobs_dir)

    async def http(peer: str, parties: list[int], request: dict[str, Any]) -> dict[str, Any]:
        return await answer_member(app, jobs, peer, parties, request)

    link.http = http


# ------------------------------------------------------------------ a member
def executor(sites: Sites, jobs_dir: Path) -> Any:
    """What a member runs for the admin: one call on one of its own parties."""
    def run(body: dict[str, Any]) -> Any:
        fn = str(body.get("fn"))
        site = sites.local_site(body.get("party", -1))
        if fn == "has_table":
            return site.has_table(str(body["namespace"]), str(body["name"]))
        if fn == "read":
            return site.read(str(body["job_id"]), str(body["role"]), str(body["output"]),
                             str(body["namespace"]), str(body["name"]))
        if fn == "has":
            return site.has(str(body["job_id"]), str(body["role"]), str(body["ref"]))
        if fn == "release":
            site.release(str(body["job_id"]))
            return None
        if fn == "call":
            args = decode_value(body.get("args") or {})
            if not isinstance(args, dict):
                raise ValueError("a call's arguments must be an object")
            if body.get("op") == "save":  # under this node's own jobs directory only
                parts = checked_job_path([str(p) for p in args.get("path", [])])
                args["path"] = str(jobs_dir.joinpath(*parts))
            out = body.get("output")
            return site.call(str(body["job_id"]), str(body["role"]), str(body["op"]),
                             [str(r) for r in body.get("inputs", [])],
                             None if out is None else str(out), **args)
        raise ValueError(f"unknown flow call {fn!r}")
    return run


def should_forward(jobs: FlowJobs | None, link: FlowLink | None, path: str,
                   conf: Mapping[str, Any]) -> bool:
    """Whether this member sends the request to the admin (see the module's docstring)."""
    if jobs is None or link is None or not path.startswith(FORWARDED_PREFIXES):
        return False
    if path == "/v1/job/submit":
        runtime = _runtime(conf)
        roles = runtime.get("role") if runtime is not None else None
        if not isinstance(roles, dict):
            return False  # the submit's own checks answer it
        try:
            ids = [int(p) for party in roles.values() for p in party]
        except (TypeError, ValueError):
            return False
        return any(not jobs.sites.serves(p) for p in ids) and link.is_member()
    if path.startswith("/v1/tracking/component/output/data") and output_here(jobs, conf):
        return False
    store = jobs.store
    for key in ("job_id", "model_version"):
        value = conf.get(key)
        if isinstance(value, str) and value and store.forwarded(value):
            return True
    return False


async def admin_jobs(request: Request, link: FlowLink, conf: Mapping[str, Any]
                     ) -> list[dict[str, Any]]:
    """The admin's `job/list/job` rows of jobs this member's parties are in ([] when the
    admin cannot be reached: the local list still answers)."""
    if not link.is_member():
        return []
    body = orjson.dumps(dict(conf))
    try:
        reply = await link.forward({"method": "POST", "path": "/v1/job/list/job", "query": "",
                                    "body": base64.b64encode(body).decode("ascii")})
        answer = orjson.loads(base64.b64decode(str(reply.get("body", ""))))
    except (FederationError, ValueError, orjson.JSONDecodeError):
        return []
    jobs = (answer.get("data") or {}).get("jobs") if isinstance(answer, dict) else None
    return [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []


def output_here(jobs: FlowJobs, conf: Mapping[str, Any]) -> bool:
    """Whether a forwarded job's output data asked for is this node's own party's (then
    served from here, where it was written: `tracking.output_data`)."""
    job_id, role, party, cpn = (str(conf.get(k) or "") for k in ("job_id", "role", "party_id",
                                                                "component_name"))
    try:
        checked_job_path([job_id, role, party, cpn, "data.arrow"])
        served = jobs.sites.serves(int(party))
    except (ComponentFailed, ValueError):
        return False
    return served and jobs.store.forwarded(job_id)


def _runtime(conf: Mapping[str, Any]) -> Mapping[str, Any] | None:
    runtime = conf.get("job_runtime_conf", conf.get("runtime_conf"))
    return runtime if isinstance(runtime, dict) else None


async def forward(request: Request, link: FlowLink, jobs: FlowJobs, body: bytes,
                  conf: Mapping[str, Any]) -> Response:
    """The admin's answer to this request, recording what it made (job, model version)."""
    try:
        reply = await link.forward({
            "method": request.method, "path": request.url.path,
            "query": request.scope.get("query_string", b"").decode("latin-1"),
            "body": base64.b64encode(body).decode("ascii")})
    except FederationError as e:
        raise FlowError(OPERATING_ERROR, f"the federation's admin, which runs this job, cannot "
                        f"be reached: {e}") from None
    if "error" in reply:
        raise FlowError(OPERATING_ERROR, f"the federation's admin refused: {reply['error']}")
    content = base64.b64decode(str(reply.get("body", "")))
    headers = {str(k): str(v) for k, v in reply.get("headers", [])
               if str(k).lower() not in ("content-length", "transfer-encoding")}
    if headers.get("content-type", "").startswith("application/json"):
        _note(jobs, request.url.path, content)
    return Response(content, status_code=int(reply.get("status", 200)), headers=headers)


def _note(jobs: FlowJobs, path: str, content: bytes) -> None:
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return
    if not isinstance(answer, dict) or answer.get("retcode") != 0:
        return
    if path == "/v1/job/submit":
        job_id = answer.get("jobId") or (answer.get("data") or {}).get("job_id")
        if job_id:
            jobs.store.put_forwarded(str(job_id), "job")
    data = answer.get("data")
    if path == "/v1/model/deploy" and isinstance(data, dict) and data.get("model_version"):
        jobs.store.put_forwarded(str(data["model_version"]), "model")
    if path == "/v1/job/rerun" and isinstance(data, dict) and data.get("job_id"):
        jobs.store.put_forwarded(str(data["job_id"]), "job")


# ------------------------------------------------------------------ the admin
async def answer_member(app: FastAPI, jobs: FlowJobs, peer: str, parties: list[int],
                        request: dict[str, Any]) -> dict[str, Any]:
    """Run a member's forwarded request through this app as that member; the answer."""
    path = str(request.get("path", ""))
    if not path.startswith(FORWARDED_PREFIXES):
        return {"status": 400, "error": f"{path!r} is not forwarded between parties"}
    try:
        body = base64.b64decode(str(request.get("body", "")), validate=True)
        conf = orjson.loads(body) if body.strip() else {}
    except (ValueError, orjson.JSONDecodeError):
        return {"status": 400, "error": "a forwarded request whose body is not JSON"}
    why = _refusal(jobs, path, conf if isinstance(conf, dict) else {}, parties)
    if why is not None:
        return {"status": 400, "error": f"member {peer}: {why}"}
    status, headers, content = await call_app(
        app, str(request.get("method", "POST")), path, str(request.get("query", "")), body,
        (peer, parties))
    return {"status": status, "headers": headers,
            "body": base64.b64encode(content).decode("ascii")}


def _refusal(jobs: FlowJobs, path: str, conf: Mapping[str, Any], parties: list[int]) -> str | None:
    mine = {str(p) for p in parties}
    if not mine:
        return "it announced no FATE party id when it joined"
    if path == "/v1/job/list/job":
        return None  # the list answers only the jobs the member's parties are in
    if path == "/v1/job/submit":
        runtime = _runtime(conf)
        initiator = runtime.get("initiator") if runtime is not None else None
        party = str(initiator.get("party_id")) if isinstance(initiator, dict) else None
        if party not in mine:
            return f"a job's initiator must be one of its own parties ({', '.join(sorted(mine))})"
        return None
    job_id = conf.get("job_id")
    if isinstance(job_id, str) and job_id:
        job = jobs.store.job(job_id)
        if job is None:
            return None  # answered as not found
        named = {str(p) for ids in job["roles"].values() for p in ids}
        return None if named & mine else f"none of its parties is in job {job_id}"
    version = conf.get("model_version")
    if isinstance(version, str) and version:
        rows = jobs.store.models({"model_version": version})
        if rows and not {str(r["party_id"]) for r in rows} & mine:
            return f"none of its parties has a part of model version {version}"
        return None
    return "a forwarded request must name its job_id or model_version"


async def call_app(app: FastAPI, method: str, path: str, query: str, body: bytes,
                   peer: tuple[str, list[int]]) -> tuple[int, list[list[str]], bytes]:
    """One request through the app in this process (no socket, no signature: `PEER`)."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode("latin-1"), "root_path": "",
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("federation", 0), "server": ("federation", 0), PEER: peer,
    }
    sent = False
    status = 500
    headers: list[list[str]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers.extend([k.decode("latin-1"), v.decode("latin-1")]
                           for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)
