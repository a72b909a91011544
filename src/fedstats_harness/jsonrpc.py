"""Model store test helpers: a third-party JSON-RPC client's calls to a node, signed.

`rpc(url, method, params)` builds the request and parses the answer with PyPI
`jsonrpcclient`, sends it with `httpx`, and signs it as every request to a node is
(spec/README.md, "Signing"), the customer named by the `APIKey` header.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonrpcclient

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
