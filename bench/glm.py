"""Exact federated logistic regression (fedstats' Newton rounds) against Flower FedAvg.

    python bench/glm.py [--sites 5] [--rows 20000] [--cols 20] [--max-rounds 200]
                        [--local-rows 1000000] [--skip-flower]

One seeded synthetic logistic data set (the MLE exists: no separation), split at random
between `--sites` sites (3..10); every system gets the same split:

  fedstats   a real nats-server and one `fedstats node` process per site, each site's rows
             learned into a keepRows project of one decentralized federation; the admin's
             `build?algo=lr` job (penalty NONE): Newton rounds to the exact fit, the job's
             wall time, bytes on the wire (asks, as published and as delivered to every
             member, and replies), the rounds' wall times (ask -> last answer) and, beside
             them, one member's compute per round measured here on the largest site's rows:
             the difference is the round's overhead (target <= 20 ms over loopback NATS).
             The fit is checked against scikit-learn's pooled fit (max relative difference).
  sklearn    `LogisticRegression(C=inf, solver="newton-cholesky")` on the pooled rows: time.
  Flower     FedAvg in simulation (bench/flower_baseline.py: one client per site, local
             full-batch gradient epochs, pooled standardization as a courtesy): rounds and
             wall time until the pooled mean log-loss is within 1e-6 (relative) of the
             optimum, or the gap left after `--max-rounds`.
  local      one round (`round_stats`) on `--local-rows` × `--cols` rows against the
             machine's `dsyrk` on the same matrix (target: >= 50% of the dsyrk rate).

Flower is a benchmark-only dependency with pins of its own (older fastapi/starlette):
install it into a separate virtualenv and point FEDSTATS_FLOWER_PYTHON at its python
(its site-packages given .venv's through a .pth file), or into this one:

    python -m venv /tmp/flwr-venv && /tmp/flwr-venv/bin/pip install 'flwr[simulation]'
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/flwr-venv/lib/python3.11/site-packages/fedstats.pth
    FEDSTATS_FLOWER_PYTHON=/tmp/flwr-venv/bin/python python bench/glm.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg.blas import dsyrk
from scipy.special import expit

BENCH = Path(__file__).resolve().parent
TOL = 1e-6


def dataset(rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, cols)) * rng.uniform(0.5, 3.0, size=cols) + rng.normal(size=cols)
    w = rng.normal(scale=0.3, size=cols)
    y = (rng.uniform(size=rows) < expit(x @ w - float(np.mean(x @ w)))).astype(float)
    return x, y


def split(n: int, sites: int, seed: int = 1, least: int = 100) -> list[np.ndarray]:
    """Random sizes, every site at least `least` rows (over the floor of columns + 5)."""
    rng = np.random.default_rng(seed)
    sizes = least + np.floor(rng.dirichlet(np.ones(sites)) * (n - least * sites)).astype(int)
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


def log_loss(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    eta = x @ w + b
    return float(np.mean(np.logaddexp(0.0, eta) - y * eta))


def frame(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    names = [f"x{j}" for j in range(x.shape[1])]
    return {"attributeNames": [*names, "y"], "attributeTypes": ["C"] * len(names) + ["B"],
            "data": [[*map(repr, map(float, r)), str(int(t))] for r, t in zip(x, y, strict=True)]}


# ------------------------------------------------------------------ fedstats
def run_fedstats(x: np.ndarray, y: np.ndarray, parts: list[np.ndarray]) -> dict[str, Any]:
    from fedstats.node.security.keys import new_secret_key
    from fedstats_harness.localnet import LocalNodes
    from fedstats_harness.natsproc import NatsServer

    names = ["admin", *(f"p{i}" for i in range(1, len(parts)))]
    root = Path(tempfile.mkdtemp(prefix="bench-glm-"))
    server = NatsServer(root / "nats", ()).start()
    net = LocalNodes(root / "nodes", names, "c1", new_secret_key()).start()
    try:
        c = net.clients
        c["admin"].fed_create("glm", {"fed_name": "glm", "nats_hosts": server.url,
                                      "sync_sched": "s1", "keepRows": "true",
                                      "nats_stream_max_memory": 64 << 20})
        for peer in names[1:]:
            invite = c["admin"].fed_invitation("glm", "pw", fed_peer_id=peer)
            c[peer].fed_join("glm", invite, "pw", keepRows="true")
        for name, part in zip(names, parts, strict=True):
            for chunk in np.array_split(part, max(1, len(part) // 5000)):
                c[name].learn("glm", frame(x[chunk], y[chunk]))
            c[name].start_pulse("glm")
        deadline = time.monotonic() + 120
        while c["admin"].project_info("glm")["rows"] != len(y):  # polling other processes
            if time.monotonic() > deadline:
                raise TimeoutError("the admin never held every row")
            time.sleep(0.2)
        context = {"targetAttributeNames": ["y"], "extraParameters": {"penalty": "NONE"}}
        c["admin"].build("glm", "warm", "lr", context, timeout=600)  # the members' numba, caches
        t = time.perf_counter()
        info = c["admin"].build("glm", "m", "lr", context, timeout=600)
        wall = time.perf_counter() - t
    finally:
        net.stop()
        server.stop()
    return {"info": info, "wall_s": wall}


def member_compute(x: np.ndarray, y: np.ndarray, coef: np.ndarray, repeats: int = 7) -> float:
    """One member's compute per round (its rows cached, as after the first round)."""
    from fedstats.node.engine.glm import round_stats

    round_stats(x[:100], y[:100], coef, "binomial")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        round_stats(x, y, coef, "binomial")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ------------------------------------------------------------------ Flower
