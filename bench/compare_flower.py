"""fedstats (one sync, exact) against Flower FedAvg (rounds of training), on the same split.

    python bench/compare_flower.py [--quick] [--sites 3 10] [--datasets diabetes breast_cancer]
                                   [--max-rounds N] [--json out.json]

Needs Flower, a benchmark-only dependency (not in pyproject.toml):

    . .venv/bin/activate && pip install 'flwr[simulation]'

For each scikit-learn data set (diabetes: regression; breast_cancer: classification) and
each number of sites, the rows are split at random (seeded) and BOTH systems get the
same split:

  fedstats  each site learns its rows into an Accumulator, one merge (the one sync), the
            model is built from the merged statistics (`mlr` / `lda`). Checked against the
            pooled scikit-learn model (LinearRegression / LinearDiscriminantAnalysis(lsqr)):
            the max relative coefficient difference (coefficients and intercept, element
            by element) and the metric. Time: every site's learn + merge + build, run one
            after another (sites would learn in parallel: this over-counts), median of
            repeats.
  Flower    FedAvg in simulation, one client per site, a linear model trained by local
            gradient epochs (bench/flower_baseline.py): rounds and time until its metric
            reaches the pooled model's (MSE within 1%; accuracy >= the pooled LDA
            accuracy), or the gap left after max rounds.

Metrics are in-sample on the pooled rows. The classifiers differ in kind (fedstats' is
LDA, Flower trains a logistic regression): they are compared on ACCURACY only.

Speed ratio = Flower's time to the target / fedstats' time. Two Flower times are given:
"to target" (from the start of the strategy: includes starting the Ray workers, which
every simulation pays) and "warm" (rounds × the median time of a round after the first: a
lower bound, as if the workers were already up). The goal: fedstats exact in one sync and
>= 10x faster than either.

`main(argv) -> int` (exit status: 2 when Flower is missing) and `compare(dataset, sites,
quick) -> dict` are importable (bench/federation.py calls them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np

try:  # imported as bench.compare_flower
    from bench import flower_baseline as fb
except ImportError:  # run as a script, or imported with bench/ on sys.path
    import flower_baseline as fb  # type: ignore[no-redef]

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.frame import Batch
from fedstats.node.engine.models import build_model

DATASETS = {"diabetes": "regression", "breast_cancer": "classification"}
SEED = 20261122


# ----------------------------------------------------------------------------- data
def load(dataset: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, y, task) of a data set scikit-learn ships."""
    from sklearn import datasets

    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}: expected one of {', '.join(DATASETS)}")
    x, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y), DATASETS[dataset]


