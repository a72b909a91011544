"""Learn / forget over REST: exact statistics, bulk formats, async jobs, every bad body."""

from __future__ import annotations

import io
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest

from fedstats.node.client import ApiError, Client
from fedstats_harness.frames import frame
from fedstats_harness.inprocess import Node


def test_learn_then_forget_leaves_exactly_the_other_rows(client: Client, pid: str) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(20, 3))
    assert client.learn(pid, frame(a)) == 30
    client.learn(pid, frame(b))
    assert client.forget(pid, frame(a)) == 30
    stats = client.explore(pid, "uni", {})
    assert client.project_info(pid)["rows"] == 20
    assert stats  # explore answers from the remaining rows
    acc = _node_acc(client, pid)
    np.testing.assert_allclose(acc.total.mean, b.mean(axis=0), rtol=1e-12)


def _node_acc(client: Client, pid: str):  # type: ignore[no-untyped-def]
    """The project's accumulator, read from the node's own service (same process)."""
    return _NODES[client.base_url].app.state.service.local_accumulator("c1", pid)


_NODES: dict[str, Node] = {}


@pytest.fixture(autouse=True)
def _register(node: Node) -> None:
    _NODES[node.url] = node


def test_concurrent_learns_into_one_project_lose_nothing(node: Node, pid: str) -> None:
    rng = np.random.default_rng(2)
    batches = [rng.normal(loc=1e6, size=(25, 4)) for _ in range(40)]
    clients = [node.client() for _ in range(8)]

    def send(i: int) -> int:
        return clients[i % 8].learn(pid, frame(batches[i]))

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(send, range(40))) == 1000
    acc = node.app.state.service.local_accumulator("c1", pid)
    pooled = np.vstack(batches)
    assert acc.n == 1000
    np.testing.assert_allclose(acc.total.mean, pooled.mean(axis=0), rtol=1e-13)
    centered = pooled - pooled.mean(0)
    expected = centered.T @ centered
    np.testing.assert_allclose(acc.total.m2, expected, rtol=0, atol=1e-10 * abs(expected).max())


def test_async_learn_answers_202_and_its_job_reports_the_rows(client: Client, pid: str) -> None:
    resp, env = client._send("POST", f"/symetry/rest/c1/projects/{pid}/learn",
                             params={"async": True}, json=frame([[1.0], [2.0], [4.0]]))
    assert resp.status_code == 202 and env["statusCode"] == "ACCEPTED"
    location = resp.headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    assert location == f"/symetry/rest/c1/jobs/{job_id}"
    done = client.request("GET", location, params={"wait": 10})
    assert done["values"]["jobinfo"]["status"] == "done"
    assert done["values"]["rows"] == 3
    assert job_id in [j["id"] for j in client.jobs()]
    assert client.project_info(pid)["rows"] == 3


def test_csv_body_is_learned_like_the_same_dataframe(node: Node, client: Client, pid: str) -> None:
    rows = [[1.5, 0], [2.5, 1], [3.0, 1]]
    client.learn_csv(pid, b"x,b\n1.5,0\n2.5,1\n3.0,1\n", types="C,B")
    acc = node.app.state.service.local_accumulator("c1", pid)
    assert acc.n == 3 and acc.types == {"x": "C", "b": "B"}
    np.testing.assert_allclose(acc.total.mean, np.mean(rows, axis=0))


