"""Model store test helpers: a third-party JSON-RPC client's calls to a node, signed.

`rpc(url, method, params)` builds the request and parses the answer with PyPI
`jsonrpcclient`, sends it with `httpx`, and signs it as every request to a node is
(spec/README.md, "Signing"), the customer named by the `APIKey` header.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import jsonrpcclient

from fedstats.node.modelstore.rpcclient import digest_upload_headers
from fedstats.node.security.signing import CUSTOMER_HEADER, signed_headers


def post_signed(url: str, path: str, body: bytes, cid: str, key: str,
                headers: dict[str, str] | None = None, timeout: float = 60.0) -> httpx.Response:
    signed = signed_headers(cid, key, "POST", path, None, body)
    signed.pop(CUSTOMER_HEADER)  # the model store's own header names the customer
    return httpx.post(url + path, content=body, timeout=timeout,
                      headers={**signed, "APIKey": cid, "Content-Type": "application/json",
                               **(headers or {})})


def rpc(url: str, method: str, params: dict[str, Any] | tuple[Any, ...] | None,
        cid: str, key: str) -> Any:
    """One call by jsonrpcclient: its `Ok` or `Error`."""
    request = jsonrpcclient.request(method, params=params)
    resp = post_signed(url, "/jsonrpc", json.dumps(request).encode(), cid, key)
    if resp.status_code != 200:
        raise AssertionError(f"HTTP {resp.status_code}: {resp.text}")
    return jsonrpcclient.parse(resp.json())


def ok(url: str, method: str, params: Any, cid: str, key: str) -> Any:
    answer = rpc(url, method, params, cid, key)
    if not isinstance(answer, jsonrpcclient.Ok):
        raise AssertionError(f"{method}: {answer}")
    return answer.result


def upload(url: str, method: str, params: dict[str, Any], data: bytes, cid: str, key: str,
           request_id: Any = None, declare_digest: bool = True) -> httpx.Response:
    """A put as the reference's curl sends it (`-F data=<params> -F file=@model`), the
    multipart body built by httpx, then signed: by default as fedstats' clients sign it
    (the file's SHA-256 declared in `X-Model-Sha256` and signed in the file's place),
    with `declare_digest=False` as a REST client signs any body (Content-MD5, the whole
    body)."""
    doc: Any = params if request_id is None else {
        "jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
    path = f"/jsonrpc/upload/{method}"
    request = httpx.Request("POST", url + path, data={"data": json.dumps(doc)},
                            files={"file": ("model.bin", data, "application/octet-stream")})
    body = request.read()
    if declare_digest:
        # the file part's content: httpx puts files after the fields, so the last match
        at = body.rfind(b"\r\n\r\n" + data + b"\r\n--") + 4
        assert at >= 4, "the file part's content is not where httpx puts it"
        signed = digest_upload_headers(cid, key, path, body[:at],
                                       hashlib.sha256(data).hexdigest(), body[at + len(data):])
    else:
        signed = signed_headers(cid, key, "POST", path, None, body)
        signed.pop(CUSTOMER_HEADER)
    request.headers.update({**signed, "APIKey": cid})
    with httpx.Client(timeout=60.0) as client:
        return client.send(request)


def download(url: str, store: str, model_id: str, cid: str, key: str,
             headers: dict[str, str] | None = None) -> httpx.Response:
    request = {"jsonrpc": "2.0", "method": "fl.load_model", "id": 1,
               "params": {"model_store_ddc": store, "model_id": model_id}}
    return post_signed(url, "/jsonrpc/download/fl.load_model", json.dumps(request).encode(),
                       cid, key, headers)
