"""Model store benchmark: put/load MB/s of a large model and small calls/s, each against a
bare endpoint of the same server stack, measured in the same run (compare within a run).

    put    MB/s of POST /jsonrpc/upload/fl.put_model (signed multipart, streamed to disk
           while hashing, fsynced, recorded) vs a bare POST that writes the raw body to a
           file and fsyncs it. The upload's signature (two client passes over the file:
           MD5, HMAC) is computed before the clock starts and reported apart.
    load   MB/s of POST /jsonrpc/download/fl.load_model (signed, verified, streamed) vs a
           bare POST answered by Starlette's FileResponse of the same file; the client
           discards the bytes (and, for `load+verify`, hashes them as the Python client does)
    calls  calls/s of sequential signed `fl.get_model_info` on one keep-alive connection
           vs a bare JSON endpoint answering a small object

Run: python bench/modelstore.py [--size-mb 1024] [--calls 2000]. The server is one
uvicorn process (uvloop/httptools, as `fedstats node` runs) serving the node's app plus
the bare routes; the client is this process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from fedstats.node.modelstore.multipart import encode_fields, encode_file_head, encode_tail
from fedstats.node.modelstore.rpcclient import RpcClient
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import CUSTOMER_HEADER, signed_headers, signed_headers_streamed
from fedstats_harness.ports import free_port
from fedstats_harness.process import ChildProcess

CHUNK = 1 << 20
SERVER = r'''
import os, sys
from pathlib import Path
import anyio.to_thread
import uvicorn
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from fedstats.node.api.app import create_app
from fedstats.node.security.customers import parse_customers
from fedstats.node.settings import Settings

data_dir, port, key = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
app = create_app(Settings(data_dir=data_dir), parse_customers({"c1": key}))
bare = data_dir / "bare.bin"

async def bare_upload(request: Request):
    f = open(bare, "wb")
    try:
        async for chunk in request.stream():
            await anyio.to_thread.run_sync(f.write, chunk) if len(chunk) > 1 << 20 else f.write(chunk)
        f.flush(); os.fsync(f.fileno())
    finally:
        f.close()
    return JSONResponse({"size": bare.stat().st_size})

async def bare_download(request: Request):
    await request.body()
    return FileResponse(bare, media_type="application/octet-stream")

async def bare_json(request: Request):
    return JSONResponse({"model_id": "x", "model_size": 1})

app.add_route("/bench/upload", bare_upload, methods=["POST"])
app.add_route("/bench/download", bare_download, methods=["POST"])
app.add_route("/bench/json", bare_json, methods=["POST"])
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
    ap.add_argument("--calls", type=int, default=2000)
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
            return _run(url, key, root, args)
        finally:
            server.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _run(url: str, key: str, root: Path, args: argparse.Namespace) -> int:
    size = args.size_mb << 20
    model = root / "model.bin"
    with open(model, "wb") as f:  # random bytes: nothing along the way can shortcut them
        for _ in range(args.size_mb):
            f.write(os.urandom(CHUNK))
    mb = size / 1e6
    http = httpx.Client(timeout=600)
    rpc = RpcClient(url, "c1", key)
    rpc.call("fl.initialize_model_store", {"model_store_ddc": "ddc:bench"})

    # -- put vs bare upload
    t = time.perf_counter()
    http.post(url + "/bench/upload", content=_file_chunks(model)(),
              headers={"Content-Length": str(size)}).raise_for_status()
    bare_put = mb / (time.perf_counter() - t)
    boundary = "benchboundary0123456789"
    head = encode_fields(boundary, [("data", json.dumps({"model_store_ddc": "ddc:bench"})
                                     .encode(), "application/json")]) + encode_file_head(
        boundary)
    tail = encode_tail(boundary)
    path = "/jsonrpc/upload/fl.put_model"
    t = time.perf_counter()
    headers = signed_headers_streamed("c1", key, "POST", path, _file_chunks(model, head, tail))
    sign_s = time.perf_counter() - t
    headers.pop(CUSTOMER_HEADER)
    headers.update({"APIKey": "c1", "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(head) + size + len(tail))})
    t = time.perf_counter()
    resp = http.post(url + path, content=_file_chunks(model, head, tail)(), headers=headers)
    put = mb / (time.perf_counter() - t)
    resp.raise_for_status()
    info = resp.json()["result"]

    # -- load vs bare download
    t = time.perf_counter()
    with http.stream("POST", url + "/bench/download", content=b"{}") as r:
        for _ in r.iter_raw(CHUNK):
            pass
    bare_load = mb / (time.perf_counter() - t)
    body = json.dumps({"jsonrpc": "2.0", "method": "fl.load_model", "id": 1, "params": {
        "model_store_ddc": "ddc:bench", "model_id": info["model_id"]}}).encode()
    dl = "/jsonrpc/download/fl.load_model"
    signed = signed_headers("c1", key, "POST", dl, None, body)
    signed.pop(CUSTOMER_HEADER)
    t = time.perf_counter()
    with http.stream("POST", url + dl, content=body, headers={**signed, "APIKey": "c1"}) as r:
        r.raise_for_status()
        for _ in r.iter_raw(CHUNK):
            pass
    load = mb / (time.perf_counter() - t)
    sha = hashlib.sha256()
    t = time.perf_counter()
    rpc.download({"model_store_ddc": "ddc:bench", "model_id": info["model_id"]}, sha.update)
    load_verified = mb / (time.perf_counter() - t)

    # -- small calls vs a bare JSON endpoint
    n = args.calls
    t = time.perf_counter()
    for _ in range(n):
        http.post(url + "/bench/json", content=b"{}").raise_for_status()
    bare_calls = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(n):
        rpc.call("fl.get_model_info", {"model_store_ddc": "ddc:bench",
                                       "model_id": info["model_id"]})
    calls = n / (time.perf_counter() - t)
    rpc.close()
    http.close()

    print(f"model of {args.size_mb} MiB, {n} small calls (targets: >= 70% of each baseline)")
    rows = [("put MB/s", put, bare_put), ("load MB/s", load, bare_load),
            ("load+verify MB/s", load_verified, bare_load),
            ("get_model_info calls/s", calls, bare_calls)]
    for name, ours, base in rows:
        print(f"  {name:24s} {ours:9.1f}   bare {base:9.1f}   {100 * ours / base:5.1f}%")
    print(f"  (client-side signing of the upload, two passes: {mb / sign_s:.0f} MB/s, "
          f"{sign_s:.2f} s, not in 'put')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
