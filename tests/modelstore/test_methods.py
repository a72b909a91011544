"""Every fl.* method and every application error, driven by a third-party JSON-RPC client
(jsonrpcclient + httpx) against a real node process; uploads built by httpx's own
multipart encoder, as curl -F would send them."""

from __future__ import annotations

import hashlib
import json
import socket

import httpx
import jsonrpcclient
import pytest

from fedstats.node.modelstore.rpcclient import digest_upload_headers, upload_headers
from fedstats.node.security.signing import signed_headers
from fedstats_harness.jsonrpc import download, post_signed, upload


def _err(answer, code, kind=None):
    assert isinstance(answer, jsonrpcclient.Error), answer
    assert answer.code == code, answer
    if kind is not None:
        assert answer.data["type"] == kind, answer
    return answer


def test_stores_are_created_checked_listed_and_deleted(node, call, call_ok):
    info = call_ok(node, "fl.initialize_model_store", {"model_store_ddc": "ddc:s1"})
    assert info["model_store_ddc"] == "ddc:s1" and info["ddc_type"] == "model_store"
    assert info["created_at"]["_type"] == "datetime"
    assert call_ok(node, "fl.exists_store", ["ddc:s1"]) is True
    _err(call(node, "fl.initialize_model_store", ["ddc:s1"]), -32002, "StoreAlreadyExists")
    assert call_ok(node, "fl.exists_store", ["ddc:s1"], cid="c2") is False  # per customer
    assert call_ok(node, "fl.delete_store", ["ddc:s1"]) == 1
    assert call_ok(node, "fl.delete_store", ["ddc:s1", False]) == 0
    e = _err(call(node, "fl.delete_store", {"model_store_ddc": "ddc:s1"}), -32001,
             "StoreNotFound")
    assert e.data["model_store_ddc"] == "ddc:s1"


@pytest.mark.parametrize("params", [
    pytest.param({"model_store_ddc": "has space"}, id="bad-name"),
    pytest.param({"model_store_ddc": 3}, id="not-a-string"),
    pytest.param({}, id="missing"),
    pytest.param({"model_store_ddc": "a", "extra": 1}, id="unknown-name"),
    pytest.param(["a", "b"], id="too-many-positions"),
])
def test_bad_params_are_invalid_params(node, call, params):
    _err(call(node, "fl.initialize_model_store", params), -32602)


