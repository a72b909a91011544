"""Node benchmark: REST learn throughput and predict latency, each against a baseline
measured in the same run (the machines are noisy: compare within a run only).

    learn   rows/s of POST .../learn for 1,000- and 100,000-row JSON DataFrames (20 columns)
            vs (a) `orjson.loads` + `numpy.array(rows, dtype=float)` on the same bytes and
               (b) the engine's own rate (Accumulator.learn) on the parsed array
    predict p50/p99 of sequential round trips of a 10-row frame over REST and over WebSocket
            vs a bare `websockets` echo server answering the same payload

Run: python bench/node.py [--quick]. The node runs in a separate process (uvicorn with
uvloop/httptools, as `fedstats node` runs it), so the client does not share its CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from websockets.sync.client import connect

from fedstats.node.client import Client
from fedstats.node.client_ws import WsClient
from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.frame import Batch
from fedstats.node.engine.ingest import parse_dataframe_bytes
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import signed_headers
from fedstats_harness.localnet import NodeProcess
from fedstats_harness.process import ChildProcess

COLS = 20
ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0) as server:  # port 0: it says which it got
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

asyncio.run(main())
"""


def dataframe_bytes(rows: int, seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).normal(size=(rows, COLS))
    data = [[f"{v:.6f}" for v in r] for r in x]
    return orjson.dumps({"attributeNames": [f"c{j}" for j in range(COLS)],
                         "attributeTypes": ["C"] * COLS, "data": data})


def best_rate(fn, rows: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return rows / statistics.median(times)



def start_node(root: Path, key: str) -> NodeProcess:
    """`fedstats node` in its own process (uvloop/httptools, as users run it)."""
    return NodeProcess("bench", root, {"c1": key}).start()


def rest_learn_rate(client: Client, body: bytes, rows: int, repeat: int) -> float:
    import httpx

    path = "/symetry/rest/c1/projects/bench/learn"
    with httpx.Client(timeout=120) as http:
        def once() -> None:
            h = signed_headers("c1", client._secret, "POST", path, None, body)
            h["Content-Type"] = "application/json"
            r = http.post(client.base_url + path, content=body, headers=h)
            assert r.status_code == 200, r.text[:300]

        once()  # warm-up
        return best_rate(once, rows, repeat)


def latencies(fn, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for _ in range(20):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    out.sort()
    return out[len(out) // 2] * 1e6, out[int(len(out) * 0.99)] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeat, n_lat = (3, 300) if args.quick else (7, 2000)

    tmp = Path(tempfile.mkdtemp(prefix="fedstats-bench-"))
    key = new_secret_key()
    node = start_node(tmp, key)
    url = node.url
    try:
        client = Client(url, "c1", key, timeout=120)
        client.create_project("bench")
        print(f"node {url} (pid {node.child.pid}); {os.cpu_count()} CPUs")
        print("\n== REST learn, JSON DataFrame of 20 columns ==")
        for rows in (1_000, 100_000):
            body = dataframe_bytes(rows)
            base = best_rate(lambda b=body: np.array(orjson.loads(b)["data"], dtype=float),
                             rows, repeat)
            arr = np.array(orjson.loads(body)["data"], dtype=float)
            batch = Batch.from_array(arr, [f"c{j}" for j in range(COLS)])
            engine = best_rate(lambda b=batch: Accumulator().learn(b), rows, repeat)
            ingest = best_rate(lambda b=body: parse_dataframe_bytes(b), rows, repeat)
            rest = rest_learn_rate(client, body, rows, repeat)
            print(f"{rows:>7} rows  orjson+numpy baseline {base:12,.0f} rows/s")
            print(f"{'':>13}ingest (parse_dataframe_bytes) {ingest:12,.0f} rows/s -> "
                  f"{ingest / base:5.2f}x baseline (target >= 4x)")
            print(f"{'':>13}REST learn end to end   {rest:12,.0f} rows/s -> {rest / base:5.2f}x "
                  f"baseline; {rest / engine:.3f} of the engine ({engine:,.0f} rows/s)")
        print("  (REST end to end includes the client signing the body: MD5 + HMAC-SHA256 on\n"
              "   each side, the transfer, and the durable commit before the answer)")

        print("\n== predict, 10-row frame, sequential round trips ==")
        x = np.random.default_rng(1).normal(size=(2000, COLS))
        y = x @ np.arange(COLS)
        train = {"attributeNames": [f"c{j}" for j in range(COLS)] + ["y"],
                 "attributeTypes": ["C"] * (COLS + 1),
                 "data": [[f"{v:.6f}" for v in r] for r in np.column_stack([x, y])]}
        client.create_project("pred")
        client.learn("pred", train)
        client.build("pred", "lin", "mlr", {"targetAttributeNames": ["y"]})
        q = {"attributeNames": [f"c{j}" for j in range(COLS)], "attributeTypes": ["C"] * COLS,
             "data": [[f"{v:.6f}" for v in r] for r in x[:10]]}
        rest_p50, rest_p99 = latencies(lambda: client.predict("pred", "lin", q), n_lat)
        ws = WsClient(url, "c1", key).connect("predict", ["pred", "lin"])

        def ws_once() -> None:
            ws.send(q)
            ws.recv(10)

        ws_p50, ws_p99 = latencies(ws_once, n_lat)
        ws.close()
        # the bare echo: same client framing and signing work, a server that only echoes
        payload = orjson.dumps(q).decode()
        # the bare echo runs in its own process, as the node does (asyncio websockets server)
        echo_proc = ChildProcess([sys.executable, "-c", ECHO_SERVER], tmp / "echo.log").start()
        port = int(echo_proc.wait_for_output(r"^(\d+)$", 30)[1])
        from fedstats.node.security.signing import build_ws_message, ws_signed_header

        with connect(f"ws://127.0.0.1:{port}") as echo:
            def echo_once() -> None:
                h = ws_signed_header("c1", key, payload, "/symetry/ws/predict", ["pred", "lin"])
                echo.send(build_ws_message(h, payload))
                echo.recv(10)

            echo_p50, echo_p99 = latencies(echo_once, n_lat)
        echo_proc.stop(grace=10)
        print(f"REST predict      p50 {rest_p50:8.0f} µs  p99 {rest_p99:8.0f} µs")
        print(f"WS predict        p50 {ws_p50:8.0f} µs  p99 {ws_p99:8.0f} µs")
        print(f"bare WS echo      p50 {echo_p50:8.0f} µs  p99 {echo_p99:8.0f} µs")
        print(f"WS predict / echo p50 {ws_p50 / echo_p50:5.2f}x  p99 {ws_p99 / echo_p99:5.2f}x "
              "(target p99 <= 3x)")
        client.close()
    finally:
        node.stop()


if __name__ == "__main__":
    main()
