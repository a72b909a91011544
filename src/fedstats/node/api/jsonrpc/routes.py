"""The model store's HTTP routes: `POST /jsonrpc`, the uploads and the download.

* `/jsonrpc`: a JSON-RPC body (single or batch), answered 200 with the response, or 204
  when it held only notifications.
* `/jsonrpc/upload/fl.put_model` and `/fl.put_aggregated_model`: multipart/form-data, a
  `data` part (the params object, or a whole JSON-RPC request whose id is echoed) and a
  `file` part, streamed to disk while hashed. The loop parses each chunk as it arrives
  and writes the file's bytes in it at once (while they are still in the CPU's cache, as
  a bare upload writes its body); the file's SHA-256 follows in blocks of `PIPE_BYTES`
  (the chunks as received, never joined) on a thread of the upload's own, a few blocks
  deep, which also starts the disk's writeback of each block (so the final fsync finds
  little left) and, only for an upload signed over its whole body, a second thread does
  the signature's HMAC. Memory stays a few blocks whatever the model's size; the blocks
  received and not yet hashed are held on the node's transport `Gate`, as every body read
  is.
  The signature is checked by its HMAC alone (`auth.UploadSignature`: no MD5 pass); an
  upload that declares its file's SHA-256 (`X-Model-Sha256`, as fedstats' clients do)
  signs that digest in the file's place, and its file, hashed once for its content
  address, must hash to it (`DigestMismatch` otherwise). A refused upload leaves nothing.
* `/jsonrpc/download/fl.load_model`: a JSON-RPC request answered with the model's bytes
  (`Content-Length`, `X-Model-Id`, `X-Model-Hash`, `X-Model-Sha256`, `ETag`), `Range`
  honoured (one range; `If-Range` with the ETag) so a cut transfer resumes. The file is
  verified before its first byte is sent: a file damaged on disk is refused, not served.

Errors of these two routes are JSON-RPC error objects with the HTTP status of `codes`;
authentication failures (and anything else the node's error mapping owns) are raised to it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ...modelstore.errors import DigestMismatch, ModelTooLarge
from ...modelstore.events import FlEvents
from ...modelstore.multipart import DIGEST_HEADER, MultipartError, MultipartParser, boundary_of
from ...modelstore.service import PutRequest
from ...security.errors import SecurityError
from ...store.blobs import BlobWriter
from ..auth import note_verified
from ..errors import UnsupportedMedia
from ..transport import Gate, Held
from . import auth, codes, dispatch, protocol
from .methods import DOWNLOAD_PARAMS, UPLOAD_DEFAULT_STATE, UPLOAD_PARAMS, Ctx
from .render import model_info
from .state import ModelStoreState

router = APIRouter(tags=["model store (JSON-RPC)"])
PIPE_BYTES = 2 << 20
DEPTH = 4  # blocks in the stages before the loop waits for the oldest
READ_BYTES = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _state(request: Request) -> ModelStoreState:
    return request.app.state.modelstore


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


async def jsonrpc(request: Request) -> Response:
    state = _state(request)
    customer, body = await auth.authenticated_body(request, state, state.max_rpc_body)
    out = await dispatch.answer(body, Ctx(state, customer.id))
    if out is None:
        return Response(status_code=204)
    return Response(out, media_type="application/json")


# Served as a plain Starlette route: nothing for FastAPI to solve per call (the endpoint
# reads the request itself), which is a small call's largest fixed cost after routing.
# The APIRoute after it only documents /jsonrpc in the OpenAPI schema (and delegates, were
# it ever reached), so the schema and the fuzzing from it still cover it.
router.add_route("/jsonrpc", jsonrpc, methods=["POST"], include_in_schema=False)


@router.post("/jsonrpc", summary="JSON-RPC 2.0: the fl.* methods (single calls and batches)")
async def jsonrpc_documented(request: Request) -> Response:
    return await jsonrpc(request)


def _error(rid: Any, exc: BaseException) -> Response:
    """A JSON-RPC error body with the table's HTTP status; re-raise what it does not know."""
    if isinstance(exc, SecurityError):
        raise exc
    found = codes.lookup(exc)
    if found is None:
        raise exc
    code, message, data = found
    return _json(protocol.fail(rid, code.code, message, data or None), code.http)