def test_models_put_listed_loaded_and_deleted(node, keys, call, call_ok):
    call_ok(node, "fl.initialize_model_store", ["ddc:m"])
    data = b"model bytes \x00\x01" * 100
    resp = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:m", "model_kind": "my",
                  "model_description": "d", "model_meta": {"loss": 0.1}}, data, "c1",
                  keys["c1"], request_id=7)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["id"] == 7
    info = answer["result"]
    assert info["model_state"] == 10 and info["model_size"] == len(data)
    assert info["model_sha256"] == hashlib.sha256(data).hexdigest()
    assert len(info["model_hash"]) == 32 and info["tenant_id"] == "solo-tenant"
    assert info["location"] == [139.7, 35.7] and info["model_meta"] == {"loss": 0.1}
    assert info["start_datetime"]["val"] <= info["end_datetime"]["val"]
    mid = info["model_id"]
    agg = upload(node.url, "fl.put_aggregated_model", {"model_store_ddc": "ddc:m"}, b"agg",
                 "c1", keys["c1"]).json()["result"]
    assert agg["model_state"] == 30 and agg["round"] == 0

    assert call_ok(node, "fl.get_model_info", ["ddc:m", mid]) == info
    assert call_ok(node, "fl.exists_model", ["ddc:m", mid]) is True
    assert call_ok(node, "fl.exists_model", ["ddc:nostore", mid]) is False
    assert [m["model_id"] for m in call_ok(node, "fl.get_models", ["ddc:m"])] == [
        mid, agg["model_id"]]
    assert call_ok(node, "fl.get_model_info_latest", ["ddc:m"])["model_id"] == agg["model_id"]
    assert call_ok(node, "fl.get_latest_aggregated_model", ["ddc:m"])["model_id"] == agg[
        "model_id"]
    assert call_ok(node, "fl.get_latest_transferred_model", ["ddc:m"]) is None
    assert call_ok(node, "fl.get_latest_feedbacked_models", ["ddc:m"]) == []

    got = download(node.url, "ddc:m", mid, "c1", keys["c1"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["X-Model-Sha256"] == info["model_sha256"]
    assert int(got.headers["Content-Length"]) == len(data)

    _err(call(node, "fl.get_model_info", ["ddc:m", "nope"]), -32003, "ModelNotFound")
    assert call_ok(node, "fl.delete_model", ["ddc:m", mid]) == 1
    assert call_ok(node, "fl.delete_model", ["ddc:m", mid, False]) == 0
    _err(call(node, "fl.delete_model", ["ddc:m", mid]), -32003, "ModelNotFound")
    assert call_ok(node, "fl.delete_all_model", ["ddc:m"]) == 1
    assert call_ok(node, "fl.get_models", ["ddc:m"]) == []
    _err(call(node, "fl.get_models", ["ddc:absent"]), -32001, "StoreNotFound")


def test_upload_errors_are_json_rpc_errors_with_http_statuses(node, keys, call_ok):
    call_ok(node, "fl.initialize_model_store", ["ddc:u"])
    missing = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:absent"}, b"x", "c1",
                     keys["c1"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == -32001
    bad_state = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:u",
                       "model_state": 11}, b"x", "c1", keys["c1"])
    assert bad_state.status_code == 400 and bad_state.json()["error"]["code"] == -32602
    bad_meta = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:u",
                      "model_meta": [1]}, b"x", "c1", keys["c1"])
    assert bad_meta.json()["error"]["code"] == -32602
    unknown = upload(node.url, "fl.nope", {"model_store_ddc": "ddc:u"}, b"x", "c1", keys["c1"])
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -32601
    assert call_ok(node, "fl.get_models", ["ddc:u"]) == []


def test_quotas_refuse_with_a_clear_error(node, keys, call_ok):
    call_ok(node, "fl.initialize_model_store", ["ddc:quota"])
    first = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:quota"}, b"a" * 60, "c1",
                   keys["c1"])
    assert first.status_code == 200
    over = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:quota"}, b"b" * 60, "c1",
                  keys["c1"])
    assert over.status_code == 507
    err = over.json()["error"]
    assert err["code"] == -32011 and err["data"]["max_bytes"] == 100
    assert err["data"]["type"] == "QuotaExceeded"
    upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:quota"}, b"c", "c1", keys["c1"])
    count = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:quota"}, b"d", "c1",
                   keys["c1"])
    assert count.json()["error"]["data"]["max_models"] == 2
    assert len(call_ok(node, "fl.get_models", ["ddc:quota"])) == 2


def test_bytes_methods_on_jsonrpc_name_their_route(node, call):
    for method in ("fl.put_model", "fl.put_aggregated_model", "fl.load_model"):
        e = _err(call(node, method, ["ddc:m"]), -32601)
        assert e.data["route"].endswith(method)


def test_a_root_has_no_upstream_to_feed_back_or_transfer_from(node, keys, call, call_ok):
    call_ok(node, "fl.initialize_model_store", ["ddc:root"])
    mid = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:root"}, b"m", "c1",
                 keys["c1"]).json()["result"]["model_id"]
    _err(call(node, "fl.feedback", ["ddc:root", mid]), -32004, "UpstreamNotConfigured")
    _err(call(node, "fl.request_transfer", ["ddc:root"]), -32004, "UpstreamNotConfigured")
    _err(call(node, "fl.proxy_request_transfer_info", ["ddc:root"]), -32006,
         "NoAggregatedModel")
    agg = upload(node.url, "fl.put_aggregated_model", {"model_store_ddc": "ddc:root"}, b"a",
                 "c1", keys["c1"]).json()["result"]
    assert call_ok(node, "fl.proxy_request_transfer_info", ["ddc:root"])["model_id"] == agg[
        "model_id"]


