"""The transport half of issue 14, each finding reproduced over real sockets.

Hostile sockets come from other loopback addresses (127.0.0.2, ...: all of 127/8 is the
loopback interface), so the per-address limits can be seen apart from the signed client,
which talks from 127.0.0.1. Nothing here is timed: a test waits for the node's answer (or
for the node to close the socket), and the node's limits are set small so it comes soon.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import orjson
import pytest

from fedstats.node.security.signing import signed_headers
from fedstats_harness.inprocess import Node
from fedstats_harness.waiting import eventually

ROWS = {"attributeNames": ["a", "b"], "attributeTypes": ["C", "C"],
        "data": [["1", "2"], ["2", "3.5"], ["4", "1"], ["3", "3"], ["5", "8"], ["6", "2"]]}


def _connect(node: Node, source: str = "127.0.0.2") -> socket.socket:
    url = urlparse(node.url)
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect((url.hostname, url.port))
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the node sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _refusal(answer: bytes, status: int, limit: str) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), answer[:300]
    envelope = orjson.loads(body)
    assert envelope["values"]["limit"] == limit, envelope
    assert limit in envelope["statusString"]
    return envelope


def _learn_and_predict(node: Node, pid: str) -> None:
    """Another customer's signed learn, build and predict, served while the attack runs."""
    c = node.client("c2")
    c.create_project(pid)
    assert c.learn(pid, ROWS) == 6
    c.build(pid, "m", "mlr", {"targetAttributeNames": ["b"], "inputAttributeNames": ["a"]})
    answer = c.predict(pid, "m", {"attributeNames": ["a"], "attributeTypes": ["C"],
                                  "data": [["2"]]})
    assert answer


@pytest.fixture
def node(limited_node: Callable[..., Node]) -> Node:
    return limited_node(header_timeout_s=1, body_timeout_s=1, min_body_rate=1024, linger_s=1,
                        max_connections_per_address=8, max_unverified_bytes_per_address=300_000,
                        max_unverified_bytes=500_000)


def test_a_huge_header_is_refused_431_before_it_is_buffered(node: Node) -> None:
    sock = _connect(node)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < 50 * 1024 * 1024:  # the finding: 50 MB headers were accepted
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _until_closed(sock)
    assert sent < 4 * 1024 * 1024, "the node kept reading a header far over its limit"
    _refusal(answer, 431, "max_header_bytes")
    _learn_and_predict(node, "after-header")


def test_too_many_header_fields_are_431(node: Node) -> None:
    sock = _connect(node)
    with sock:
        fields = "".join(f"X-F{i}: {i}\r\n" for i in range(150))
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())
        answer = _until_closed(sock)
    _refusal(answer, 431, "max_headers")


def test_a_connection_that_sends_nothing_is_closed(node: Node) -> None:
    sock = _connect(node)
    with sock:
        answer = _until_closed(sock)  # the node closes it: header_timeout_s=1
    _refusal(answer, 408, "header_timeout_s")
    eventually(lambda: node.app.state.gate.connections == 0, 10, "the connection to be gone")


def test_slowloris_headers_are_cut_at_the_header_timeout(node: Node) -> None:
    sock = _connect(node)
    sent = 0
    with sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            for _ in range(200):  # one header byte every 50 ms: never finishing
                sock.sendall(b"X")
                sent += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _until_closed(sock)
    assert sent < 200, "a header sent a byte at a time was never cut"
    _refusal(answer, 408, "header_timeout_s")


def _open_post(node: Node, length: int, first: bytes = b"", source: str = "127.0.0.2",
               path: str = "/symetry/rest/c1/projects/p/learn") -> socket.socket:
    headers = signed_headers("c1", node.keys["c1"], "POST", path, None, b"x")  # MAC won't match
    sock = _connect(node, source)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + first)
    return sock


def test_a_body_that_stops_arriving_is_closed_and_holds_nothing(node: Node) -> None:
    socks = [_open_post(node, 268_435_456, b"{" * 1000) for _ in range(2)]
    try:
        gate = node.app.state.gate
        eventually(lambda: gate.used >= 2000, 10, "the first bytes to be held")
        _learn_and_predict(node, "during-stall")  # the finding: this was 503 for everyone
        for sock in socks:
            _refusal(_until_closed(sock), 408, "body_timeout_s")
        eventually(lambda: gate.used == 0, 10, "the stalled bodies to give their bytes back")
    finally:
        for sock in socks:
            sock.close()


def test_connections_per_address_are_bounded(node: Node) -> None:
    held = [_connect(node, "127.0.0.3") for _ in range(8)]
    try:
        eventually(lambda: node.app.state.gate.by_address.get("127.0.0.3") == 8, 10,
                   "the eight connections to open")
        extra = _connect(node, "127.0.0.3")
        with extra:
            envelope = _refusal(_until_closed(extra), 429, "max_connections_per_address")
        assert envelope["values"]["value"] == 8
        _learn_and_predict(node, "per-address")  # 127.0.0.1 is another address
    finally:
        for sock in held:
            sock.close()


def test_connections_per_node_are_bounded(limited_node: Callable[..., Node]) -> None:
    node = limited_node(max_connections=6, max_connections_per_address=100)
    held = [_connect(node, f"127.0.0.{4 + i % 3}") for i in range(6)]
    try:
        eventually(lambda: node.app.state.gate.connections == 6, 10, "six connections")
        extra = _connect(node, "127.0.0.9")
        with extra:
            answer = _until_closed(extra)
        assert b"retry-after: 1" in answer.lower()
        _refusal(answer, 503, "max_connections")
    finally:
        for sock in held:
            sock.close()
    eventually(lambda: node.app.state.gate.connections == 0, 10, "the connections to close")
    _learn_and_predict(node, "per-node")


