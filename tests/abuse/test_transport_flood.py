"""A bounded flood of hostile connections against a real `fedstats node` process.

Hundreds of connections of every kind the transport findings of issue 14 name, opened
from sixteen other loopback addresses (127.0.0.2-17) with the node's default limits: idle
ones, headers sent a byte at a time, unfinished headers just under the header limit,
bodies declared at the largest size (256 MB, with a real customer's id and a forged MAC)
and sent in part (2 MB), and fragmented WebSocket messages sent in part (6 MB), none of
them signed. Before the transport limits, the declared bodies alone made every request
with a body 503, and the WebSocket messages held 360 MB. While they are all open, another customer's signed learn, build and
predict are served, and the node process's peak memory (its VmHWM, read from /proc)
stays under the ceiling docs/limits.md states: its peak before the flood plus twice
`max_unverified_bytes` (what every unsigned address together may hold, counted once as
received and once more for the parser's and the reader's buffers) plus 64 MB for the
connections themselves.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
from pathlib import Path

from fedstats.node.client import Client
from fedstats.node.limits import Limits
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import signed_headers
from fedstats_harness.localnet import NodeProcess

KINDS = ("idle", "slow_header", "big_header", "partial_body", "partial_ws")
PER_KIND = 200  # 1,000 hostile connections; at most 63 from any one address
SOURCES = [f"127.0.0.{i}" for i in range(2, 18)]
MB = 1024 * 1024


def _peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def _ws_frame(payload: bytes, opcode: int) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([opcode, 0x80 | 127]) + struct.pack("!Q", n) + mask
    keystream = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")
    return head + masked


_WS_PARTIAL = _ws_frame(b" " * (6 * MB), 0x1)  # opcode text, FIN unset


def _forged(key: str) -> bytes:
    """Headers of a real customer, a fresh date and a MAC that will not match the body."""
    headers = signed_headers("c1", key, "POST", "/symetry/rest/c1/projects/p/learn", None, b"x")
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")


def _hostile(kind: str, port: int, source: str, key: str) -> socket.socket:
    sock = _connect(port, source)
    try:
        if kind == "slow_header":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: a")
        elif kind == "big_header":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 60_000)
        elif kind == "partial_body":
            sock.sendall(b"POST /symetry/rest/c1/projects/p/learn HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 268435456\r\nContent-Type: application/json\r\n"
                         + _forged(key) + b"\r\n" + b"{" * (2 * MB))
        elif kind == "partial_ws":
            key = base64.b64encode(os.urandom(16))
            sock.sendall(b"GET /symetry/ws/learn HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                         b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            sock.sendall(_WS_PARTIAL)  # 6 MB of a text message that never ends
    except OSError:
        pass  # refused and closed by the node: what a limit is for
    return sock


def test_a_flood_of_unsigned_connections_leaves_a_customer_served(tmp_path: Path) -> None:
    keys = {"c1": new_secret_key(), "c2": new_secret_key()}
    node = NodeProcess("flood", tmp_path, keys).start()
    good = Client(node.url, "c2", keys["c2"])
    try:
        pid = node.child.pid
        assert pid is not None
        good.create_project("q")
        rows = {"attributeNames": ["x", "y"], "attributeTypes": ["C", "C"],
                "data": [[str(i), str(2 * i + 1)] for i in range(50)]}
        good.learn("q", rows)
        before = _peak_mb(pid)
        socks: list[socket.socket] = []
        lock = threading.Lock()

        def open_kind(kind: str) -> None:
            for i in range(PER_KIND):
                s = _hostile(kind, node.port, SOURCES[i % len(SOURCES)], keys["c1"])
                with lock:
                    socks.append(s)

        threads = [threading.Thread(target=open_kind, args=(k,)) for k in KINDS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert len(socks) == len(KINDS) * PER_KIND
            # all of them are open (or were refused by a limit): the customer is served
            assert good.learn("q", rows) == 50
            good.build("q", "m", "mlr", {"inputAttributeNames": ["x"],
                                         "targetAttributeNames": ["y"]})
            answer = good.predict("q", "m", {"attributeNames": ["x"], "attributeTypes": ["C"],
                                             "data": [["10"]]})
            assert answer
            peak = _peak_mb(pid)
        finally:
            for s in socks:
                s.close()
        ceiling = before + 2 * Limits().max_unverified_bytes / MB + 64
        assert peak <= ceiling, f"node peaked at {peak:.0f} MB (before: {before:.0f} MB)"
        print(f"node peak {before:.0f} MB before the flood, {peak:.0f} MB during it "
              f"(ceiling {ceiling:.0f} MB)")
        assert node.running
        assert good.learn("q", rows) == 50
    finally:
        good.close()
        node.stop()
