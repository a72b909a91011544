"""WebSocket learn / forget / predict: framing, per-message signatures, errors on the socket."""

from __future__ import annotations

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from fedstats.node.client import Client
from fedstats.node.security.signing import build_ws_message, ws_signed_header
from fedstats_harness.frames import frame
from fedstats_harness.inprocess import Node


def test_learn_forget_predict_over_one_socket_each(node: Node, client: Client, pid: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 2))
    rows = np.column_stack([x, 2.0 * x[:, 0] + x[:, 1]])
    with node.ws().connect("learn", [pid]) as ws:
        ws.send(frame(rows[:25], ["a", "b", "y"]))
        assert ws.recv(10)["values"]["rows"] == 25
        ws.send(frame(rows[25:], ["a", "b", "y"]))  # extra keys remembered per connection
        assert ws.recv(10)["statusCode"] == "OK"
    with node.ws().connect("forget", [pid]) as ws:
        ws.send(frame(rows[:5], ["a", "b", "y"]))
        assert ws.recv(10)["values"]["rows"] == 5
    assert client.project_info(pid)["rows"] == 45
    client.build(pid, "lin", "mlr", {"targetAttributeNames": ["y"]})
    with node.ws().connect("predict", [pid, "lin"]) as ws:
        ws.send(frame([[1.0, 1.0]], ["a", "b"]))
        answer = ws.recv(10)
    assert answer["statusCode"] == "OK"
    assert float(answer["values"]["KSVSMap"]["values"][0]["res"]) == pytest.approx(3.0)


def _raw(node: Node, service: str):  # type: ignore[no-untyped-def]
    return connect(node.url.replace("http", "ws") + f"/symetry/ws/{service}", open_timeout=10)


def test_a_bad_signature_is_answered_401_and_the_socket_closed_1008(node: Node,
                                                                    pid: str) -> None:
    payload = '{"attributeNames":["x"],"attributeTypes":["C"],"data":[["1"]]}'
    header = ws_signed_header("c1", node.keys["c2"], payload, "/symetry/ws/learn", [pid])
    with _raw(node, "learn") as ws:
        ws.send(build_ws_message(header, payload))
        answer = ws.recv(10)
        assert '"UNAUTHORIZED"' in answer
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(10)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1008


def test_a_replayed_message_is_refused(node: Node, pid: str) -> None:
    payload = '{"attributeNames":["x"],"attributeTypes":["C"],"data":[["1"]]}'
    message = build_ws_message(
        ws_signed_header("c1", node.keys["c1"], payload, "/symetry/ws/learn", [pid]), payload)
    with _raw(node, "learn") as ws:
        ws.send(message)
        assert '"OK"' in ws.recv(10)
        ws.send(message)
        assert "replayed" in ws.recv(10)


@pytest.mark.parametrize("text,needle", [
    ("no framing at all", "header length"),
    ("5,{}", "exceeds"),
    ("3,{]xyz", "JSON header"),
], ids=["unframed", "header-cut", "header-not-json"])
def test_a_broken_frame_is_answered_400_and_the_socket_kept(node: Node, text: str,
                                                            needle: str) -> None:
    with _raw(node, "learn") as ws:
        ws.send(text)
        answer = ws.recv(10)
        assert '"BAD_REQUEST"' in answer and needle in answer
        ws.send(text)  # still open
        assert '"BAD_REQUEST"' in ws.recv(10)


def test_the_first_message_must_carry_the_project_id(node: Node) -> None:
    with node.ws().connect("learn", []) as ws:
        ws.send(frame([[1.0]]))
        answer = ws.recv(10)
    assert answer["statusCode"] == "BAD_REQUEST" and "extraKeys" in answer["statusString"]


def test_predict_needs_the_model_id_and_a_known_model(node: Node, pid: str) -> None:
    with node.ws().connect("predict", [pid]) as ws:
        ws.send(frame([[1.0]]))
        assert "model id" in ws.recv(10)["statusString"]
    with node.ws().connect("predict", [pid, "ghost"]) as ws:
        ws.send(frame([[1.0]]))
        answer = ws.recv(10)
    assert answer["statusCode"] == "BAD_REQUEST" and "ghost" in answer["statusString"]


def test_a_bad_dataframe_is_answered_on_the_socket(node: Node, pid: str) -> None:
    with node.ws().connect("learn", [pid]) as ws:
        ws.send('{"attributeNames":["x"],"attributeTypes":["C"],"data":[["NaN"]]}')
        assert ws.recv(10)["statusCode"] == "BAD_REQUEST"
        ws.send(frame([[2.0]]))
        assert ws.recv(10)["statusCode"] == "OK"


def test_an_unknown_service_is_refused(node: Node) -> None:
    with _raw(node, "train") as ws:
        assert "unknown WebSocket service" in ws.recv(10)
