"""Ingest throughput: rows/s of each route into a `Batch`, against orjson + np.array.

    python bench/ingest.py [--rows 1000 100000] [--cols 20] [--repeat 5]

Every route reads the same rows (random numbers as strings, all `C`); ratios are to the
baseline measured in the same run, since the machines are noisy (MEASUREMENTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import orjson
import pyarrow as pa

from fedstats.node.engine.frame import parse_frame
from fedstats.node.engine.ingest import parse_arrow, parse_csv, parse_dataframe_bytes


def bodies(rows: int, cols: int) -> tuple[bytes, bytes, bytes]:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(rows, cols)).round(6)
    names = [f"a{j}" for j in range(cols)]
    data = values.astype(str).tolist()
    frame = orjson.dumps({"attributeNames": names, "attributeTypes": ["C"] * cols, "data": data})
    csv = ("\n".join([",".join(names), *(",".join(r) for r in data)]) + "\n").encode()
    table = pa.table({n: values[:, j] for j, n in enumerate(names)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return frame, csv, sink.getvalue().to_pybytes()


def medians(routes: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds per route, the routes taking turns so that noise hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in routes}
    for fn in routes.values():
        fn()  # warm up
    for _ in range(repeat):
        for name, fn in routes.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def routes_for(frame: bytes, csv: bytes, arrow: bytes) -> dict[str, Callable[[], object]]:
    return {
        "orjson + np.array (baseline)": lambda: np.array(
            orjson.loads(frame)["data"], dtype=np.float64
        ),
        "parse_frame(orjson.loads)": lambda: parse_frame(orjson.loads(frame)),
        "parse_dataframe_bytes": lambda: parse_dataframe_bytes(frame),
        "parse_csv": lambda: parse_csv(csv),
        "parse_arrow": lambda: parse_arrow(arrow),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000])
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for rows in args.rows:
        routes = routes_for(*bodies(rows, args.cols))
        print(f"{rows:,} rows x {args.cols} columns (median of {args.repeat}, interleaved)")
        seconds = medians(routes, args.repeat)
        base = rows / seconds["orjson + np.array (baseline)"]
        for name, s in seconds.items():
            rate = rows / s
            print(f"  {name:30s} {rate:14,.0f} rows/s  {rate / base:6.2f}x")


if __name__ == "__main__":
    main()
