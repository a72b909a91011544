"""Model store benchmark: put/load MB/s of a large model and small calls/s, each against a
bare endpoint of the same server stack, measured in the same run, interleaved.

    put    MB/s of POST /jsonrpc/upload/fl.put_model (signed multipart, streamed to disk
           while hashing, fsynced, recorded) vs a bare POST that writes the raw body to a
           file and fsyncs it. The upload's signature (one client pass over the file, its
           SHA-256, declared in X-Model-Sha256 and signed in the file's place, as fedstats'
           clients sign) is computed before the clock starts and reported apart.
    load   MB/s of POST /jsonrpc/download/fl.load_model (signed, verified, streamed) vs a
           bare POST that streams the same file in the same 1 MiB reads; the client
           discards the bytes (and, for `load+verify`, hashes them as the Python client
           does: an extra row, not compared with a target)
    calls  calls/s of sequential `fl.get_model_info` by the Python transport (signed,
           JSON-RPC enveloped, answer parsed) on one keep-alive connection vs sequential
           POSTs to a bare JSON endpoint answering a small object

The bare routes are added to the model store's own router, right after its routes, so
the same middleware and route matching stand in front of both. Every round runs each
pair once, the pair's order alternating from round to round (so a drift of the machine's
load falls on both); the figures are the min, median and max over the rounds, and the
ratio is median over median (`paired` is the median of the rounds' own ratios).

Run: python bench/modelstore.py [--size-mb 1024] [--calls 1000] [--rounds 5]. The server
is one uvicorn process (uvloop/httptools, as `fedstats node` runs) serving the node's app
plus the bare routes; the client is this process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from fedstats.node.modelstore.multipart import (
    encode_fields,
    encode_file_head,
    encode_tail,
    new_boundary,
)
from fedstats.node.modelstore.rpcclient import RpcClient, digest_upload_headers, file_sha256
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import CUSTOMER_HEADER, signed_headers
from fedstats_harness.ports import free_port
from fedstats_harness.process import ChildProcess

CHUNK = 1 << 20
TARGET = 0.70
SERVER = r'''
import os, sys
from pathlib import Path
import anyio.to_thread
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from fedstats.node.api.app import create_app
from fedstats.node.api.jsonrpc.routes import READ_BYTES, router
from fedstats.node.security.customers import parse_customers
from fedstats.node.settings import Settings

data_dir, port, key = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
app = create_app(Settings(data_dir=data_dir), parse_customers({"c1": key}))
bare = data_dir / "bare.bin"

async def bare_upload(request: Request):
    f = open(bare, "wb")
    try:
        async for chunk in request.stream():
            f.write(chunk)
        f.flush(); os.fsync(f.fileno())
    finally:
        f.close()
    return JSONResponse({"size": bare.stat().st_size})

async def bare_download(request: Request):
    await request.body()
    f = open(bare, "rb")
    async def chunks():
        try:
            while chunk := await anyio.to_thread.run_sync(f.read, READ_BYTES):
                yield chunk
        finally:
            f.close()
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"Content-Length": str(bare.stat().st_size)})

async def bare_json(request: Request):
    return JSONResponse({"model_id": "x", "model_size": 1})

# in the model store's router, after its routes: the same stack in front of both
router.add_route("/bench/upload", bare_upload, methods=["POST"])
router.add_route("/bench/download", bare_download, methods=["POST"])
router.add_route("/bench/json", bare_json, methods=["POST"])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="auto", http="auto")
'''


def _file_chunks(path: Path, head: bytes = b"", tail: bytes = b""):
    def gen():
        yield head
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                yield block
        yield tail
    return gen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--calls", type=int, default=1000, help="small calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    key = new_secret_key()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port("127.0.0.1")
        server = ChildProcess([sys.executable, "-c", SERVER, str(root / "node"), str(port), key],
                              root / "server.log", name="bench server")
        server.start()
        url = f"http://127.0.0.1:{port}"
        try:
            server.wait_until(lambda: _healthy(url), 60, what="answering /healthz")
            assert server.pid is not None
            return _run(url, key, root, args, _Clock(server.pid))
        finally:
            server.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) the process used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Clock:
    """Wall seconds of each run, and the CPU seconds the server and this client used."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {}

    def run(self, name: str, fn: Callable[[], object]) -> None:
        s0, c0, t0 = _cpu_of(self.pid), time.process_time(), time.perf_counter()
        fn()
        t1, c1, s1 = time.perf_counter(), time.process_time(), _cpu_of(self.pid)
        self.wall.setdefault(name, []).append(t1 - t0)
        self.cpu.setdefault(name, []).append((s1 - s0, c1 - c0))


