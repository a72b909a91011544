"""The `/v1` routes fate-client 1.11.3 calls for tables: data, table, server (§2.1, §2.6),
and the handler plumbing every `/v1` route shares (`flow_handler`).

Every handler reads the request through `_call` (signature checked unless the node was
explicitly started without it, JSON parsed whatever the Content-Type), and a `FlowError`
becomes FATE's HTTP-200 envelope here. Anything else is a real failure and reaches the
node's one error mapping. Unknown `/v1` paths answer as FATE's Flask does (retcode 100,
HTTP 200), and unknown `/v1/table/...` paths with FATE's catch-all success.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...service.flowjobs import FlowJobError, JobNotFound, JobRefused
from ...store.flow_sql import mysql_blocks
from ..auth import note_verified, read_body
from ..errors import PayloadTooLarge
from . import remote
from .auth import verify
from .envelope import (
    ARGUMENT_ERROR,
    DATA_ERROR,
    EXCEPTION_ERROR,
    OPERATING_ERROR,
    FlowError,
    of_error,
    respond,
)
from .state import FlowState
from .tables import Source

router = APIRouter(prefix="/v1", tags=["fate-flow"])
_seq = itertools.count()
Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]
VERSIONS = {"FATE": "1.11.3", "FATEFlow": "1.11.2", "API": "v1", "FEDSTATS": "0.1.0"}


def new_job_id() -> str:
    """FATE's 21-digit job id: date-time to the millisecond and a 4-digit sequence."""
    now = datetime.now()
    return now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}{next(_seq) % 10000:04d}"


def flow_state(request: Request) -> FlowState:
    state: FlowState = request.app.state.flow
    return state