def run_flower(x: np.ndarray, y: np.ndarray, parts: list[np.ndarray], optimum: float,
               max_rounds: int) -> dict[str, Any]:
    """FedAvg until the pooled log-loss is within TOL (relative) of `optimum`."""
    sys.path.insert(0, str(BENCH))
    import flower_baseline as fb

    splits = [(x[p], y[p]) for p in parts]
    x_all = np.concatenate([s[0] for s in splits])
    y_all = np.concatenate([s[1] for s in splits])
    mu, sd = x_all.mean(0), x_all.std(0)
    xs = (x_all - mu) / sd
    data = [((sx - mu) / sd, sy) for sx, sy in splits]

    def negative_loss(params: list[np.ndarray]) -> float:
        return -log_loss(xs, y_all, params[0][:, 0], float(params[1][0]))

    fb.require_flower()
    t = time.perf_counter()
    # classification's test is value >= target - tol: on −log-loss, loss <= optimum·(1+TOL)
    out = fb._simulate(data, "classification", 1, negative_loss, target_metric=-optimum,
                       tol=TOL * optimum, max_rounds=max_rounds, local_epochs=5, lr=0.5,
                       batch_size=None, seed=0, num_cpus=None, timing_rounds=0,
                       verbose=False)
    out["wall_s"] = time.perf_counter() - t
    out["final_loss"] = -float(out["final_metric"])
    return {k: v for k, v in out.items() if k not in ("metric_per_round", "seconds_at_round")}


def flower_elsewhere(x: np.ndarray, y: np.ndarray, parts: list[np.ndarray], optimum: float,
                     max_rounds: int) -> dict[str, Any]:
    """`run_flower` in FEDSTATS_FLOWER_PYTHON's interpreter (Flower's own virtualenv)."""
    python = os.environ.get("FEDSTATS_FLOWER_PYTHON")
    if not python:
        try:
            import flwr  # noqa: F401
        except ImportError:
            return {"skipped": "Flower is not installed (see this script's docstring)"}
        return run_flower(x, y, parts, optimum, max_rounds)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        np.savez(src, x=x, y=y, optimum=optimum, max_rounds=max_rounds,
                 **{f"part{i}": p for i, p in enumerate(parts)})
        subprocess.run([python, __file__, "--flower-worker", str(src), str(dst)], check=True)
        result: dict[str, Any] = json.loads(dst.read_text())
        return result


def flower_worker(src: str, dst: str) -> int:
    data = np.load(src, allow_pickle=False)
    parts = [data[f"part{i}"] for i in range(sum(k.startswith("part") for k in data.files))]
    out = run_flower(data["x"], data["y"], parts, float(data["optimum"]),
                     int(data["max_rounds"]))
    Path(dst).write_text(json.dumps(out, default=float))
    return 0