# -- upload --------------------------------------------------------------------------------
@router.post("/jsonrpc/upload/{method}",
             summary="fl.put_model / fl.put_aggregated_model as multipart/form-data")
async def upload(request: Request, method: str) -> Response:
    state = _state(request)
    svc = state.service
    if method not in UPLOAD_DEFAULT_STATE:
        return _json(protocol.fail(None, protocol.METHOD_NOT_FOUND,
                                   f"{method!r} is not uploaded here: use fl.put_model or "
                                   "fl.put_aggregated_model", {"method": method}), 404)
    boundary = boundary_of(request.headers.get("content-type"))
    if boundary is None:
        raise UnsupportedMedia("an upload is multipart/form-data with a boundary, "
                               "a 'data' part (the params) and a 'file' part")
    length = request.headers.get("content-length")
    writer: BlobWriter | None = None
    rid: Any = None
    started = time.time()
    try:
        svc.check_declared_size(int(length) if length and length.isdigit() else None)
        customer, check = auth.begin_upload(request, state)
        declared = check.declared if check is not None else None

        segments = _Segments(svc.config.max_model_bytes)

        def on_file(name: str, filename: str) -> Any:
            nonlocal writer
            if name != "file" or writer is not None:
                raise MultipartError("an upload holds one file part, named 'file'")
            writer = svc.new_writer()
            return segments

        parser = MultipartParser(boundary, on_file, keep_frame=declared is not None)
        await _receive(request, check if declared is None else None, parser, segments,
                       lambda: writer, svc.config.max_model_bytes)
        if check is not None:
            if declared is not None:  # the body as signed: the file's digest in its place
                check.update(parser.signed_body(declared))
            customer = check.finish(None)
            note_verified(request)
        parser.close()
        rid, params = _upload_params(parser.fields)
        kwargs = protocol.bind(params, UPLOAD_PARAMS)
        if writer is None:
            raise protocol.ParamsError("the upload has no 'file' part", param="file")
        done: BlobWriter = writer
        await anyio.to_thread.run_sync(done.finish)
        if declared is not None and done.sha256 != declared:
            raise DigestMismatch(
                f"the file part's bytes hash to SHA-256 {done.sha256}, not to the "
                f"{declared} the upload declared ({DIGEST_HEADER}) and signed: the file "
                "changed after it was signed, or was cut or corrupted on the way; nothing "
                "was stored", declared_sha256=declared, received_sha256=done.sha256,
                received_size=done.size)
        state_value = kwargs["model_state"]
        req = PutRequest(
            kind=kwargs["model_kind"], description=kwargs["model_description"],
            meta=kwargs["model_meta"],
            state=UPLOAD_DEFAULT_STATE[method] if state_value is None else state_value,
            tenant_id=kwargs["tenant_id"], round=kwargs["round"],
            hop_count=kwargs["hop_count"], source_model_id=kwargs["source_model_id"],
            source_store=kwargs["source_model_store_ddc"],
            source_endpoint=None if kwargs["source_model_id"] is None else customer.id,
            start=started)
        store = kwargs["model_store_ddc"]
        rec = await anyio.to_thread.run_sync(
            lambda: svc.commit_put(customer.id, store, done, req))
        if rec.state == FlEvents.FEEDBACKED:
            await anyio.to_thread.run_sync(lambda: svc.after_put(rec))
        return _json(protocol.ok(rid, model_info(rec)))
    except Exception as exc:
        return _error(rid, exc)
    finally:
        if writer is not None:
            writer.abort()


