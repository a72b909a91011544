"""One GLM round's local work vs the BLAS bound: `round_stats` against `X.T @ X` (dsyrk).

    python bench/glm_local.py [--rows 1000000] [--cols 20] [--repeats 7]

A Newton round over a site's rows is η = Xw, μ, and the weighted Gram XᵀWX (plus the
gradient), so the machine's `dsyrk` on the same X is what it cannot beat. The two are
timed interleaved (one of each per repeat), so the machine's noise hits both alike;
min and median are printed, and the ratio of rates (target: >= 0.50).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from fedstats.node.engine.glm import round_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--family", default="binomial", choices=["binomial", "poisson"])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.cols))
    coef = rng.normal(scale=0.1, size=args.cols + 1)
    y = (rng.uniform(size=args.rows) < 0.5).astype(float)
    round_stats(x[:1000], y[:1000], coef, args.family)  # warm-up
    _ = x.T @ x
    local, syrk = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        round_stats(x, y, coef, args.family)
        local.append(time.perf_counter() - t)
        t = time.perf_counter()
        _ = x.T @ x
        syrk.append(time.perf_counter() - t)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{args.rows:,} rows x {args.cols} columns, {args.family}, {args.repeats} repeats")
    for name, times in (("round_stats", local), ("X.T @ X", syrk)):
        print(f"  {name:12s} min {min(times) * 1e3:8.1f} ms   median "
              f"{statistics.median(times) * 1e3:8.1f} ms")
    best = min(syrk) / min(local)
    typical = statistics.median(syrk) / statistics.median(local)
    verdict = "ok" if best >= 0.5 else "BELOW 0.50"
    print(f"  rate ratio (round / dsyrk): min-based {best:.2f}, median-based {typical:.2f}"
          f"   target >= 0.50: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