def test_parties_at_a_root_are_kept_here(node, call_ok):
    party = call_ok(node, "fl.create_party", ["experiment 1"])
    assert party["tenant_id"] == "solo-tenant" and party["tenant_name"] == "Solo"
    assert party["hop_count"] == 1
    assert [p["id"] for p in call_ok(node, "fl.get_parties")] == [party["id"]]
    assert call_ok(node, "fl.delete_party", [party["id"]]) == 1
    assert call_ok(node, "fl.delete_party", {"id": party["id"]}) == 0


def test_upstreams_are_set_by_admins_only_and_unreachable_ones_are_clear_errors(
        node, keys, call, call_ok, unreachable_port):
    call_ok(node, "fl.initialize_model_store", ["ddc:up"], cid="c2")
    _err(call(node, "fedstats.set_upstream", ["ddc:up", "http://x", "k", "s"], cid="c2"),
         -32012, "Forbidden")
    call_ok(node, "fl.initialize_model_store", ["ddc:up"])
    call_ok(node, "fedstats.set_upstream", {
        "model_store_ddc": "ddc:up", "upstream_endpoint": f"http://127.0.0.1:{unreachable_port}",
        "upstream_apikey": "c1", "upstream_secret": keys["c1"]})
    shown = call_ok(node, "fedstats.get_upstream", ["ddc:up"])
    assert "upstream_secret" not in shown and shown["upstream_apikey"] == "c1"
    e = _err(call(node, "fl.request_transfer", ["ddc:up"]), -32005, "UpstreamError")
    assert e.data["upstream_endpoint"].endswith(str(unreachable_port))
    assert call_ok(node, "fedstats.delete_upstream", ["ddc:up"]) == 1


def test_unsigned_replayed_and_wrong_customer_requests_are_refused(node, keys):
    body = json.dumps(jsonrpcclient.request("fl.get_server_version")).encode()
    plain = httpx.post(node.url + "/jsonrpc", content=body, headers={"APIKey": "c1"})
    assert plain.status_code == 401
    secret = httpx.post(node.url + "/jsonrpc", content=body,
                        headers={"APIKey": "c1", "Secret": keys["c1"]})
    assert secret.status_code == 401  # not enabled by this node's configuration
    wrong = post_signed(node.url, "/jsonrpc", body, "c1", keys["c2"])
    assert wrong.status_code == 401
    good = post_signed(node.url, "/jsonrpc", body, "c1", keys["c1"])
    assert good.status_code == 200
    replay = httpx.post(node.url + "/jsonrpc", content=body, headers=dict(good.request.headers))
    assert replay.status_code == 401


def _multipart(store: str, data: bytes) -> httpx.Request:
    return httpx.Request("POST", "http://x/jsonrpc/upload/fl.put_model",
                         data={"data": json.dumps({"model_store_ddc": store})},
                         files={"file": ("m.bin", data, "application/octet-stream")})


