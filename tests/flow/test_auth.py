"""FATE's client signature: the reference's own vectors, and the served checks in order
(missing headers, clock window, unknown app key, bad signature, replay)."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from fedstats.node.api.flow.auth import signature
from fedstats_harness.inprocess import Node

VECTOR = ("1700000000000", "f4c5b2a0-8c1e-11ee-b9d1-0242ac120002", "test_app_key")


def test_signature_matches_the_reference_vectors() -> None:
    body = json.dumps({"job_id": "202111061608424372620"}).encode()
    assert signature("test_secret_key", *VECTOR, path_url="/v1/job/query",
                     body=body) == "K10zKr1P8tVJGDdMeZZIEN7V11w="
    form = {"role": "guest", "party_id": "9999", "force_update": "0",
            "model_id": "arbiter-10000#guest-9999#host-10000#model",
            "model_version": "202006122009345696314"}
    assert signature("test_secret_key", *VECTOR, path_url="/v1/model/import",
                     form=form) == "6VU5jXXDi0LEm2GI3edJOUP9Ddo="


def _signed(node: Node, path: str, body: bytes, *, cid: str = "c1", secret: str | None = None,
            ts: float | None = None, header: str = "APP_KEY") -> dict[str, str]:
    stamp = str(round((time.time() if ts is None else ts) * 1000))
    nonce = str(uuid.uuid1())
    key = secret if secret is not None else node.keys[cid]
    return {"TIMESTAMP": stamp, "NONCE": nonce, header: cid,
            "SIGNATURE": signature(key, stamp, nonce, cid, path, body)}


def _post(node: Node, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(node.url + path, content=body, headers=headers)


def test_a_signed_request_is_served_and_a_replay_refused(flow_node: Node) -> None:
    body = json.dumps({"namespace": "ns", "table_name": "none"}).encode()
    headers = _signed(flow_node, "/v1/table/table_info", body)
    first = _post(flow_node, "/v1/table/table_info", body, headers)
    assert first.status_code == 200
    assert first.json() == {"data": {"exist": 0, "namespace": "ns", "table_name": "none"},
                            "retcode": 0, "retmsg": "success"}
    again = _post(flow_node, "/v1/table/table_info", body, headers)
    assert again.status_code == 200
    assert again.json()["retcode"] == 109
    assert "replayed" in again.json()["retmsg"]


def test_app_key_with_a_hyphen_is_accepted(flow_node: Node) -> None:
    body = b'{"namespace": "ns", "table_name": "none"}'
    headers = _signed(flow_node, "/v1/table/table_info", body, header="APP-KEY")
    assert _post(flow_node, "/v1/table/table_info", body, headers).json()["retcode"] == 0


def test_each_failure_is_retcode_109_saying_why(flow_node: Node) -> None:
    path, body = "/v1/table/table_info", b'{"namespace": "ns", "table_name": "t"}'
    cases = [
        ({}, "requirement headers parameters"),
        (_signed(flow_node, path, body, ts=time.time() - 120), "60 seconds"),
        (_signed(flow_node, path, body, cid="nobody", secret="x"), "Unknown APP_KEY"),
        (_signed(flow_node, path, body, secret=flow_node.keys["c2"]), "signature authentication failed"),
        ({**_signed(flow_node, path, body), "TIMESTAMP": "soon"}, "Invalid TIMESTAMP"),
    ]
    for headers, words in cases:
        r = _post(flow_node, path, body, headers)
        assert r.status_code == 200
        assert r.json()["retcode"] == 109, r.json()
        assert words in r.json()["retmsg"]


def test_a_body_changed_after_signing_is_refused(flow_node: Node) -> None:
    path = "/v1/table/table_info"
    headers = _signed(flow_node, path, b'{"namespace": "ns", "table_name": "a"}')
    r = _post(flow_node, path, b'{"namespace": "ns", "table_name": "b"}', headers)
    assert r.json()["retcode"] == 109


def test_unknown_paths_answer_as_fate_does(flow_node: Node) -> None:
    body = b"{}"
    r = _post(flow_node, "/v1/nothing/here", body, _signed(flow_node, "/v1/nothing/here", body))
    assert (r.status_code, r.json()) == (200, {"retcode": 100,
                                              "retmsg": "<NotFound '404: Not Found'>"})