# ------------------------------------------------------------------ the local round
def local_round(rows: int, cols: int, repeats: int = 3) -> dict[str, float]:
    from fedstats.node.engine.glm import round_stats

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, cols))
    y = (rng.uniform(size=rows) < 0.5).astype(float)
    coef = rng.normal(scale=0.1, size=cols + 1)
    round_stats(x[:1000], y[:1000], coef, "binomial")
    xf = np.asfortranarray(x)
    dsyrk(1.0, xf, trans=1)
    local, syrk = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        round_stats(x, y, coef, "binomial")
        local.append(time.perf_counter() - t)
        t = time.perf_counter()
        dsyrk(1.0, xf, trans=1)
        syrk.append(time.perf_counter() - t)
    return {"round_s": min(local), "dsyrk_s": min(syrk), "ratio": min(syrk) / min(local)}


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=5, choices=range(3, 11), metavar="3..10")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--max-rounds", type=int, default=200)
    parser.add_argument("--local-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--flower-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flower_worker:
        return flower_worker(*args.flower_worker)
    from sklearn.linear_model import LogisticRegression

    x, y = dataset(args.rows, args.cols)
    parts = split(len(y), args.sites)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{len(y):,} rows x {args.cols} columns, logistic, split between {args.sites} sites "
          f"({', '.join(str(len(p)) for p in parts)} rows)")

    t = time.perf_counter()
    ref = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14,
                             max_iter=1000).fit(x, y)
    sk_s = time.perf_counter() - t
    optimum = log_loss(x, y, ref.coef_[0], float(ref.intercept_[0]))

    fed = run_fedstats(x, y, parts)
    info = fed["info"]
    coef = np.asarray(info["coef"][0])
    diff = float(np.max(np.abs(coef - ref.coef_[0]) / np.abs(ref.coef_[0])))
    meta = info["federation"]
    members = len(meta["members"])
    big = max(parts, key=len)
    compute = member_compute(x[big], y[big], np.append(coef, info["intercept"][0]))
    rounds_s = meta["roundSeconds"]
    overheads = [w - c for w, c in zip(rounds_s, meta["memberComputeSeconds"], strict=True)]
    print("\nfedstats (Newton rounds, exact)")
    print(f"  rounds {info['rounds']} (iterations {info['iterations']}), job wall "
          f"{fed['wall_s'] * 1e3:.0f} ms, max relative coefficient difference vs "
          f"scikit-learn {diff:.1e}")
    print(f"  bytes: asks {meta['bytesSent']:,} published, {meta['bytesSent'] * members:,} "
          f"delivered to {members} members; replies {meta['bytesReceived']:,}")
    print(f"  round wall (ask -> last answer) median {statistics.median(rounds_s) * 1e3:.1f} ms"
          f" (first {rounds_s[0] * 1e3:.1f} ms); slowest member's own compute (reported) "
          f"median {statistics.median(meta['memberComputeSeconds']) * 1e3:.1f} ms; "
          f"round_stats on the largest site's rows here {compute * 1e3:.1f} ms")
    print(f"  overhead (round wall - slowest member's compute): median "
          f"{statistics.median(overheads) * 1e3:.1f} ms, min {min(overheads) * 1e3:.1f} ms "
          "(target <= 20 ms)")
    print(f"\nscikit-learn pooled fit: {sk_s * 1e3:.1f} ms (log-loss {optimum:.12f})")

    if not args.skip_flower:
        fl = flower_elsewhere(x, y, parts, optimum, args.max_rounds)
        print("\nFlower FedAvg (simulation, 5 local epochs, lr 0.5)")
        if "skipped" in fl:
            print(f"  skipped: {fl['skipped']}")
        elif fl.get("reached"):
            print(f"  within {TOL:g} of the pooled log-loss after {fl['rounds']} rounds, "
                  f"{fl['seconds_to_target']:.1f} s (simulation {fl['seconds_total']:.1f} s)")
        else:
            final = fl.get("final_loss")
            gap = (final - optimum) / optimum if final is not None else float("nan")
            print(f"  not within {TOL:g} after {fl['rounds_run']} rounds: log-loss {final:.12f}, "
                  f"{gap:.2e} above the optimum; simulation {fl['seconds_total']:.1f} s")

    lr = local_round(args.local_rows, args.cols)
    print(f"\none local round, {args.local_rows:,} x {args.cols}: {lr['round_s'] * 1e3:.1f} ms; "
          f"dsyrk {lr['dsyrk_s'] * 1e3:.1f} ms; rate ratio {lr['ratio']:.2f} (target >= 0.50)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