def test_an_address_that_never_signed_holds_only_its_share(node: Node) -> None:
    gate = node.app.state.gate
    node.client("c2").create_project("share")  # 127.0.0.1 has signed now
    hostile = _open_post(node, 900_000, b" " * 400_000, source="127.0.0.5")
    try:
        envelope = _refusal(_until_closed(hostile), 503, "max_unverified_bytes_per_address")
        assert envelope["values"]["value"] == 300_000
    finally:
        hostile.close()
    eventually(lambda: gate.used == 0, 10, "the refused body to give its bytes back")
    # the same size from the address that signed is read whole (then its MAC is refused)
    trusted = _open_post(node, 400_000, b" " * 400_000, source="127.0.0.1")
    with trusted:
        head = _until_closed(trusted)
    assert head.startswith(b"HTTP/1.1 401"), head[:200]


def test_a_body_refused_before_it_arrived_closes_its_connection_despite_late_bytes(
        node: Node) -> None:
    # the finding: uvicorn kept such a connection for keep-alive, waiting for the rest of
    # the body, and each late byte stopped its keep-alive timer: open until the client left
    hostile = _open_post(node, 900_000, b" " * 400_000, source="127.0.0.6")
    with hostile:
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += hostile.recv(65536)
        assert b"connection: close" in answer.partition(b"\r\n\r\n")[0].lower(), answer
        with contextlib.suppress(OSError):  # the node may have closed already
            hostile.sendall(b" " * 100_000)
        hostile.settimeout(10)
        answer += _until_closed(hostile)
        _refusal(answer, 503, "max_unverified_bytes_per_address")
        # the node's side closes too, after linger_s, though this client trickles on

        def trickled_until_closed() -> bool:
            with contextlib.suppress(OSError):
                hostile.sendall(b" ")
            return "127.0.0.6" not in node.app.state.gate.by_address
        eventually(trickled_until_closed, 15, "the node to close the lingering connection")


def test_a_client_that_sends_its_whole_body_before_reading_still_gets_the_answer(
        node: Node) -> None:
    # the finding: closing at once after such an answer reset a client still sending, and
    # the reset dropped the answer unread (CI: `Connection reset by peer` for a 413). The
    # node shuts its side for writing and drops the rest of the body, then closes.
    length = 8_000_000  # far over the address's 300 kB share and the sockets' buffers
    sock = _open_post(node, length, source="127.0.0.7")
    with sock:
        sock.sendall(b" " * length)  # all of it, reading nothing, as an HTTP client does
        answer = _until_closed(sock)
    _refusal(answer, 503, "max_unverified_bytes_per_address")
    assert b"connection: close" in answer.partition(b"\r\n\r\n")[0].lower()


def test_a_client_gone_mid_body_is_not_an_internal_error(node: Node) -> None:
    metrics = node.app.state.metrics
    before = metrics.errors.labels("internal")._value.get()
    gone = metrics.errors.labels("client_gone")._value.get()
    sock = _open_post(node, 1_000_000, b"{" * 5000, source="127.0.0.1")
    eventually(lambda: node.app.state.gate.used >= 5000, 10, "the first bytes to arrive")
    sock.close()
    eventually(lambda: metrics.errors.labels("client_gone")._value.get() == gone + 1, 10,
               "the abandoned request to be counted")
    assert metrics.errors.labels("internal")._value.get() == before


# --- WebSocket -------------------------------------------------------------------------

@contextmanager
def _raw_ws(node: Node, source: str) -> Iterator[socket.socket]:
    sock = _connect(node, source)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /symetry/ws/learn HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        yield sock
    finally:
        sock.close()


def _frame(payload: bytes, opcode: int, fin: bool) -> bytes:
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    size = bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack("!H", n)
                                              if n < 65536 else
                                              bytes([0x80 | 127]) + struct.pack("!Q", n))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([first]) + size + mask + masked


def _close_frame(sock: socket.socket) -> tuple[int, str]:
    data = _until_closed(sock)
    assert data and data[0] == 0x88, data[:50]
    n = data[1] & 0x7F
    body = data[2:2 + n]
    return struct.unpack("!H", body[:2])[0], body[2:].decode()


def test_websocket_bytes_of_an_unsigned_address_are_bounded(node: Node) -> None:
    gate = node.app.state.gate
    with _raw_ws(node, "127.0.0.6") as sock:
        chunk = b" " * 60_000
        try:
            sock.sendall(_frame(chunk, 0x1, fin=False))  # a fragmented text message...
            for _ in range(10):  # ...that would reach 660 KB: over the 300 KB share
                sock.sendall(_frame(chunk, 0x0, fin=False))
        except (BrokenPipeError, ConnectionResetError):
            pass
        code, reason = _close_frame(sock)
    assert code == 1013
    assert "max_unverified_bytes_per_address=300000" in reason
    eventually(lambda: gate.used == 0, 10, "the partial message's bytes to be given back")
    # a customer's own WebSocket learn is served
    node.client("c2").create_project("wsp")
    with node.ws("c2").connect("learn", ["wsp"]) as ws:
        ws.send(ROWS)
        assert ws.recv(10)["values"]["rows"] == 6


def test_the_header_timeout_holds_on_a_kept_alive_connection(node: Node) -> None:
    sock = _connect(node)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Never: ends")  # the next one stalls
        answer = _until_closed(sock)
    tail = answer[answer.find(b"HTTP/1.1 408"):]
    _refusal(tail, 408, "header_timeout_s")