class _Segments:
    """The parser's sink for the file part: the bytes it found in the chunk being parsed,
    taken as a list to be written at once and hashed with their block. A view of a
    received chunk (immutable bytes) is kept as is; one of the parser's own buffer (near
    a boundary) is copied."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[memoryview | bytes] = []

    def __call__(self, data: memoryview) -> None:
        if self.size + len(data) > self.limit:
            raise ModelTooLarge(f"the model is over this node's limit of {self.limit} bytes",
                                max_model_bytes=self.limit)
        self.size += len(data)
        self.parts.append(data if isinstance(data.obj, bytes) else bytes(data))

    def take(self) -> list[memoryview | bytes]:
        parts, self.parts = self.parts, []
        return parts


async def _receive(request: Request, check: auth.UploadSignature | None,
                   parser: MultipartParser, segments: _Segments,
                   writer: Callable[[], BlobWriter | None], limit: int) -> None:
    """Parse each chunk on the loop as it arrives (a search for the boundary: the
    cheapest pass, and no thread hop) and write the file's bytes in it at once, as a bare
    upload writes its body, while the bytes are still in the CPU's cache (written a block
    later, the kernel's copy into the page cache cost twice as much here). Each
    `PIPE_BYTES` block is then hashed (SHA-256, releasing the GIL) on a thread of this
    upload's own, which sees the blocks in order and starts their writeback to the disk;
    with `check`, the signature's HMAC over the whole body is a second such thread. The loop waits for a block only
    when more than `DEPTH` are being hashed, so a stage that falls behind for a moment (two
    cores shared with the client) does not stall the receiving at once.

    A block's bytes are held on the node's `Gate` from their arrival until every stage is
    done with them (503 naming the limit when they do not fit, as `api.auth.read_body`),
    so an upload counts for `DEPTH + 1` blocks at most, never for the whole model."""
    loop = asyncio.get_running_loop()
    gate: Gate | None = getattr(request.app.state, "gate", None)
    address = request.client.host if request.client else ""
    stages = {name: ThreadPoolExecutor(1, thread_name_prefix=f"upload-{name}")
              for name in ("hash", *(("sign",) if check is not None else ()))}
    in_stages: collections.deque[tuple[asyncio.Future[Any], Held | None]] = collections.deque()
    signing: list[bytes] = []
    hashing: list[memoryview | bytes] = []
    held = total = 0

    def on_gate() -> Held | None:
        return Held(gate, address) if gate is not None else None

    receiving = on_gate()  # the Gate's share of the block being received

    def hand_on() -> None:
        nonlocal receiving
        jobs: list[asyncio.Future[Any]] = []
        w = writer()
        if hashing and w is not None:
            jobs.append(loop.run_in_executor(stages["hash"], _hash_block, w, hashing.copy()))
        hashing.clear()
        if check is not None and signing:
            jobs.append(loop.run_in_executor(stages["sign"], _each, check.update,
                                             signing.copy()))
            signing.clear()
        in_stages.append((all_of(*jobs), receiving))
        receiving = on_gate()

    async def done_with_oldest() -> None:
        job, share = in_stages.popleft()
        try:
            await job
        finally:
            if share is not None:
                share.release()

    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            total += len(chunk)
            if total > limit + (1 << 20):
                raise ModelTooLarge(f"the upload is over this node's limit of {limit} bytes",
                                    max_model_bytes=limit)
            if receiving is not None:
                receiving.take(len(chunk))
            parser.feed(chunk)
            parts = segments.take()
            if parts:
                w = writer()
                if w is not None:  # at once, as a bare upload writes: the bytes still hot
                    w.write_parts(parts)
                hashing.extend(parts)
            if check is not None:
                signing.append(chunk)
            held += len(chunk)
            if held >= PIPE_BYTES:
                hand_on()
                held = 0
                while len(in_stages) > DEPTH:
                    await done_with_oldest()
        hand_on()
        while in_stages:
            await done_with_oldest()
    finally:  # an error mid-body: let the stages finish what they hold first
        while in_stages:
            with contextlib.suppress(Exception):
                await done_with_oldest()
        if receiving is not None:
            receiving.release()
        for stage in stages.values():
            stage.shutdown(wait=False)


def _hash_block(writer: BlobWriter, parts: list[memoryview | bytes]) -> None:
    writer.hash_parts(parts)
    writer.start_writeback()  # the blocks written so far: fsync's work begun early


def _each(fn: Callable[[Any], object], data: list[Any]) -> None:
    for chunk in data:
        fn(chunk)


def all_of(*jobs: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Done when every job is, raising the first one's error only then: a block's jobs
    share the writer, which an error path must not close under them."""
    async def wait() -> None:
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
    return asyncio.ensure_future(wait())