def test_arrow_stream_body_is_learned(node: Node, client: Client, pid: str) -> None:
    table = pa.table({"u": [1.0, 2.0, 3.0, 6.0], "v": [0.5, 0.5, 1.5, 1.5]})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    client.request("POST", f"/symetry/rest/c1/projects/{pid}/learn", content=sink.getvalue(),
                   headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    acc = node.app.state.service.local_accumulator("c1", pid)
    assert acc.n == 4
    np.testing.assert_allclose(acc.total.mean, [3.0, 1.0])


BAD_BODIES = {
    "malformed-json": (b'{"attributeNames": ["x"', "not valid JSON"),
    "not-an-object": (b"[1, 2, 3]", "JSON object"),
    "unknown-type": (b'{"attributeNames":["x"],"attributeTypes":["Q"],"data":[["1"]]}', "Q"),
    "nan": (b'{"attributeNames":["x"],"attributeTypes":["C"],"data":[["NaN"]]}', "x"),
    "not-a-number": (b'{"attributeNames":["x"],"attributeTypes":["C"],"data":[["abc"]]}', "abc"),
    "ragged": (b'{"attributeNames":["x","y"],"attributeTypes":["C","C"],"data":[["1"]]}', "row 0"),
    "binary-not-0-1": (b'{"attributeNames":["b"],"attributeTypes":["B"],"data":[["2"]]}', "b"),
    "missing-data": (b'{"attributeNames":["x"],"attributeTypes":["C"]}', "data"),
    "empty": (b"", ""),
    "no-attributes": (b'{"attributeNames":[],"attributeTypes":[],"data":[[]]}', "no attribute"),
    "all-ignored": (b'{"attributeNames":["x"],"attributeTypes":["X"],"data":[["1"]]}',
                    "no attribute"),
}


@pytest.mark.parametrize("body,needle", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_a_bad_dataframe_is_400_saying_why(client: Client, pid: str, body: bytes,
                                           needle: str) -> None:
    with pytest.raises(ApiError) as e:
        client.request("POST", f"/symetry/rest/c1/projects/{pid}/learn", content=body,
                       headers={"Content-Type": "application/json"})
    assert (e.value.http_status, e.value.status_string) == (400, "BAD_REQUEST")
    assert needle in e.value.message


def test_a_type_change_against_the_project_is_400(client: Client, pid: str) -> None:
    client.learn(pid, frame([[1.0, 0.0]], ["x", "b"], "CB"))
    with pytest.raises(ApiError) as e:
        client.learn(pid, frame([[1.0, 0.5]], ["x", "b"], "CC"))
    assert e.value.http_status == 400 and "'b'" in e.value.message
    assert client.project_info(pid)["rows"] == 1


def test_forgetting_more_rows_than_learned_is_400_and_changes_nothing(client: Client,
                                                                      pid: str) -> None:
    client.learn(pid, frame([[1.0]]))
    with pytest.raises(ApiError) as e:
        client.forget(pid, frame([[1.0], [2.0]]))
    assert e.value.http_status == 400
    assert client.project_info(pid)["rows"] == 1


def test_a_body_of_another_media_type_is_415(client: Client, pid: str) -> None:
    with pytest.raises(ApiError) as e:
        client.request("POST", f"/symetry/rest/c1/projects/{pid}/learn", content=b"x: 1",
                       headers={"Content-Type": "application/yaml"})
    assert e.value.http_status == 415


def test_a_body_over_the_limit_is_413(node: Node, client: Client, pid: str) -> None:
    limit = node.settings.max_body_bytes
    rows = [["1.000000"] * 10] * (limit // 100 + 100)
    big = {"attributeNames": [f"c{i}" for i in range(10)], "attributeTypes": ["C"] * 10,
           "data": rows}
    with pytest.raises(ApiError) as e:
        client.learn(pid, big)
    assert (e.value.http_status, e.value.status_string) == (413, "PAYLOAD_TOO_LARGE")
    assert client.project_info(pid)["rows"] == 0


def test_a_declared_length_over_the_limit_is_413_before_the_body(node: Node, pid: str) -> None:
    # A raw socket: the client announces more than the limit and sends almost nothing;
    # the node answers from Content-Length alone, without waiting for the body.
    host, port = node.url.removeprefix("http://").split(":")
    head = (f"POST /symetry/rest/c1/projects/{pid}/learn HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {node.settings.max_body_bytes + 1}\r\n\r\n{{")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"PAYLOAD_TOO_LARGE" not in answer:  # headers and body may come apart
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.decode().startswith("HTTP/1.1 413")
    assert b"PAYLOAD_TOO_LARGE" in answer
