"""Signed JSON-RPC over HTTP to a node's model store: calls, streamed uploads and downloads.

One transport for both callers of a model store: the node itself when it talks to its
upstream (`modelstore.upstream`) and the Python client with the reference's names
(`fedstats.node.modelstore_client.Api`). Every request is signed as the node's REST
requests are (`security.signing`), the customer named by the `APIKey` header. An upload
declares its file's SHA-256 (`X-Model-Sha256`, one streamed pass over the file before it
is sent once, so a model of gigabytes is never held in memory) and signs its body with
that digest in the file's place: the server hashes the file once, for its content address,
and refuses it unless it hashes to the digest signed. An upload carries no Content-MD5:
the string to sign has "" in its place (docs/modelstore.md, "Signing uploads"). A
download verifies the size and SHA-256 the server announces over all the bytes received
and resumes a cut transfer with `Range` (and `If-Range`, so the bytes resumed are the
same model's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from ..security.keys import decode_key
from ..security.signing import AUTH_HEADER, DATE_HEADER, MD5_HEADER, content_md5
from .multipart import DIGEST_HEADER, encode_fields, encode_file_head, encode_tail, new_boundary

APIKEY_HEADER = "APIKey"
CHUNK = 1 << 20

FileArg = str | os.PathLike[str] | IO[bytes]


class RpcError(Exception):
    """A JSON-RPC error answered by the server: `code`, `message`, `data`."""

    def __init__(self, code: int, message: str, data: Any = None,
                 http_status: int | None = None) -> None:
        super().__init__(f"{code} {message}" + (f" {data}" if data else ""))
        self.code, self.message, self.data = code, message, data
        self.http_status = http_status

    @property
    def type(self) -> str | None:
        return self.data.get("type") if isinstance(self.data, dict) else None


class TransportError(Exception):
    """No JSON-RPC answer: the server could not be reached, or answered something else
    (`http_status`, and the node's error message when it sent one)."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class IntegrityMismatch(Exception):
    """Downloaded bytes whose size or SHA-256 is not the one the server announced."""


class RpcClient:
    """JSON-RPC calls to `endpoint` (scheme, host and any prefix before `/jsonrpc`)."""

    def __init__(self, endpoint: str, apikey: str, secret: str, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint.rstrip("/").removesuffix("/jsonrpc")
        self.apikey = apikey
        self._signer = Signer(apikey, secret)
        self._urls: dict[str, httpx.URL] = {}
        self._ids = itertools.count(1)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plain calls -------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """The result of one call; RpcError for an error answer, TransportError otherwise."""
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": next(self._ids)}
        if params is not None:
            request["params"] = params
        body = orjson.dumps(request)
        resp = self._post("/jsonrpc", body, {"Content-Type": "application/json"})
        return _result(resp, request["id"])

    # -- uploads -----------------------------------------------------------------------
    def upload(self, method: str, params: dict[str, Any], file: FileArg,
               filename: str | None = None) -> Any:
        """`POST /jsonrpc/upload/<method>` with `data` (the params) and `file` parts."""
        with _seekable(file) as f:
            size = f.seek(0, io.SEEK_END)
            boundary = new_boundary()
            data = orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                                 "id": next(self._ids)})
            head = (encode_fields(boundary, [("data", data, "application/json")])
                    + encode_file_head(boundary, "file", filename or _name_of(file)))
            tail = encode_tail(boundary)

            def chunks() -> Iterator[bytes]:
                f.seek(0)
                yield head
                while block := f.read(CHUNK):
                    yield block
                yield tail

            path = f"/jsonrpc/upload/{method}"
            headers = self._signer.upload(path, head, file_sha256(f), tail)
            headers.update({APIKEY_HEADER: self.apikey,
                            "Content-Type": f"multipart/form-data; boundary={boundary}",
                            "Content-Length": str(len(head) + size + len(tail))})
            try:
                resp = self._http.post(self.endpoint + path, content=chunks(), headers=headers)
            except httpx.HTTPError as e:
                raise TransportError(f"upload to {self.endpoint}{path}: {e}") from e
        return _result(resp, None)

    # -- downloads ---------------------------------------------------------------------
    def download(self, params: dict[str, Any], sink: Callable[[bytes], object],
                 retries: int = 3, on_headers: Callable[[httpx.Headers], None] | None = None
                 ) -> dict[str, str]:
        """Stream `fl.load_model` into `sink`, resuming a cut transfer up to `retries`
        times; the model's headers (id, size, digest) once its bytes verified."""
        got, sha, etag = 0, hashlib.sha256(), None
        size: int | None = None
        announced: dict[str, str] = {}
        for attempt in itertools.count():
            request = {"jsonrpc": "2.0", "method": "fl.load_model", "params": params,
                       "id": next(self._ids)}
            body = orjson.dumps(request)
            path = "/jsonrpc/download/fl.load_model"
            headers = {**self._signer.headers(path, body), APIKEY_HEADER: self.apikey,
                       "Content-Type": "application/json"}
            if got:
                headers["Range"] = f"bytes={got}-"
                if etag:
                    headers["If-Range"] = etag
            try:
                with self._http.stream("POST", self.endpoint + path, content=body,
                                       headers=headers) as resp:
                    if resp.status_code not in (200, 206):
                        resp.read()
                        _result(resp, request["id"])  # raises the server's error
                        raise TransportError(f"download answered {resp.status_code}",
                                             resp.status_code)
                    if resp.status_code == 200 and got:  # the server restarted from 0
                        got, sha = 0, hashlib.sha256()
                    announced = {k: resp.headers[k] for k in
                                 ("X-Model-Id", "X-Model-Sha256", "X-Model-Size")
                                 if k in resp.headers}
                    size = int(announced.get("X-Model-Size", "-1"))
                    etag = resp.headers.get("ETag")
                    if on_headers is not None and attempt == 0:
                        on_headers(resp.headers)
                    for chunk in resp.iter_raw(CHUNK):
                        sha.update(chunk)
                        sink(chunk)
                        got += len(chunk)
                break
            except httpx.TransportError as e:
                if attempt >= retries:
                    raise TransportError(f"download from {self.endpoint}: {e} "
                                         f"(after {got} bytes, {attempt} retries)") from e
        if size is not None and got != size:
            raise IntegrityMismatch(f"received {got} bytes, the server announced {size}")
        digest = sha.hexdigest()
        if announced.get("X-Model-Sha256") and digest != announced["X-Model-Sha256"]:
            raise IntegrityMismatch(f"received bytes hash to {digest}, the server "
                                    f"announced {announced['X-Model-Sha256']}")
        return announced

    def _url(self, path: str) -> httpx.URL:
        """`endpoint + path`, parsed once (httpx parses a URL string on every request)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.endpoint + path)
        return url

    def _post(self, path: str, body: bytes, extra: dict[str, str]) -> httpx.Response:
        headers = {**self._signer.headers(path, body), APIKEY_HEADER: self.apikey, **extra}
        try:
            return self._http.post(self._url(path), content=body, headers=headers)
        except httpx.HTTPError as e:
            raise TransportError(f"{self.endpoint}{path}: {e}") from e


class Signer:
    """The node's REST signature (`security.signing`) for one customer, its HMAC keyed once
    and its sym-date formatted without `strftime` on every call: the same headers as
    `signed_headers`, less the REST client's customer header (`APIKey` names it here)."""

    def __init__(self, apikey: str, secret: str) -> None:
        self.apikey, self._secret = apikey, secret
        self._keyed = hmac.new(decode_key(secret), digestmod=hashlib.sha256)
        self._second: tuple[int, str] = (-1, "")

    def date(self) -> str:
        """Now as a sym-date (UTC `yyyy-MM-dd HH:mm:ss;nanos`), as `format_sym_date()`."""
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]};{nanos:09d}"

    def _mac(self, md5: str, date: str) -> Any:
        mac = self._keyed.copy()
        mac.update("".join(f + "\n" for f in ("POST", md5, self._secret, date, self.apikey))
                   .encode("utf-8"))
        return mac

    def headers(self, path: str, body: bytes, sym_date: str | None = None) -> dict[str, str]:
        """Authorization, sym-date and Content-MD5 of a POST of `body` to `path`."""
        date = sym_date or self.date()
        md5 = content_md5(body)
        mac = self._mac(md5, date)
        if body:
            mac.update(body)
            mac.update(b"\n")
        mac.update(path.encode("utf-8") + b"\n")
        return {AUTH_HEADER: base64.b64encode(mac.digest()).decode("ascii"),
                DATE_HEADER: date, MD5_HEADER: md5}

    def upload(self, path: str, head: bytes, digest: str, tail: bytes,
               sym_date: str | None = None) -> dict[str, str]:
        """Authorization, sym-date and `X-Model-Sha256` of an upload whose body is
        `head`, the file, `tail`, the file's SHA-256 being `digest` (hex).

        The REST string to sign with an empty Content-MD5 (none sent) and, as the body,
        `head + digest + tail`: the body with the file's content replaced by its digest,
        which the node checks the file against (docs/modelstore.md, "Signing uploads")."""
        date = sym_date or self.date()
        mac = self._mac("", date)
        mac.update(head + digest.encode("ascii") + tail + b"\n")
        mac.update(path.encode("utf-8") + b"\n")
        return {AUTH_HEADER: base64.b64encode(mac.digest()).decode("ascii"), DATE_HEADER: date,
                DIGEST_HEADER: digest}

    def upload_body(self, path: str, chunks: Iterable[bytes], sym_date: str | None = None
                    ) -> dict[str, str]:
        """Authorization and sym-date of an upload signed over its whole body (`chunks`,
        in one pass), as a client that declares no digest signs it; still accepted.

        The REST string to sign with an empty Content-MD5 and no Content-MD5 header: the
        node checks an upload by its HMAC alone (docs/modelstore.md, "Signing uploads")."""
        date = sym_date or self.date()
        mac = self._mac("", date)
        size = 0
        for chunk in chunks:
            mac.update(chunk)
            size += len(chunk)
        if size:
            mac.update(b"\n")
        mac.update(path.encode("utf-8") + b"\n")
        return {AUTH_HEADER: base64.b64encode(mac.digest()).decode("ascii"), DATE_HEADER: date}