def _upload_params(fields: dict[str, bytes]) -> tuple[Any, dict[str, Any]]:
    """(request id, params) from the `data` part (params, or a JSON-RPC request) and any
    other fields (each a param; model_meta as JSON text)."""
    rid: Any = None
    params: dict[str, Any] = {}
    if "data" in fields:
        try:
            doc = orjson.loads(fields["data"])
        except orjson.JSONDecodeError as e:
            raise protocol.ParamsError("the 'data' part is not JSON", param="data") from e
        if isinstance(doc, dict) and doc.get("jsonrpc") == "2.0":
            rid = doc.get("id")
            if protocol.parse_request(doc).__class__ is not protocol.Call:
                raise protocol.ParamsError("the 'data' part is not a valid JSON-RPC request",
                                           param="data")
            doc = doc.get("params") or {}
        if not isinstance(doc, dict):
            raise protocol.ParamsError("the 'data' part must be a JSON object of params",
                                       param="data")
        params.update(doc)
    for name, raw in fields.items():
        if name == "data":
            continue
        text = raw.decode("utf-8", "replace")
        if name in ("model_meta", "model_state", "round", "hop_count"):
            try:
                params[name] = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                raise protocol.ParamsError(f"form field {name!r} is not JSON", param=name) from e
        else:
            params[name] = text
    return rid, params


# -- download ------------------------------------------------------------------------------
@router.post("/jsonrpc/download/fl.load_model",
             summary="fl.load_model: the model's bytes, streamed, Range for resuming")
async def download(request: Request) -> Response:
    state = _state(request)
    customer, body = await auth.authenticated_body(request, state, 1 << 20)
    parsed = protocol.parse(body)
    if parsed.error is not None:
        return _json(parsed.error, 400)
    item = parsed.items[0]
    if parsed.batch or isinstance(item, protocol.Invalid):
        rid = None if parsed.batch else item.id
        return _json(protocol.fail(rid, protocol.INVALID_REQUEST,
                                   data={"reason": "one fl.load_model request, not a batch"}),
                     400)
    if item.method != "fl.load_model":
        return _json(protocol.fail(item.id, protocol.METHOD_NOT_FOUND,
                                   f"{item.method} is not served here: this route is "
                                   "fl.load_model's", {"method": item.method}), 404)
    try:
        kwargs = protocol.bind(item.params, DOWNLOAD_PARAMS)
        rec, path = await anyio.to_thread.run_sync(lambda: state.service.open_verified(
            customer.id, kwargs["model_store_ddc"], kwargs["model_id"]))
    except Exception as exc:
        return _error(item.id, exc)
    etag = f'"{rec.sha256}"'
    start, end = 0, rec.size - 1
    status = 200
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "X-Model-Id": rec.model_id,
               "X-Model-Hash": rec.sha256[:32], "X-Model-Sha256": rec.sha256,
               "X-Model-Size": str(rec.size)}
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and (if_range is None or if_range.strip() == etag):
        span = _parse_range(wanted, rec.size)
        if span is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{rec.size}",
                                                      **headers})
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{rec.size}"
    headers["Content-Length"] = str(end - start + 1 if rec.size else 0)
    f = await anyio.to_thread.run_sync(lambda: open(path, "rb"))  # noqa: SIM115
    return StreamingResponse(_chunks(f, start, end - start + 1 if rec.size else 0),
                             status_code=status, headers=headers,
                             media_type="application/octet-stream")


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=a-b` range, None when unsatisfiable or malformed."""
    m = _RANGE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)) or size == 0:
        return None
    if not m.group(1):  # the last N bytes
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n else None
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


async def _chunks(f: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        await anyio.to_thread.run_sync(f.seek, start)
        left = length
        while left > 0:
            chunk = await anyio.to_thread.run_sync(f.read, min(READ_BYTES, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        f.close()