def split(
    x: np.ndarray, y: np.ndarray, sites: int, seed: int = SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A seeded random split of the rows into `sites` nearly equal parts."""
    order = np.random.default_rng(seed).permutation(len(y))
    return [(x[idx], y[idx]) for idx in np.array_split(order, sites)]


def pooled_sklearn(x: np.ndarray, y: np.ndarray, task: str) -> tuple[Any, float]:
    """The pooled scikit-learn model and its in-sample metric (MSE or accuracy)."""
    if task == "regression":
        from sklearn.linear_model import LinearRegression

        model = LinearRegression().fit(x, y)
        return model, float(np.mean((model.predict(x) - y) ** 2))
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    model = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    return model, float(np.mean(model.predict(x) == y))


# ----------------------------------------------------------------------------- fedstats
def fedstats_once(
    parts: list[tuple[np.ndarray, np.ndarray]], task: str, xcols: list[str]
) -> tuple[Any, dict[str, float]]:
    """Every site learns, one merge, one build: (model, seconds per stage)."""
    cols = [*xcols, "y"]
    binary = ("y",) if task == "classification" else ()
    site_s = []
    accs = []
    for x, y in parts:
        t = time.perf_counter()
        acc = Accumulator()
        acc.learn_array(np.column_stack([x, y]), cols, binary=binary)
        site_s.append(time.perf_counter() - t)
        accs.append(acc)
    t = time.perf_counter()
    merged = Accumulator.merged(accs)  # the one sync
    merge_s = time.perf_counter() - t
    t = time.perf_counter()
    algo = "mlr" if task == "regression" else "lda"
    model = build_model(algo, merged, {"inputAttributeNames": xcols, "targetAttributeNames": ["y"]})
    build_s = time.perf_counter() - t
    learn_s = sum(site_s)
    return model, {
        "learn_s": learn_s,
        "learn_max_site_s": max(site_s),
        "merge_s": merge_s,
        "build_s": build_s,
        "total_s": learn_s + merge_s + build_s,
    }


def _coefs(model: Any) -> np.ndarray:
    return np.r_[np.ravel(model.arrays["coef"]), np.ravel(model.arrays["intercept"])]


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)


def fedstats_run(
    parts: list[tuple[np.ndarray, np.ndarray]],
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    reference: Any,
    repeats: int,
) -> dict[str, Any]:
    xcols = [f"x{i}" for i in range(x.shape[1])]
    runs = [fedstats_once(parts, task, xcols) for _ in range(repeats)]
    model = runs[-1][0]
    timing = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
    pred = np.asarray(model.predict_columns(Batch.from_array(x, xcols))["res"], dtype=float)
    value = float(np.mean((pred - y) ** 2) if task == "regression" else np.mean(pred == y))
    ref_coef = np.r_[reference.coef_.ravel(), np.ravel(reference.intercept_)]
    coef = _coefs(model)
    rel = _rel(coef, ref_coef)
    # the merge alone: the same build from ONE accumulator of the pooled rows
    single = _coefs(fedstats_once([(x, y)], task, xcols)[0])
    agree = float(np.mean(pred == reference.predict(x))) if task == "classification" else None
    return {
        "framework": "fedstats",
        "syncs": 1,
        "algo": model.meta["algo"],
        "metric": value,
        "max_rel_coef_diff": float(rel.max()),
        "norm_rel_coef_diff": float(np.linalg.norm(coef - ref_coef) / np.linalg.norm(ref_coef)),
        "max_rel_coef_diff_vs_one_site": float(_rel(coef, single).max()),
        "prediction_agreement": agree,
        "repeats": repeats,
        **timing,
    }


# ----------------------------------------------------------------------------- compare
def compare(
    dataset: str,
    sites: int,
    quick: bool = False,
    *,
    max_rounds: int | None = None,
    seed: int = SEED,
    verbose: bool = False,
) -> dict[str, Any]:
    """fedstats and Flower FedAvg on the same split of `dataset` between `sites` sites."""
    fb.require_flower()
    x, y, task = load(dataset)
    parts = split(x, y, sites, seed)
    reference, target = pooled_sklearn(x, y, task)
    fed = fedstats_run(parts, task, x, y, reference, repeats=5 if quick else 15)
    rounds = max_rounds or (30 if quick else 200)
    flower = fb.run_fedavg(parts, task, target, max_rounds=rounds, seed=seed, verbose=verbose)
    to_target = flower["seconds_to_target"]
    warm = flower["warm_seconds_to_target"]
    fed_s = fed["total_s"]
    return {
        "dataset": dataset,
        "task": task,
        "sites": sites,
        "rows": len(y),
        "inputs": int(x.shape[1]),
        "metric_name": "mse" if task == "regression" else "accuracy",
        "pooled_metric": target,
        "fedstats": fed,
        "flower": flower,
        # not reached: Flower's whole run is a lower bound of its time to the target
        "speedup": (to_target if to_target is not None else flower["seconds_total"]) / fed_s,
        "speedup_warm": warm / fed_s if warm is not None else None,
        "speedup_is_lower_bound": to_target is None,
    }


def _fmt_metric(task: str, v: float) -> str:
    return f"{v:.2f}" if task == "regression" else f"{v:.4f}"


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'data set':<14}{'sites':>5}  {'pooled':>9}  {'fedstats':>9} {'syncs':>5} "
        f"{'Δcoef sklearn':>13} {'1 site':>7} {'time':>9}  {'Flower':>9} {'rounds':>7} {'gap':>9} "
        f"{'to target':>10} {'warm':>9}  {'speedup':>8} {'warm×':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        f, w, task = r["fedstats"], r["flower"], r["task"]
        rounds = str(w["rounds"]) if w["reached"] else f">{w['rounds_run']}"
        gap = f"{100 * w['final_gap']:+.3f}%" if task == "regression" else f"{w['final_gap']:+.4f}"
        to_t = f"{w['seconds_to_target']:.2f} s" if w["reached"] else "—"
        warm = f"{w['warm_seconds_to_target']:.2f} s" if w["warm_seconds_to_target"] else "—"
        sp = ("≥" if r["speedup_is_lower_bound"] else "") + f"{r['speedup']:,.0f}×"
        spw = f"{r['speedup_warm']:,.0f}×" if r["speedup_warm"] else "—"
        lines.append(
            f"{r['dataset']:<14}{r['sites']:>5}  {_fmt_metric(task, r['pooled_metric']):>9}  "
            f"{_fmt_metric(task, f['metric']):>9} {f['syncs']:>5} "
            f"{f['max_rel_coef_diff']:>13.1e} {f['max_rel_coef_diff_vs_one_site']:>7.0e} {1e3 * f['total_s']:>6.2f} ms  "
            f"{_fmt_metric(task, w['final_metric']):>9} {rounds:>7} {gap:>9} "
            f"{to_t:>10} {warm:>9}  {sp:>8} {spw:>8}"
        )
    return "\n".join(lines)


def compare_all(
    datasets: list[str], sites: list[int], quick: bool, max_rounds: int | None = None
) -> list[dict[str, Any]]:
    return [compare(d, s, quick, max_rounds=max_rounds) for d in datasets for s in sites]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 sites, 30 rounds at most")
    parser.add_argument("--sites", type=int, nargs="+", help="default: 3 (quick) / 3 10")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--max-rounds", type=int, help="default: 30 (quick) / 200")
    parser.add_argument("--json", help="also write the full results (per-round metrics) here")
    args = parser.parse_args(argv)
    try:
        fb.require_flower()
    except fb.FlowerMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    sites = args.sites or ([3] if args.quick else [3, 10])
    results = compare_all(args.datasets, sites, args.quick, args.max_rounds)
    print(
        "fedstats: each site learns, ONE merge, build (mlr / lda) — exact; "
        "Flower 1.x FedAvg (simulation), linear least squares / logistic, "
        f"{results[0]['flower']['settings']['local_epochs']} local full-batch epochs a round."
    )
    print(
        "Targets: MSE within 1% of the pooled least squares; accuracy >= the pooled LDA's "
        "(classifiers compared on accuracy only). Metrics in-sample on the pooled rows.\n"
    )
    print(table(results))
    print(
        "\nΔcoef: max relative difference of the coefficients and intercept, element by "
        "element, from the pooled scikit-learn model ('sklearn') and from fedstats' own build "
        "on all rows as ONE site ('1 site': what the merge alone contributes). gap: Flower's "
        "relative MSE excess, or its accuracy shortfall (negative: above the pooled LDA)."
    )
    print(
        "speedup: Flower's time to the target (Ray workers starting included) / fedstats' "
        "learn+merge+build; warm×: the same with Flower's workers already up "
        "(rounds × median warm round)."
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