def upload_headers(apikey: str, secret: str, path: str, chunks: Iterable[bytes],
                   sym_date: str | None = None) -> dict[str, str]:
    """`Signer(apikey, secret).upload_body(path, chunks)`: the headers of an upload signed
    over its whole body, in one pass (no digest declared)."""
    return Signer(apikey, secret).upload_body(path, chunks, sym_date)


def digest_upload_headers(apikey: str, secret: str, path: str, head: bytes, digest: str,
                          tail: bytes, sym_date: str | None = None) -> dict[str, str]:
    """`Signer(apikey, secret).upload(...)`: the headers of an upload that declares its
    file's SHA-256 `digest` and signs `head + digest + tail`."""
    return Signer(apikey, secret).upload(path, head, digest, tail, sym_date)


def file_sha256(f: IO[bytes]) -> str:
    """The hex SHA-256 of a seekable file's whole content, in one pass."""
    f.seek(0)
    sha = hashlib.sha256()
    while block := f.read(CHUNK):
        sha.update(block)
    return sha.hexdigest()


def _result(resp: httpx.Response, request_id: Any) -> Any:
    try:
        answer = orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("jsonrpc") == "2.0":
        if "error" in answer and isinstance(answer["error"], dict):
            err = answer["error"]
            raise RpcError(int(err.get("code", -32603)), str(err.get("message", "")),
                           err.get("data"), resp.status_code)
        if "result" in answer:
            return answer["result"]
    if resp.is_success and isinstance(answer, dict) and "model_id" in answer:
        return answer  # a bare model_info, as the reference's v2 upload answers
    detail = ""
    if isinstance(answer, dict):
        detail = str(answer.get("statusString") or answer.get("detail") or "")
    raise TransportError(f"HTTP {resp.status_code} without a JSON-RPC answer"
                         + (f": {detail}" if detail else ""), resp.status_code)


class _seekable:
    """The file as a seekable binary file (a path opened; a stream spooled to disk)."""

    def __init__(self, file: FileArg) -> None:
        self._file = file
        self._own: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        f = self._file
        if isinstance(f, str | os.PathLike):
            self._own = open(f, "rb")
            return self._own
        if f.seekable():
            return f
        self._own = tempfile.TemporaryFile()
        shutil.copyfileobj(f, self._own, CHUNK)
        return self._own

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.close()


def _name_of(file: FileArg) -> str:
    if isinstance(file, str | os.PathLike):
        return Path(file).name
    return Path(str(getattr(file, "name", "model"))).name or "model"


def iter_chunks(data: bytes | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes):
        yield data
    else:
        yield from data