def _path_url(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


def _authenticate(request: Request, state: FlowState, signed_body: bytes,
                  form: dict[str, str] | None = None) -> None:
    if state.config.auth:
        verify(request.headers, _path_url(request), signed_body,
               state.customers, state.nonces, form=form)
        note_verified(request)  # the transport trusts this address's next bodies


async def read_form(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """A signed multipart form (model/import): its fields (signed) and its files."""
    state = flow_state(request)
    body = await _read(request, state.max_body)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise FlowError(ARGUMENT_ERROR, "expected a multipart/form-data body")
    msg = email.message_from_bytes(f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + body,
                                   policy=email.policy.HTTP)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in msg.iter_parts() if msg.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if part.get_filename() is not None:
            files[str(name)] = payload
        elif name is not None:
            fields[str(name)] = payload.decode("utf-8", "replace")
    _authenticate(request, state, b"", fields)
    return fields, files


def flow_handler(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A JSON handler: authenticated, body parsed, FlowError answered as FATE does."""
    async def route(request: Request) -> Response:
        state = flow_state(request)
        try:
            body = await _read(request, state.max_body)
            member = request.scope.get(remote.PEER)  # a member's request, via the federation
            if member is None:
                _authenticate(request, state, body)
            conf = _json(body)
            if member is None and remote.should_forward(state.jobs, state.link,
                                                         request.url.path, conf):
                assert state.jobs is not None and state.link is not None
                return await remote.forward(request, state.link, state.jobs, body, conf)
            return await fn(request, conf)
        except FlowError as e:
            return of_error(e)
        except FlowJobError as e:
            return of_error(job_error(e))
    route.__name__ = fn.__name__
    route.__doc__ = fn.__doc__
    return route


def job_error(e: FlowJobError) -> FlowError:
    """The job machinery's errors as FATE answers them (an endpoint may say otherwise)."""
    if isinstance(e, JobNotFound):
        return FlowError(DATA_ERROR, str(e))
    if isinstance(e, JobRefused):
        return FlowError(ARGUMENT_ERROR, str(e))
    return FlowError(OPERATING_ERROR, str(e))


async def _read(request: Request, limit: int) -> bytes:
    """The body, its bytes held on the node's transport gate while read (the same
    bytes-in-flight budget and unsigned-address share as every facade: 503 over them)."""
    try:
        return await read_body(request, limit)
    except PayloadTooLarge:
        raise FlowError(ARGUMENT_ERROR, f"the request body is over {limit} bytes") from None


def _json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        conf = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise FlowError(ARGUMENT_ERROR, f"the request body is not JSON: {e}") from None
    if not isinstance(conf, dict):
        raise FlowError(ARGUMENT_ERROR, "the request body must be a JSON object")
    return conf


def require(conf: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if conf.get(k) in (None, "")]
    if missing:
        raise FlowError(ARGUMENT_ERROR, f"required parameters are missing: {','.join(missing)}; ")


def _table_key(conf: dict[str, Any]) -> tuple[str, str]:
    if conf.get("table_name") in (None, "") and conf.get("name") not in (None, ""):
        conf = {**conf, "table_name": conf["name"]}
    require(conf, "namespace", "table_name")
    return str(conf["namespace"]), str(conf["table_name"])


# -- data --------------------------------------------------------------------------

@router.post("/data/upload", summary="FATE data/upload: multipart file or server path")
async def data_upload(request: Request) -> Response:
    state = flow_state(request)
    try:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            _authenticate(request, state, b"")
            conf = _query_conf(request)
            return await _upload_multipart(request, state, conf, ctype)
        body = await _read(request, state.max_body)
        _authenticate(request, state, body)
        conf = _json(body) or _query_conf(request)
        if int(conf.get("use_local_data", 1) or 0) != 0:
            raise FlowError(ARGUMENT_ERROR, "data/upload without a file part needs "
                            '"use_local_data": 0 and a server-side "file"')
        require(conf, "namespace", "table_name", "file")
        path = state.confined(str(conf["file"]))
        if not path.is_file():
            raise FlowError(ARGUMENT_ERROR, f"file {conf['file']!r} does not exist on the server")
        return await _upload(state, conf, Source(path))
    except FlowError as e:
        return of_error(e)


def _query_conf(request: Request) -> dict[str, Any]:
    args = dict(request.query_params)
    if "namespace" in args and "table_name" in args:
        return args
    if len(args) != 1:
        raise FlowError(ARGUMENT_ERROR, "required parameters are missing: namespace,table_name; ")
    try:
        conf = orjson.loads(next(iter(args)))
    except orjson.JSONDecodeError as e:
        raise FlowError(ARGUMENT_ERROR, f"the upload conf in the query string is not JSON: {e}") from None
    if not isinstance(conf, dict):
        raise FlowError(ARGUMENT_ERROR, "the upload conf must be a JSON object")
    return conf


async def _upload_multipart(request: Request, state: FlowState, conf: dict[str, Any],
                            ctype: str) -> Response:
    require(conf, "namespace", "table_name", "head", "partition")
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not m:
        raise FlowError(ARGUMENT_ERROR, "multipart body without a boundary")
    boundary = m.group(1).encode("latin-1")
    state.incoming.mkdir(parents=True, exist_ok=True)
    tmp = state.incoming / uuid.uuid1().hex
    try:
        size = 0
        with open(tmp, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > state.max_body:
                    raise FlowError(ARGUMENT_ERROR, f"the upload is over {state.max_body} bytes")
                f.write(chunk)
        source = _file_part(tmp, boundary, size)
        return await _upload(state, conf, source)
    finally:
        tmp.unlink(missing_ok=True)


def _file_part(path: Path, boundary: bytes, size: int) -> Source:
    """The byte range of the one `file` part (the client sends exactly one)."""
    with open(path, "rb") as f:
        head = f.read(64 << 10)
        f.seek(max(0, size - 4096))
        tail_at = f.tell()
        tail = f.read()
    first = head.find(b"--" + boundary)
    start = head.find(b"\r\n\r\n", first) if first >= 0 else -1
    if start < 0 or b'name="file"' not in head[first:start]:
        raise FlowError(ARGUMENT_ERROR, "the multipart body has no 'file' part")
    last = tail.rfind(b"\r\n--" + boundary)
    if last < 0:
        raise FlowError(ARGUMENT_ERROR, "the multipart body is truncated (no closing boundary)")
    return Source(path, start + 4, tail_at + last)


async def _upload(state: FlowState, conf: dict[str, Any], source: Source) -> Response:
    job_id = new_job_id()
    rows = await run_in_threadpool(state.tables.upload, job_id, conf, source)
    data = {"job_id": job_id, "code": 0, "message": "success", "rows": rows,
            "namespace": conf["namespace"], "table_name": conf["table_name"],
            "model_info": {"model_id": "local-0#model", "model_version": job_id},
            "logs_directory": str(state.data_dir / "flow" / "logs" / job_id),
            "board_url": ""}
    return respond(data=data, job_id=job_id)


@router.post("/data/upload/history")
@flow_handler
async def upload_history(request: Request, conf: dict[str, Any]) -> Response:
    try:
        limit = int(conf.get("limit", 10) or 10)
    except (TypeError, ValueError):
        raise FlowError(ARGUMENT_ERROR, f"limit must be an integer, got {conf.get('limit')!r}") from None
    rows = flow_state(request).tables.history(limit, conf.get("job_id") or None)
    return respond(data=rows)


@router.post("/data/download")
@flow_handler
async def data_download(request: Request, conf: dict[str, Any]) -> Response:
    """Write a table as CSV to `output_path`, a server path inside the root."""
    state = flow_state(request)
    ns, name = _table_key(conf)
    require(conf, "output_path")
    path = state.confined(str(conf["output_path"]))
    job_id = new_job_id()
    rows = await run_in_threadpool(state.tables.download, ns, name, path)
    return respond(data={"job_id": job_id, "code": 0, "message": "success", "rows": rows,
                         "namespace": ns, "table_name": name, "output_path": str(path)},
                   job_id=job_id)


# -- table -------------------------------------------------------------------------

@router.post("/table/table_info")
@flow_handler
async def table_info(request: Request, conf: dict[str, Any]) -> Response:
    ns, name = _table_key(conf)
    return respond(data=await run_in_threadpool(flow_state(request).tables.info, ns, name))


@router.post("/table/delete")
@flow_handler
async def table_delete(request: Request, conf: dict[str, Any]) -> Response:
    ns, name = _table_key(conf)
    return respond(data=await run_in_threadpool(flow_state(request).tables.delete, ns, name))


@router.post("/table/bind")
@router.post("/table/add")
@flow_handler
async def table_bind(request: Request, conf: dict[str, Any]) -> Response:
    """Engine PATH: the CSV file at `address.path` (inside the root) becomes the table."""
    state = flow_state(request)
    ns, name = _table_key(conf)
    engine = str(conf.get("engine", "")).upper()
    address = conf.get("address")
    if engine == "MYSQL":
        return await _bind_mysql(state, conf, ns, name, address)
    if engine != "PATH":
        raise FlowError(EXCEPTION_ERROR, f"engine {engine or '(none)'} is not offered by this "
                        "node: table/bind takes engine PATH or MYSQL")
    if not isinstance(address, dict) or not address.get("path"):
        raise FlowError(EXCEPTION_ERROR, f"engine PATH address {address!r} check failed: "
                        'it needs {"path": ...}')
    path = state.confined(str(address["path"]))
    if not path.is_file():
        raise FlowError(EXCEPTION_ERROR, f"engine PATH address {address!r} check failed: "
                        "no such file on the server")
    up = {**conf, "table_name": name, "head": conf.get("head", 1),
          "partition": conf.get("partitions", 1)}
    await run_in_threadpool(state.tables.upload, new_job_id(), up, Source(path), "table_bind")
    return respond(data={"table_name": name, "namespace": ns})


async def _bind_mysql(state: FlowState, conf: dict[str, Any], ns: str, name: str,
                      address: Any) -> Response:
    """Engine MYSQL: the rows of `address.db`.`address.name` are read into the table, from
    a server in `FEDSTATS_FLOW_SQL_HOSTS` only (a bind makes the node connect out)."""
    if not isinstance(address, dict) or not address.get("db") or not address.get("name"):
        raise FlowError(EXCEPTION_ERROR, f"engine MYSQL address {_redacted(address)!r} check "
                        'failed: it needs {"user", "passwd", "host", "port", "db", "name"}')
    state.sql_host_allowed(str(address.get("host", "127.0.0.1")), int(address.get("port", 3306)))
    id_name = conf.get("id_name") or conf.get("id_column") or None
    up = {**conf, "table_name": name, "partition": conf.get("partitions", 1)}
    try:
        await run_in_threadpool(state.tables.store_blocks, new_job_id(), up,
                                lambda: mysql_blocks(address, id_name), "table_bind")
    except FlowError as e:
        if e.retcode == DATA_ERROR and "cannot" in e.retmsg:
            raise FlowError(EXCEPTION_ERROR, f"engine MYSQL address {_redacted(address)!r} "
                            f"check failed: {e.retmsg}") from None
        raise
    return respond(data={"table_name": name, "namespace": ns})


def _redacted(address: Any) -> Any:
    if isinstance(address, dict):
        return {k: ("***" if k in ("passwd", "password") else v) for k, v in address.items()}
    return address


@router.post("/table/{rest:path}")
@flow_handler
async def table_other(request: Request, conf: dict[str, Any]) -> Response:
    return respond()


# -- server ------------------------------------------------------------------------

@router.post("/server/version/get")
@flow_handler
async def versions(request: Request, conf: dict[str, Any]) -> Response:
    module = conf.get("module")
    if module:
        return respond(data={module: VERSIONS.get(str(module), "")})
    return respond(data={**VERSIONS, "PYTHON": sys.version.split()[0]})


fallback = APIRouter(prefix="/v1", tags=["fate-flow"])


@fallback.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"],
                    include_in_schema=False)
async def unknown(request: Request, rest: str) -> Response:
    del rest
    return respond(EXCEPTION_ERROR, "<NotFound '404: Not Found'>")

