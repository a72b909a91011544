"""Limits that keep unsigned or hostile traffic from taking the node down: the bytes of
bodies read at once (503 + Retry-After beyond them), checked on a real node over sockets."""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlparse

import orjson

from fedstats.node.security.signing import signed_headers
from fedstats_harness.inprocess import Node
from fedstats_harness.waiting import eventually


def _open_post(node: Node, path: str, length: int, first: bytes = b"") -> socket.socket:
    """A POST announcing `length` body bytes, sending only `first` of them (yet)."""
    url = urlparse(node.url)
    headers = signed_headers("c1", node.keys["c1"], "POST", path, None, b"x")  # MAC won't match
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {length}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + first)
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_bodies_read_at_once_are_bounded_node_wide(node_factory: Callable[..., Node]) -> None:
    node = node_factory(max_body_bytes=1_000_000, max_body_bytes_reading=1_500_000)
    c = node.client()
    c.create_project("p")  # this address has signed: the whole budget is open to it
    path = "/symetry/rest/c1/projects/p/learn"
    gate = node.app.state.gate
    slow = _open_post(node, path, 900_000, b"{" * 850_000)  # a slow (or hostile) sender
    try:
        # only bytes received count; the node's reader runs in uvicorn's thread
        eventually(lambda: gate.used >= 850_000, 10, "the slow body to be read", 0.01)
        second = _open_post(node, path, 700_000, b" " * 700_000)
        try:
            answer = _answer(second)
        finally:
            second.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"retry-after: 1" in head.lower()
        envelope = orjson.loads(body)
        assert envelope["statusCode"] == "SERVICE_UNAVAILABLE"
        assert envelope["values"]["errorKind"] == "overloaded"
        assert envelope["values"]["limit"] == "max_body_bytes_reading"
        assert envelope["values"]["value"] == 1_500_000
        # a smaller one still fits, and is served (then refused for its bad signature)
        small = _open_post(node, path, 500_000, b" " * 500_000)
        try:
            assert _answer(small).startswith(b"HTTP/1.1 401")
        finally:
            small.close()
    finally:
        slow.close()
    eventually(lambda: gate.used == 0, 10, "the abandoned body to give its bytes back", 0.01)
    c.learn("p", {"attributeNames": ["a"], "attributeTypes": ["C"], "data": [["1"]]})


def test_a_declared_body_that_never_comes_holds_nothing(
        node_factory: Callable[..., Node]) -> None:
    """The reproduction of issue 14: two sockets declaring 256 MB and sending nothing made
    every request with a body 503, for every customer, while they stayed open."""
    node = node_factory()
    c = node.client("c2")
    c.create_project("q")
    path = "/symetry/rest/c1/projects/p/learn"
    held = [_open_post(node, path, 268_435_456) for _ in range(2)]
    try:
        eventually(lambda: node.app.state.gate.connections >= 3, 10, "the sockets to open")
        assert node.app.state.gate.used == 0
        assert c.learn("q", {"attributeNames": ["a"], "attributeTypes": ["C"],
                             "data": [["1"], ["2"]]}) == 2
    finally:
        for sock in held:
            sock.close()


def test_websocket_messages_have_their_own_smaller_limit() -> None:
    from fedstats.cli import build_parser
    from fedstats.node.settings import MB, Settings

    s = Settings()
    assert s.max_ws_message_bytes == 16 * MB < s.max_body_bytes
    assert s.max_body_bytes_reading == 512 * MB
    args = build_parser().parse_args(["node", "--max-ws-message-bytes", "1000"])
    assert args.max_ws_message_bytes == 1000


def test_a_500_keeps_the_connection_for_the_next_request(
        node_factory: Callable[..., Node], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    node = node_factory()
    c = node.client()
    c.create_project("p")

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(node.app.state.service, "project_info", broken)
    path = "/symetry/rest/c1/projects/p/info"
    url = urlparse(node.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        for expected in (b"HTTP/1.1 500", b"HTTP/1.1 500", b"HTTP/1.1 200"):
            if expected.endswith(b"200"):
                monkeypatch.undo()
            headers = signed_headers("c1", node.keys["c1"], "GET", path)
            head = f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            sock.sendall(head.encode("latin-1"))  # the same connection every time
            answer = _answer(sock)
            assert answer.startswith(expected), answer[:200]
            if expected.endswith(b"500"):
                body = orjson.loads(answer.partition(b"\r\n\r\n")[2])
                assert body["values"]["errorKind"] == "internal"
                assert "a bug" not in body["statusString"]
    finally:
        sock.close()
    # and the project's own client, keeping its connection, goes on after a 500
    monkeypatch.setattr(node.app.state.service, "project_info", broken)
    try:
        c.project_info("p")
    except Exception as e:  # ApiError 500
        assert "500" in str(e)
    monkeypatch.undo()
    assert c.project_info("p")["rows"] == 0
