"""Benchmark of the statistics engine: learn vs BLAS, model builds vs scikit-learn, snapshots.

    python bench/engine.py [--quick]

Prints three tables. Every figure is the median of several repeats, and every ratio is
taken within this one run, on the same arrays: the machines are noisy, so only
comparisons made side by side mean anything. `dsyrk` (the BLAS kernel for XᵀX) is the
bound: a learn also centres the rows and sums their third and fourth powers, so reaching
70% of dsyrk at d >= 100 means the rest costs little. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.linalg.blas import dsyrk

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import decode_snapshot, encode_snapshot

# (d, rows per batch, batches): batches big enough that per-call overhead is noise, small
# enough for a 2-core machine with 24 GiB to run the whole bench in about a minute.
LEARN_SIZES = [(10, 50_000, 4), (100, 10_000, 4), (1000, 2_000, 3)]
MODEL_ROWS = 20_000
MODEL_D = 100


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def blas_kernel() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    libs = [
        f"{i.get('internal_api')} {i.get('architecture', '?')} x{i.get('num_threads')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return ", ".join(sorted(set(libs))) or "none found"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------- learn vs dsyrk
def bench_learn(repeats: int, quick: bool) -> Accumulator:
    rng = np.random.default_rng(0)
    rows_out = []
    last = Accumulator()
    for d, batch, batches in LEARN_SIZES:
        if quick:
            batch, batches = batch // 2, 2
        columns = [f"x{i}" for i in range(d)]
        x = rng.normal(size=(batch * batches, d)) * 3.0 + 100.0
        parts = np.array_split(x, batches)

        def learn_all(parts: list[np.ndarray] = parts, columns: list[str] = columns) -> None:
            acc = Accumulator(conditional=False)
            for p in parts:
                acc.learn_array(p, columns)

        t_learn = median_time(learn_all, repeats)
        first = parts[0]
        # dsyrk wants Fortran order: the transpose of a C-ordered batch is, with no copy
        t_syrk = median_time(lambda first=first: dsyrk(1.0, first.T, trans=0), repeats)
        learn_rate = x.shape[0] / t_learn
        syrk_rate = first.shape[0] / t_syrk
        ratio = learn_rate / syrk_rate
        verdict = "" if d < 100 else ("ok" if ratio >= 0.70 else "BELOW 0.70")
        rows_out.append(
            [
                str(d),
                f"{batch:,}",
                f"{learn_rate:,.0f}",
                f"{syrk_rate:,.0f}",
                f"{ratio:.2f}",
                verdict,
            ]
        )
        if d == LEARN_SIZES[-1][0]:
            last = Accumulator(conditional=False)
            for p in parts:
                last.learn_array(p, columns)
    print("learn from a numeric array (Accumulator.learn_array) vs BLAS dsyrk on the same batch")
    print(table(["d", "batch", "learn rows/s", "dsyrk rows/s", "ratio", "target"], rows_out))
    return last


# ---------------------------------------------------------------------- models vs sklearn
def model_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(MODEL_ROWS, MODEL_D - 1)) @ (np.eye(MODEL_D - 1) + 0.1)
    y = x @ rng.normal(size=MODEL_D - 1) + rng.normal(size=MODEL_ROWS)
    cls = (x[:, 0] + x[:, 1] + rng.normal(size=MODEL_ROWS) > 0).astype(float)
    return x, y, cls


def sklearn_fits() -> dict[str, tuple[Callable[[], Any], str, dict[str, str]]]:
    from sklearn import discriminant_analysis as da
    from sklearn import linear_model as lm
    from sklearn.decomposition import PCA
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline

    k = MODEL_D // 2
    # algo id -> (scikit-learn estimator factory, target, extraParameters)
    return {
        "mlr": (lm.LinearRegression, "y", {}),
        "ridge": (lambda: lm.Ridge(alpha=1.0), "y", {"alpha": "1.0"}),
        "lasso": (lambda: lm.Lasso(alpha=0.01), "y", {"alpha": "0.01"}),
        "elasticnet": (
            lambda: lm.ElasticNet(alpha=0.01, l1_ratio=0.5),
            "y",
            {"alpha": "0.01", "l1_ratio": "0.5"},
        ),
        "lda": (da.LinearDiscriminantAnalysis, "cls", {}),
        "mlda": (da.LinearDiscriminantAnalysis, "cls", {}),
        "mqda": (da.QuadraticDiscriminantAnalysis, "cls", {}),
        "bayes": (GaussianNB, "cls", {}),
        "pcr": (lambda: make_pipeline(PCA(k), lm.LinearRegression()), "y", {"k": str(k)}),
    }


def bench_models(repeats: int) -> None:
    print(
        f"\nmodel build from statistics vs scikit-learn fit on the pooled rows "
        f"({MODEL_ROWS:,} rows, d={MODEL_D})"
    )
    try:
        from fedstats.node.engine.models import build_model
    except ImportError as e:
        print(f"skipped: fedstats.node.engine.models.build_model is not available ({e})")
        return
    x, y, cls = model_data(np.random.default_rng(1))
    inputs = [f"x{i}" for i in range(x.shape[1])]
    acc = Accumulator()
    acc.learn_array(np.c_[x, y, cls], [*inputs, "y", "cls"], binary=["cls"])
    t_learn = median_time(
        lambda: Accumulator().learn_array(np.c_[x, y, cls], [*inputs, "y", "cls"], binary=["cls"]),
        repeats,
    )
    rows = []
    for algo, (make, target, extra) in sklearn_fits().items():
        context = {
            "inputAttributeNames": inputs,
            "targetAttributeNames": [target],
            "extraParameters": extra,
        }
        labels = y if target == "y" else cls
        try:
            t_build = median_time(lambda a=algo, c=context: build_model(a, acc, c), repeats)
            build = f"{t_build * 1e3:.3f}"
        except Exception as e:  # a model still being written must not stop the bench
            t_build, build = float("nan"), f"error: {type(e).__name__}"
        t_fit = median_time(lambda m=make, t=labels: m().fit(x, t), max(1, repeats // 2))
        rows.append([algo, build, f"{t_fit * 1e3:.1f}", f"{t_fit / t_build:,.0f}x"])
    print(table(["algo", "build ms", "sklearn fit ms", "speed-up"], rows))
    print(f"(learning those rows once: {t_learn * 1e3:.1f} ms)")


# ---------------------------------------------------------------------- snapshots
def bench_snapshot(acc: Accumulator, repeats: int) -> None:
    data = encode_snapshot(acc)
    t_enc = median_time(lambda: encode_snapshot(acc), repeats)
    t_dec = median_time(lambda: decode_snapshot(data), repeats)
    print(f"\nsnapshot of the d={acc.d} accumulator (total only, no conditional blocks)")
    print(
        table(
            ["d", "size MB", "encode ms", "decode ms", "encode MB/s"],
            [
                [
                    str(acc.d),
                    f"{len(data) / 1e6:.2f}",
                    f"{t_enc * 1e3:.2f}",
                    f"{t_dec * 1e3:.2f}",
                    f"{len(data) / 1e6 / t_enc:,.0f}",
                ]
            ],
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, BLAS: {blas_kernel()}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"medians of {repeats} repeats; load average {load} on {os.cpu_count()} cores\n")
    # the timing of scikit-learn's lasso is what matters here, not its convergence advice
    warnings.filterwarnings("ignore", message="Objective did not converge")
    acc = bench_learn(repeats, args.quick)
    bench_models(repeats)
    bench_snapshot(acc, repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
