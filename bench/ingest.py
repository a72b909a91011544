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


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000])
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for rows in args.rows:
        frame, csv, arrow = bodies(rows, args.cols)
        routes: dict[str, Callable[[], object]] = {
            "orjson + np.array (baseline)": lambda: np.array(
                orjson.loads(frame)["data"], dtype=np.float64
            ),
            "parse_frame(orjson.loads)": lambda: parse_frame(orjson.loads(frame)),
            "parse_dataframe_bytes": lambda: parse_dataframe_bytes(frame),
            "parse_csv": lambda: parse_csv(csv),
            "parse_arrow": lambda: parse_arrow(arrow),
        }
        print(f"{rows:,} rows x {args.cols} columns (median of {args.repeat})")
        base = None
        for name, fn in routes.items():
            fn()  # warm up
            s = median_s(fn, args.repeat)
            rate = rows / s
            base = base or rate
            print(f"  {name:30s} {rate:14,.0f} rows/s  {rate / base:6.2f}x")


if __name__ == "__main__":
    main()
