"""FATE-Flow facade bench: `data/upload` rows/s of a CSV against pyarrow's own read of it.

Serves a node in this process, uploads a generated dense CSV (id, y, x0..x9; 1 M rows by
default) with `fedstats flow -f upload` (signed, multipart, streamed to disk, appended to
the row store block by block) and prints the rows/s beside `pyarrow.csv.read_csv` of the
same file. The homo LR job timings of issue 10 wait for the job API (docs/flow.md).

    .venv/bin/python bench/flow.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv

from fedstats.flowcli import run
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import serve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(args.rows, 10))
        rows = np.column_stack([np.arange(args.rows), (x[:, 0] > 0), x])
        csv = d / "big.csv"
        np.savetxt(csv, rows, delimiter=",", fmt="%.10g",
                   header="id,y," + ",".join(f"x{j}" for j in range(10)), comments="")
        mb = csv.stat().st_size / 1e6
        t0 = time.perf_counter()
        pacsv.read_csv(csv)
        t_arrow = time.perf_counter() - t0
        (d / "data").mkdir()
        key = new_secret_key()
        gen = serve(Settings(data_dir=d / "data", max_body_bytes=1 << 34), {"b": key})
        node = next(gen)
        try:
            conf = d / "up.json"
            conf.write_text(json.dumps({"file": str(csv), "head": 1, "partition": 4,
                                        "namespace": "bench", "table_name": "big"}))
            port = node.url.rsplit(":", 1)[1]
            t0 = time.perf_counter()
            out = run(["-f", "upload", "-c", str(conf), "--ip", "127.0.0.1", "--port", port,
                       "--app-key", "b", "--secret-key", key])
            t_up = time.perf_counter() - t0
            assert out["retcode"] == 0, out
        finally:
            gen.close()
        print(f"CSV: {args.rows} rows, {mb:.1f} MB")
        print(f"pyarrow read_csv          {t_arrow:8.3f} s  {args.rows / t_arrow:12,.0f} rows/s")
        print(f"flow data/upload (signed) {t_up:8.3f} s  {args.rows / t_up:12,.0f} rows/s")
        print("homo LR job (3 parties): not measured: the job API is not served yet")


if __name__ == "__main__":
    main()