def test_uploads_are_checked_by_their_hmac_with_or_without_content_md5(node, keys, call_ok):
    path = "/jsonrpc/upload/fl.put_model"
    call_ok(node, "fl.initialize_model_store", ["ddc:hmac"])

    def send(body: bytes, headers: dict[str, str], ctype: str) -> httpx.Response:
        return httpx.post(node.url + path, content=body,
                          headers={**headers, "APIKey": "c1", "Content-Type": ctype})

    req = _multipart("ddc:hmac", b"model bytes")
    body, ctype = req.read(), req.headers["Content-Type"]
    # as fedstats' clients sign an upload: no Content-MD5, "" in its place
    bare = upload_headers("c1", keys["c1"], path, [body])
    assert "Content-MD5" not in bare
    assert send(body, bare, ctype).status_code == 200
    assert send(body, bare, ctype).status_code == 401  # replayed
    # as a REST client signs it, Content-MD5 included: accepted the same way
    rest = signed_headers("c1", keys["c1"], "POST", path, None, body)
    assert send(body, rest, ctype).status_code == 200
    # a byte of the model changed after signing, a Content-MD5 other than the one signed,
    # or another customer's key: refused before anything is stored
    tampered = body.replace(b"model bytes", b"model bytez")
    assert send(tampered, upload_headers("c1", keys["c1"], path, [body]), ctype
                ).status_code == 401
    other_md5 = {**signed_headers("c1", keys["c1"], "POST", path, None, body),
                 "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}
    assert send(body, other_md5, ctype).status_code == 401
    assert send(body, upload_headers("c1", keys["c2"], path, [body]), ctype
                ).status_code == 401
    assert len(call_ok(node, "fl.get_models", ["ddc:hmac"])) == 2


def _files(node):
    root = node.data_dir / "modelstore" / "blobs"
    return sorted(p.name for p in root.glob("*/*") if p.parent.name != "tmp"), list(
        (root / "tmp").glob("*"))


def test_an_upload_signs_its_files_digest_and_the_file_must_hash_to_it(node, keys, call_ok):
    path = "/jsonrpc/upload/fl.put_model"
    call_ok(node, "fl.initialize_model_store", ["ddc:digest"])
    model = b"the model's bytes " * 1000
    digest = hashlib.sha256(model).hexdigest()
    req = _multipart("ddc:digest", model)
    body, ctype = req.read(), req.headers["Content-Type"]
    at = body.rindex(model)
    head, tail = body[:at], body[at + len(model):]

    def send(body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(node.url + path, content=body,
                          headers={**headers, "APIKey": "c1", "Content-Type": ctype})

    def signed(digest: str = digest, head: bytes = head) -> dict[str, str]:
        return digest_upload_headers("c1", keys["c1"], path, head, digest, tail)

    good = signed()
    assert good["X-Model-Sha256"] == digest and "Content-MD5" not in good
    first = send(body, good)
    assert first.status_code == 200, first.text
    assert first.json()["result"]["model_sha256"] == digest
    assert send(body, good).status_code == 401  # replayed
    stored = _files(node)[0]
    assert digest in stored

    # the file changed after signing (its digest signed right): refused, nothing stored
    other = body.replace(b"bytes", b"bytez", 1)
    refused = send(other, signed())
    assert refused.status_code == 400
    err = refused.json()["error"]
    assert err["code"] == -32014 and err["data"]["type"] == "DigestMismatch"
    assert err["data"]["declared_sha256"] == digest
    assert err["data"]["received_sha256"] == hashlib.sha256(
        model.replace(b"bytes", b"bytez", 1)).hexdigest()
    assert _files(node) == (stored, [])  # nor a temporary file left
    # the declared digest changed after signing (to the changed file's): the signature
    # no longer holds
    changed = hashlib.sha256(model.replace(b"bytes", b"bytez", 1)).hexdigest()
    assert send(other, {**signed(), "X-Model-Sha256": changed}).status_code == 401
    # a field (the params) changed after signing: the signature covers every byte but the
    # file's content
    moved = body.replace(b"ddc:digest", b"ddc:digesx")
    assert send(moved, signed()).status_code == 401
    # another key; a digest that is not one
    assert send(body, digest_upload_headers("c1", keys["c2"], path, head, digest, tail)
                ).status_code == 401
    bad = send(body, signed(digest.upper()))
    assert bad.status_code == 401 and "X-Model-Sha256" in bad.text
    assert _files(node) == (stored, [])
    assert len(call_ok(node, "fl.get_models", ["ddc:digest"])) == 1


def test_aggregation_and_size_limits_are_clear_errors(node, ms_nodes, keys, call, call_ok):
    call_ok(node, "fl.initialize_model_store", ["ddc:agg"])
    e = _err(call(node, "fedstats.aggregate", ["ddc:agg"]), -32013, "AggregationError")
    assert e.data["model_store_ddc"] == "ddc:agg"
    # a fed-back model that claims to be a snapshot and is not: named, nothing aggregated
    upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:agg", "model_state": 20,
           "model_kind": "fedstats.snapshot"}, b"not a snapshot", "c1", keys["c1"])
    _err(call(node, "fedstats.aggregate", ["ddc:agg"]), -32013, "AggregationError")
    assert call_ok(node, "fl.get_latest_aggregated_model", ["ddc:agg"]) is None

    small = ms_nodes("small", {"max_model_bytes": 1000})
    call_ok(small, "fl.initialize_model_store", ["ddc:s"])
    over = upload(small.url, "fl.put_model", {"model_store_ddc": "ddc:s"}, b"x" * 1001, "c1",
                  keys["c1"])
    assert over.status_code == 413
    err = over.json()["error"]
    assert err["code"] == -32009 and err["data"] == {"type": "ModelTooLarge",
                                                     "max_model_bytes": 1000}
    with socket.create_connection((small.host, small.port), timeout=30) as sock:
        # refused from its declared length alone: not a byte of the body is sent
        sock.sendall(f"POST /jsonrpc/upload/fl.put_model HTTP/1.1\r\nHost: x\r\n"
                     f"APIKey: c1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     f"Content-Length: {10 << 20}\r\n\r\n".encode())
        assert sock.recv(64).startswith(b"HTTP/1.1 413 ")
    assert upload(small.url, "fl.put_model", {"model_store_ddc": "ddc:s"}, b"x" * 1000, "c1",
                  keys["c1"]).status_code == 200
    assert len(call_ok(small, "fl.get_models", ["ddc:s"])) == 1


def test_a_deleted_model_is_gone_for_get_model_info_though_it_was_read_before(
        node, keys, call, call_ok):
    """get_model_info answers a record it read before from memory: every delete (the
    model, all of the store's, the store) forgets it."""
    call_ok(node, "fl.initialize_model_store", ["ddc:forget"])
    mids = [upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:forget"}, data, "c1",
                   keys["c1"]).json()["result"]["model_id"] for data in (b"a", b"b", b"c")]
    for mid in mids:  # read twice: the second from memory
        assert call_ok(node, "fl.get_model_info", ["ddc:forget", mid]) == call_ok(
            node, "fl.get_model_info", ["ddc:forget", mid])
    assert call_ok(node, "fl.delete_model", ["ddc:forget", mids[0]]) == 1
    _err(call(node, "fl.get_model_info", ["ddc:forget", mids[0]]), -32003, "ModelNotFound")
    assert call_ok(node, "fl.get_model_info", ["ddc:forget", mids[1]])["model_id"] == mids[1]
    assert call_ok(node, "fl.delete_all_model", ["ddc:forget"]) == 2
    _err(call(node, "fl.get_model_info", ["ddc:forget", mids[1]]), -32003, "ModelNotFound")
    mid = upload(node.url, "fl.put_model", {"model_store_ddc": "ddc:forget"}, b"d", "c1",
                 keys["c1"]).json()["result"]["model_id"]
    assert call_ok(node, "fl.get_model_info", ["ddc:forget", mid])["model_id"] == mid
    assert call_ok(node, "fl.delete_store", ["ddc:forget"]) == 1
    _err(call(node, "fl.get_model_info", ["ddc:forget", mid]), -32001, "StoreNotFound")
    # another customer never sees it, read or not
    call_ok(node, "fl.initialize_model_store", ["ddc:forget"])
    _err(call(node, "fl.get_model_info", ["ddc:forget", mid], "c2"), -32001, "StoreNotFound")
