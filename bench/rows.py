"""Row store throughput: append and scan rows/s against pyarrow on one IPC file.

    python bench/rows.py [--rows 1000000] [--cols 20] [--repeat 3] [--dir DIR]

The same float64 table (1 M rows x 20 columns by default) is appended to a `RowStore`
(one append, and in 10,000-row appends) and scanned back, beside pyarrow writing it to one
IPC file (with and without fsync: the store fsyncs every segment and commits its catalog)
and reading it back. Ratios are store / pyarrow in the same run (the machines are noisy,
MEASUREMENTS.md); medians of `--repeat` runs, the routes taking turns.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from fedstats.node.engine.frame import Batch
from fedstats.node.store.db import open_database
from fedstats.node.store.rows import RowStore, to_batch


def ipc_write(path: Path, table: pa.Table, fsync: bool) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=65536)
    if fsync:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def ipc_read(path: Path) -> int:
    with pa.OSFile(str(path), "rb") as source:
        return int(pa.ipc.open_file(source).read_all().num_rows)


def ipc_read_batches(path: Path) -> int:
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def fresh_store(root: Path, name: str) -> RowStore:
    shutil.rmtree(root / name, ignore_errors=True)
    (root / f"{name}.db").unlink(missing_ok=True)
    db = open_database(root / f"{name}.db")
    return RowStore(db, root / name, name)


def store_append(root: Path, batch: Batch, step: int) -> float:
    """Seconds to append `batch` in `step`-row appends to a new store (its opening excluded)."""
    store = fresh_store(root, f"append{step}")
    parts = [Batch(batch.columns, batch.values[lo : lo + step], batch.types)
             for lo in range(0, batch.rows, step)]
    t0 = time.perf_counter()
    for part in parts:
        store.append(part)
    secs = time.perf_counter() - t0
    store.close()
    store.db.close()
    return secs


def store_scan(store: RowStore, arrays: bool, exact: bool = True, order: str = "C") -> int:
    schema = store.schema()
    assert schema is not None
    n = 0
    for rb in store.scan(65536, exact=exact):
        if arrays:  # the numpy matrix a GLM round reads
            n += to_batch(rb, schema, order="F" if order == "F" else "C").rows
        else:
            n += rb.num_rows
    return n


def medians(routes: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds per route; a route that returns a float has timed itself."""
    times: dict[str, list[float]] = {name: [] for name in routes}
    for _ in range(repeat):
        for name, fn in routes.items():
            t0 = time.perf_counter()
            timed = fn()
            elapsed = time.perf_counter() - t0
            times[name].append(timed if isinstance(timed, float) else elapsed)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pyarrow {pa.__version__}")
    print(f"load average {os.getloadavg()}; {args.rows:,} rows x {args.cols} float64 columns")

    names = [f"a{j}" for j in range(args.cols)]
    values = np.random.default_rng(7).standard_normal((args.rows, args.cols))
    batch = Batch.from_array(values, names)
    table = pa.table({n: values[:, j] for j, n in enumerate(names)})
    root = Path(tempfile.mkdtemp(prefix="bench-rows-", dir=args.dir))
    try:
        ipc = root / "table.arrow"
        appends = medians(
            {
                "pyarrow IPC file write": lambda: ipc_write(ipc, table, fsync=False),
                "pyarrow IPC file write + fsync": lambda: ipc_write(ipc, table, fsync=True),
                "RowStore.append (one batch)": lambda: store_append(root, batch, args.rows),
                "RowStore.append (10,000-row batches)": lambda: store_append(root, batch, 10_000),
            },
            args.repeat,
        )
        reader = fresh_store(root, "scan")
        reader.append(batch)
        scans = medians(
            {
                "pyarrow IPC file read_all": lambda: ipc_read(ipc),
                "pyarrow IPC file batch by batch": lambda: ipc_read_batches(ipc),
                "RowStore.scan (65,536-row batches)": lambda: store_scan(reader, arrays=False),
                "RowStore.scan (exact=False)": lambda: store_scan(reader, False, exact=False),
                "RowStore.scan + to_batch (numpy)": lambda: store_scan(reader, arrays=True),
                "RowStore.scan(exact=False) + to_batch": lambda: store_scan(reader, True, False),
                "  ... to_batch(order='F')": lambda: store_scan(reader, True, False, "F"),
            },
            args.repeat,
        )
        reader.close()
        reader.db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def table_of(title: str, results: dict[str, float], baseline: str) -> None:
        print(f"\n{title}")
        print(f"  {'route':40} {'seconds':>9} {'M rows/s':>9}  rate / rate of {baseline!r}")
        for name, secs in results.items():
            ratio = results[baseline] / secs
            print(f"  {name:40} {secs:9.3f} {args.rows / secs / 1e6:9.2f}  {ratio:.2f}")

    table_of("append (durable routes fsync)", appends, "pyarrow IPC file write + fsync")
    table_of("scan", scans, "pyarrow IPC file read_all")


if __name__ == "__main__":
    main()
