"""The WebSocket client against a live server that verifies each message with `Verifier`."""

from __future__ import annotations

import orjson
import pytest

from fedstats.node.client import WsClient
from fedstats.node.security import new_secret_key

FRAME = {"attributeNames": ["a", "b"], "attributeTypes": ["C", "C"], "data": [["1", "2"]]}


def test_messages_are_signed_per_service_with_extra_keys(live_server) -> None:
    key = live_server.fake.customers["c1"].secret_key
    with WsClient(live_server.url, "c1", key) as ws:
        ws.connect("predict", ["irisTest", "testLDA"])
        ws.send(FRAME)
        first = ws.recv(timeout=10)
        ws.send(orjson.dumps(FRAME).decode())
        second = ws.recv(timeout=10)
    assert first["statusCode"] == second["statusCode"] == "OK"
    assert first["values"]["extraKeys"] == ["irisTest", "testLDA"]
    assert orjson.loads(first["values"]["payload"]) == FRAME


def test_each_message_gets_a_fresh_signature_so_identical_payloads_pass(live_server) -> None:
    key = live_server.fake.customers["c1"].secret_key
    with WsClient(live_server.url, "c1", key) as ws:
        ws.connect("learn", {"pid": "p1"})
        answers = []
        for _ in range(3):
            ws.send(FRAME)
            answers.append(ws.recv(timeout=10)["statusCode"])
    assert answers == ["OK"] * 3


def test_wrong_key_is_refused_with_the_reason(live_server) -> None:
    with WsClient(live_server.url, "c1", new_secret_key()) as ws:
        ws.connect("forget", ["p1"])
        ws.send(FRAME)
        answer = ws.recv(timeout=10)
    assert answer["statusCode"] == "UNAUTHORIZED"
    assert "signature does not match" in answer["statusString"]


def test_unknown_service_and_send_before_connect_are_refused(live_server) -> None:
    ws = WsClient(live_server.url, "c1", new_secret_key())
    with pytest.raises(ValueError, match="service must be one of"):
        ws.connect("train", [])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not connected"):
        ws.send(FRAME)