def _run(url: str, key: str, root: Path, args: argparse.Namespace, clock: _Clock) -> int:
    size = args.size_mb << 20
    model = root / "model.bin"
    with open(model, "wb") as f:  # random bytes: nothing along the way can shortcut them
        for _ in range(args.size_mb):
            f.write(os.urandom(CHUNK))
    mb = size / 1e6
    http = httpx.Client(timeout=600)
    rpc = RpcClient(url, "c1", key, timeout=600)
    rpc.call("fl.initialize_model_store", {"model_store_ddc": "ddc:bench"})
    boundary = new_boundary()  # as the Python client makes them
    head = encode_fields(boundary, [("data", json.dumps({"model_store_ddc": "ddc:bench"})
                                     .encode(), "application/json")]) + encode_file_head(
        boundary)
    tail = encode_tail(boundary)
    up_path = "/jsonrpc/upload/fl.put_model"
    dl_path = "/jsonrpc/download/fl.load_model"
    state: dict[str, str] = {}
    sign_s: list[float] = []

    def bare_put() -> None:
        http.post(url + "/bench/upload", content=_file_chunks(model)(),
                  headers={"Content-Length": str(size)}).raise_for_status()

    def bare_load() -> None:
        with http.stream("POST", url + "/bench/download", content=b"{}") as r:
            r.raise_for_status()
            for _ in r.iter_raw(CHUNK):
                pass

    def load() -> None:
        body = json.dumps({"jsonrpc": "2.0", "method": "fl.load_model", "id": 1, "params": {
            "model_store_ddc": "ddc:bench", "model_id": state["model_id"]}}).encode()
        signed = signed_headers("c1", key, "POST", dl_path, None, body)
        signed.pop(CUSTOMER_HEADER)
        with http.stream("POST", url + dl_path, content=body,
                         headers={**signed, "APIKey": "c1"}) as r:
            r.raise_for_status()
            got = 0
            for chunk in r.iter_raw(CHUNK):
                got += len(chunk)
        assert got == size, (got, size)

    def load_verified() -> None:
        sha = hashlib.sha256()
        rpc.download({"model_store_ddc": "ddc:bench", "model_id": state["model_id"]},
                     sha.update)

    def bare_calls() -> None:
        for _ in range(args.calls):
            http.post(url + "/bench/json", content=b"{}").raise_for_status()

    def calls() -> None:
        params = {"model_store_ddc": "ddc:bench", "model_id": state["model_id"]}
        for _ in range(args.calls):
            rpc.call("fl.get_model_info", params)

    for r in range(args.rounds):
        # the upload's signature, one pass over the file (its SHA-256), off the clock
        t = time.perf_counter()
        with open(model, "rb") as mf:
            digest = file_sha256(mf)
        headers = digest_upload_headers("c1", key, up_path, head, digest, tail)
        sign_s.append(time.perf_counter() - t)
        headers.update({"APIKey": "c1",
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(len(head) + size + len(tail))})

        def put(headers: dict[str, str] = headers) -> None:
            resp = http.post(url + up_path, content=_file_chunks(model, head, tail)(),
                             headers=headers)
            resp.raise_for_status()
            state["model_id"] = resp.json()["result"]["model_id"]

        pairs: list[tuple[str, Callable[[], None]]] = [
            ("put", put), ("bare_put", bare_put), ("load", load), ("bare_load", bare_load),
            ("calls", calls), ("bare_calls", bare_calls)]
        if r % 2:  # the bare one first every other round
            pairs = [p for i in range(0, len(pairs), 2) for p in (pairs[i + 1], pairs[i])]
        for name, fn in pairs:
            clock.run(name, fn)
        clock.run("load_verified", load_verified)
    rpc.close()
    http.close()

    def rates(name: str, amount: float) -> list[float]:
        return [amount / t for t in clock.wall[name]]

    def cpu(name: str, per: float) -> str:
        server = statistics.median(c[0] for c in clock.cpu[name]) / per
        client = statistics.median(c[1] for c in clock.cpu[name]) / per
        return f"{server:8.3f} {client:8.3f}"

    print(f"model of {args.size_mb} MiB, {args.rounds} rounds, {args.calls} small calls a "
          f"round (target: >= {TARGET:.0%} of each baseline; ratio = median / median)")
    print(f"  {'':22s} {'ours min/median/max':>26s}   {'bare min/median/max':>26s}   "
          f"{'ratio':>6s} {'paired':>6s}")
    rows = [("put MB/s", "put", "bare_put", mb), ("load MB/s", "load", "bare_load", mb),
            ("get_model_info calls/s", "calls", "bare_calls", args.calls)]
    met = True
    for label, ours_k, bare_k, amount in rows:
        ours, bare = rates(ours_k, amount), rates(bare_k, amount)
        ratio = statistics.median(ours) / statistics.median(bare)
        paired = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
        met = met and ratio >= TARGET
        print(f"  {label:22s} {_three(ours):>26s}   {_three(bare):>26s}   "
              f"{100 * ratio:5.1f}% {100 * paired:5.1f}%")
    print(f"  CPU seconds (median; server, client): put per GB {cpu('put', mb / 1e3)}, "
          f"bare {cpu('bare_put', mb / 1e3)}")
    print(f"    load per GB {cpu('load', mb / 1e3)}, bare {cpu('bare_load', mb / 1e3)}; "
          f"per 1000 calls {cpu('calls', args.calls / 1e3)}, bare "
          f"{cpu('bare_calls', args.calls / 1e3)}")
    verified = rates("load_verified", mb)
    print(f"  {'load+verify MB/s':22s} {_three(verified):>26s}   (the client also hashes: "
          "no target)")
    print(f"  client-side signing of the upload (one SHA-256 pass, not in 'put'): "
          f"{_three([mb / s for s in sign_s])} MB/s")
    print("targets met" if met else "targets NOT met")
    return 0


def _three(values: list[float]) -> str:
    return (f"{min(values):7.1f} {statistics.median(values):7.1f} {max(values):7.1f}")


if __name__ == "__main__":
    sys.exit(main())
