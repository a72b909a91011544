"""The JSON-RPC 2.0 specification's own examples (section 7), on the pure protocol and
over HTTP against a node: batches, notifications, invalid JSON, invalid requests, `[]`."""

from __future__ import annotations

import json

import pytest

from fedstats.node.api.jsonrpc import protocol
from fedstats_harness.jsonrpc import post_signed


@pytest.mark.parametrize(("raw", "code"), [
    pytest.param(b'{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]', -32700,
                 id="invalid-json"),
    pytest.param(b'[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},'
                 b'{"jsonrpc":"2.0","method"]', -32700, id="batch-with-invalid-json"),
    pytest.param(b"[]", -32600, id="empty-batch"),
    pytest.param(b'{"jsonrpc":"2.0","method":1,"params":"bar"}', -32600, id="method-not-string"),
])
def test_a_body_that_fails_whole_answers_one_error_with_id_null(raw, code):
    parsed = protocol.parse(raw)
    if parsed.error is not None:
        answer = parsed.error
    else:
        (item,) = parsed.items
        assert isinstance(item, protocol.Invalid)
        answer = protocol.fail(item.id, protocol.INVALID_REQUEST)
    assert answer["error"]["code"] == code and answer["id"] is None


@pytest.mark.parametrize(("member", "expected_id"), [
    pytest.param({"jsonrpc": "1.0", "method": "x", "id": 7}, 7, id="wrong-version"),
    pytest.param({"method": "x", "id": "a"}, "a", id="no-version"),
    pytest.param({"jsonrpc": "2.0", "method": "x", "params": "s", "id": 1}, 1, id="params-str"),
    pytest.param({"jsonrpc": "2.0", "method": "x", "params": 3, "id": 1}, 1, id="params-num"),
    pytest.param({"jsonrpc": "2.0", "method": "x", "id": {"a": 1}}, None, id="id-object"),
    pytest.param({"jsonrpc": "2.0", "method": "x", "id": [1]}, None, id="id-array"),
    pytest.param({"jsonrpc": "2.0", "method": "x", "id": True}, None, id="id-bool"),
    pytest.param(1, None, id="not-an-object"),
])
def test_invalid_requests_echo_the_id_only_when_it_is_readable(member, expected_id):
    item = protocol.parse_request(member)
    assert isinstance(item, protocol.Invalid) and item.id == expected_id


def test_id_null_is_a_request_and_no_id_is_a_notification():
    with_null = protocol.parse_request({"jsonrpc": "2.0", "method": "x", "id": None})
    without = protocol.parse_request({"jsonrpc": "2.0", "method": "x"})
    assert isinstance(with_null, protocol.Call) and not with_null.notification
    assert isinstance(without, protocol.Call) and without.notification


def test_params_bind_by_position_and_by_name_and_refuse_what_does_not_fit():
    spec = (protocol.Param("a", (int,)), protocol.Param("b", (str,), "x"))
    assert protocol.bind([1], spec) == {"a": 1, "b": "x"}
    assert protocol.bind({"b": "y", "a": 2}, spec) == {"a": 2, "b": "y"}
    for bad in ([1, "y", 3], {"a": 1, "c": 2}, {}, {"a": "1"}, {"a": True}):
        with pytest.raises(protocol.ParamsError):
            protocol.bind(bad, spec)


def test_notifications_only_answer_nothing():
    assert protocol.encode([], True) is None


# -- over HTTP, against a node -------------------------------------------------------------
def _post(node, keys, body: bytes):
    return post_signed(node.url, "/jsonrpc", body, "c1", keys["c1"])


def test_the_mixed_batch_of_the_specification(node, keys):
    batch = [
        {"jsonrpc": "2.0", "method": "fl.exists_store", "params": ["ddc:none"], "id": "1"},
        {"jsonrpc": "2.0", "method": "fl.get_server_version"},  # a notification
        {"jsonrpc": "2.0", "method": "fl.exists_store",
         "params": {"model_store_ddc": "ddc:none"}, "id": 2},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "fl.get_server_version", "id": None},
    ]
    resp = _post(node, keys, json.dumps(batch).encode())
    assert resp.status_code == 200
    answers = resp.json()
    assert isinstance(answers, list) and len(answers) == 5
    by_id = {json.dumps(a["id"]): a for a in answers if a["id"] is not None}
    assert by_id['"1"']["result"] is False and by_id["2"]["result"] is False  # ids keep type
    assert by_id['"5"']["error"]["code"] == -32601
    invalid = [a for a in answers if a["id"] is None and "error" in a]
    assert [a["error"]["code"] for a in invalid] == [-32600]
    assert any(a["id"] is None and "result" in a for a in answers)  # id null answered


@pytest.mark.parametrize(("body", "expect"), [
    pytest.param(b'{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]', -32700, id="json"),
    pytest.param(b"[]", -32600, id="empty-batch"),
    pytest.param(b'{"jsonrpc":"2.0","method":1,"params":"bar"}', -32600, id="invalid"),
])
def test_whole_body_errors_over_http(node, keys, body, expect):
    resp = _post(node, keys, body)
    assert resp.status_code == 200
    answer = resp.json()
    assert isinstance(answer, dict) and answer["error"]["code"] == expect and answer["id"] is None


@pytest.mark.parametrize(("body", "n"), [
    pytest.param(b"[1]", 1, id="one"), pytest.param(b"[1,2,3]", 3, id="three")])
def test_batches_of_invalid_members_answer_an_array(node, keys, body, n):
    answers = _post(node, keys, body).json()
    assert isinstance(answers, list) and len(answers) == n
    assert all(a["error"]["code"] == -32600 and a["id"] is None for a in answers)


def test_notifications_get_no_answer_even_in_a_batch_or_on_error(node, keys):
    single = _post(node, keys, b'{"jsonrpc":"2.0","method":"fl.nope"}')
    batch = _post(node, keys, b'[{"jsonrpc":"2.0","method":"fl.get_server_version"},'
                              b'{"jsonrpc":"2.0","method":"fl.exists_store","params":[1]}]')
    assert single.status_code == batch.status_code == 204
    assert single.content == batch.content == b""
