"""The peer-framework baseline: Flower FedAvg (simulation) for fedstats' model classes.

fedstats builds the EXACT pooled model from one merge of the sites' co-moment accumulators.
An iterative federated framework instead trains the model by rounds of local gradient
epochs and parameter averaging. This module runs that alternative with Flower's own FedAvg
strategy in its simulation engine (Ray backend, one ClientApp / SuperNode per site), for
the same model class:

    regression      a linear model, least squares            (fedstats: `mlr`)
    classification  logistic (2 classes) / softmax (K > 2)   (fedstats: `lda`/`mlda`)

The classifiers differ in kind (LDA is generative, logistic discriminative), so they are
compared on ACCURACY, not on coefficients: Flower has reached the pooled model once its
accuracy equals (>=) the pooled LDA accuracy; a regression once its MSE is within `tol`
(relative, default 1%) of the pooled least-squares MSE. Both metrics are measured by a
server-side evaluation on the pooled rows after every round (a measurement device only: a
real federation could not see them); it is cheap (one matrix product) and counts in Flower's
time.

Courtesies to FedAvg (each one makes the baseline faster than it would be in practice):
inputs (and a regression target) are standardized with the POOLED mean and deviation, which
a real federation would need an extra round to learn; every client trains full-batch
gradient descent by default (no minibatch noise floor); the loop stops as soon as the
target is reached.

Flower is an optional dependency of the benchmark only (not of fedstats):

    . .venv/bin/activate && pip install 'flwr[simulation]'

(flwr 1.42 pins fastapi/starlette/uvicorn/packaging to older releases; the simulation does
not need them, so reinstalling fedstats' own versions afterwards is harmless.)
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

INSTALL_HINT = (
    "Flower is not installed: the peer-framework baseline needs it.\n"
    "  . .venv/bin/activate && pip install 'flwr[simulation]'\n"
    "(benchmark-only dependency: it is deliberately not in pyproject.toml)"
)


class FlowerMissing(RuntimeError):
    """Flower (flwr[simulation]) is not importable."""


def require_flower() -> None:
    """Raise FlowerMissing with install instructions when flwr or ray is missing."""
    try:
        import flwr  # noqa: F401
        import ray  # noqa: F401
    except ImportError as exc:
        raise FlowerMissing(f"{INSTALL_HINT}\n(import error: {exc})") from None


# ----------------------------------------------------------------------------- the model
def _init_params(d: int, k: int) -> list[np.ndarray]:
    """Weights (d × k) and bias (k), zero: k = 1 for regression and binary logistic."""
    return [np.zeros((d, k)), np.zeros(k)]


def _scores(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x @ w + b


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def _gradient(
    task: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-loss gradient: ½ squared error, or (binary / softmax) cross-entropy."""
    z = _scores(x, w, b)
    if task == "regression":
        r = z - y[:, None]
    elif w.shape[1] == 1:  # binary logistic on the label 0/1
        r = _sigmoid(z) - y[:, None]
    else:
        r = _softmax(z)
        r[np.arange(len(y)), y.astype(int)] -= 1.0
    n = x.shape[0]
    return x.T @ r / n, r.sum(axis=0) / n


def local_train(
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    params: list[np.ndarray],
    epochs: int,
    lr: float,
    batch_size: int | None,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """`epochs` passes of gradient descent (full batch, or shuffled minibatches)."""
    w, b = params[0].copy(), params[1].copy()
    n = x.shape[0]
    for _ in range(epochs):
        if batch_size is None or batch_size >= n:
            gw, gb = _gradient(task, x, y, w, b)
            w -= lr * gw
            b -= lr * gb
            continue
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            gw, gb = _gradient(task, x[idx], y[idx], w, b)
            w -= lr * gw
            b -= lr * gb
    return [w, b]


def metric(task: str, x: np.ndarray, y: np.ndarray, params: list[np.ndarray]) -> float:
    """MSE (regression, in the units given) or accuracy (classification)."""
    z = _scores(x, params[0], params[1])
    if task == "regression":
        return float(np.mean((z[:, 0] - y) ** 2))
    pred = (z[:, 0] > 0).astype(int) if z.shape[1] == 1 else z.argmax(axis=1)
    return float(np.mean(pred == y))


def reached(task: str, value: float, target: float, tol: float) -> bool:
    """Regression: MSE <= target·(1+tol); classification: accuracy >= target - tol."""
    if task == "regression":
        return value <= target * (1.0 + tol)
    return value >= target - tol - 1e-12


def gap(task: str, value: float, target: float) -> float:
    """How far from the pooled model: relative MSE excess, or accuracy shortfall (<= 0: there)."""
    if task == "regression":
        return (value - target) / target
    return target - value


# ----------------------------------------------------------------------------- Flower
def _shadows_stdlib(entry: str) -> str | None:
    """The first stdlib module name that a sys.path entry would shadow, if any."""
    path = os.path.abspath(entry or os.getcwd())
    base = os.path.abspath(sys.base_prefix)
    if path.startswith(base + os.sep) or not os.path.isdir(path):
        return None  # the interpreter's own library, or a zip/egg
    for name in sorted(sys.stdlib_module_names):
        if os.path.isfile(os.path.join(path, name + ".py")) or os.path.isfile(
            os.path.join(path, name, "__init__.py")
        ):
            return name
    return None


@contextlib.contextmanager
def _ray_safe_path() -> Iterator[list[str]]:
    """sys.path without the entries that shadow a stdlib module, while Ray starts.

    Flower's Ray backend copies `sys.path` into the workers' PYTHONPATH. In this repository
    the root's `operator/` package shadow the stdlib `operator`
    module: Ray's agents then die at start-up ("The current node timed out during
    startup"). This module is shipped to the workers by value, so they need neither entry.
    """
    import ray.cloudpickle

    with contextlib.suppress(ValueError):  # already registered, or __main__
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    saved = list(sys.path)
    dropped = [p for p in saved if _shadows_stdlib(p)]
    sys.path[:] = [p for p in saved if p not in dropped]
    saved_env = os.environ.get("PYTHONPATH")
    if saved_env is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in saved_env.split(os.pathsep) if p and not _shadows_stdlib(p)
        )
    try:
        yield dropped
    finally:
        sys.path[:] = saved
        if saved_env is None:
            os.environ.pop("PYTHONPATH", None)  # Flower sets it
        else:
            os.environ["PYTHONPATH"] = saved_env


def run_fedavg(
    splits: list[tuple[np.ndarray, np.ndarray]],
    task: str,
    target_metric: float,
    max_rounds: int,
    local_epochs: int = 5,
    lr: float | None = None,
    *,
    tol: float | None = None,
    batch_size: int | None = None,
    standardize: bool = True,
    seed: int = 0,
    num_cpus: int | None = None,
    timing_rounds: int = 2,
    verbose: bool = False,
) -> dict[str, Any]:
    """Flower FedAvg until the pooled model's metric is reached (or `max_rounds`).

    splits: one (X, y) per site (one Flower client each); y: values (regression) or class
    labels (classification, any values: mapped to 0..K-1). target_metric: the pooled
    model's MSE (regression) or accuracy (classification) on the pooled rows. tol: relative
    MSE excess allowed (default 0.01) / accuracy shortfall allowed (default 0). lr: default
    0.4 (regression) / 0.5 (classification) on standardized inputs (below 2/λmax of
    the pooled Hessians of both bench data sets).

    Returns: reached (bool), rounds (to reach the target, or None), seconds_to_target
    (from the strategy's start: Ray and actor start-up excluded, None if not reached),
    seconds_total (the whole `run_simulation` call, Ray start-up included),
    seconds_startup (the call until the strategy starts; Ray itself starts inside round
    1), rounds_run, metric_per_round (index 0: the initial model),
    final_metric, final_gap (relative MSE excess / accuracy shortfall), target, settings;
    warm_round_s: the median duration of the rounds after the first (the first also starts
    the Ray workers), and warm_seconds_to_target = rounds × warm_round_s, Flower's time with
    its workers already up (a lower bound). Once the target is reached, `timing_rounds`
    more rounds are run only to time warm rounds; they are not in the metrics.
    """
    require_flower()
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    if not splits:
        raise ValueError("no splits: one (X, y) per site is needed")
    if tol is None:
        tol = 0.01 if task == "regression" else 0.0
    if lr is None:
        lr = 0.4 if task == "regression" else 0.5

    xs = [np.asarray(x, dtype=np.float64) for x, _ in splits]
    ys = [np.asarray(y) for _, y in splits]
    x_all = np.concatenate(xs)
    y_all = np.concatenate(ys)
    d = x_all.shape[1]

    # pooled scaling: a courtesy to FedAvg (a real federation would spend a round on it)
    mu = x_all.mean(axis=0) if standardize else np.zeros(d)
    sd = x_all.std(axis=0) if standardize else np.ones(d)
    sd[sd == 0] = 1.0
    if task == "regression":
        y_all = y_all.astype(np.float64)
        ymu = float(y_all.mean()) if standardize else 0.0
        ysd = float(y_all.std()) if standardize else 1.0
        ysd = ysd or 1.0
        yenc = [(y.astype(np.float64) - ymu) / ysd for y in ys]
        k = 1
    else:
        labels, inverse = np.unique(y_all, return_inverse=True)
        k = 1 if len(labels) == 2 else len(labels)
        bounds = np.cumsum([0] + [len(y) for y in ys])
        yenc = [inverse[a:b].astype(np.float64) for a, b in itertools.pairwise(bounds)]
        ymu, ysd = 0.0, 1.0
    data = [((x - mu) / sd, y) for x, y in zip(xs, yenc, strict=True)]
    x_eval = (x_all - mu) / sd
    y_eval = np.concatenate(yenc) if task == "classification" else y_all

    def evaluate(params: list[np.ndarray]) -> float:
        if task == "regression":  # MSE in the original units of y
            w, b = params
            return metric(task, x_eval, y_eval, [w * ysd, b * ysd + ymu])
        return metric(task, x_eval, y_eval, params)

    return _simulate(
        data,
        task,
        k,
        evaluate,
        target_metric=float(target_metric),
        tol=float(tol),
        max_rounds=max_rounds,
        local_epochs=local_epochs,
        lr=float(lr),
        batch_size=batch_size,
        seed=seed,
        num_cpus=num_cpus,
        timing_rounds=timing_rounds,
        verbose=verbose,
    )


def _simulate(
    data: list[tuple[np.ndarray, np.ndarray]],
    task: str,
    k: int,
    evaluate: Any,
    *,
    target_metric: float,
    tol: float,
    max_rounds: int,
    local_epochs: int,
    lr: float,
    batch_size: int | None,
    seed: int,
    num_cpus: int | None,
    timing_rounds: int,
    verbose: bool,
) -> dict[str, Any]:
    # quiet unless asked: Ray and Flower log every round at INFO
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    if not verbose:
        logging.getLogger("flwr").setLevel(logging.ERROR)

    sites = len(data)
    d = data[0][0].shape[1]
    state: dict[str, Any] = {
        "history": [],
        "times": [],
        "t0": None,
        "reached_round": None,
        "reached_s": None,
    }

    class StopAtTarget(FedAvg):
        """FedAvg that sends no more work once the server evaluation hit the target."""

        def configure_train(self, server_round, arrays, config, grid):
            done = state["reached_round"]
            if done is not None and server_round > done + timing_rounds:
                return []
            return super().configure_train(server_round, arrays, config, grid)

        def configure_evaluate(self, server_round, arrays, config, grid):
            return []  # evaluation is central (evaluate_fn), on the pooled rows

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        now = time.perf_counter()
        if state["t0"] is None:
            state["t0"] = now  # round 0: the strategy starts (the Ray workers start in round 1)
        done = state["reached_round"]
        if done is not None:  # a timing round, or a round that sent no work
            if server_round <= done + timing_rounds:
                state["times"].append(now - state["t0"])
            return None
        value = evaluate(arrays.to_numpy_ndarrays())
        state["history"].append(value)
        state["times"].append(now - state["t0"])
        if server_round > 0 and reached(task, value, target_metric, tol):
            state["reached_round"] = server_round
            state["reached_s"] = time.perf_counter() - state["t0"]
        return MetricRecord({"metric": value})

    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        x, y = data[pid]
        params = msg.content.array_records["arrays"].to_numpy_ndarrays()
        step = int(msg.content.config_records["config"]["server-round"])  # type: ignore[arg-type]
        rng = np.random.default_rng([seed, pid, step])
        new = local_train(task, x, y, params, local_epochs, lr, batch_size, rng)
        content = RecordDict(
            {
                "arrays": ArrayRecord(new),
                "metrics": MetricRecord({"num-examples": int(x.shape[0])}),
            }
        )
        return Message(content=content, reply_to=msg)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = StopAtTarget(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=sites,
            min_available_nodes=sites,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(_init_params(d, k)),
            num_rounds=max_rounds,
            evaluate_fn=evaluate_fn,
        )

    cpus = num_cpus or os.cpu_count() or 1
    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": cpus,
            "num_gpus": 0,
            "include_dashboard": False,
            "logging_level": "INFO" if verbose else "ERROR",
            "log_to_driver": verbose,
        },
    }
    with _ray_safe_path():
        t = time.perf_counter()
        run_simulation(
            server_app=server,
            client_app=client,
            num_supernodes=sites,
            backend_config=backend_config,  # type: ignore[arg-type]
            verbose_logging=verbose,
        )
        total = time.perf_counter() - t
    history = state["history"]
    durations = np.diff(state["times"])
    warm = float(np.median(durations[1:])) if len(durations) > 1 else None
    if not history:
        raise RuntimeError("the Flower simulation ran no round (see its log: verbose=True)")
    final = history[-1]
    startup = (state["t0"] - t) if state["t0"] is not None else None
    return {
        "framework": "flower",
        "task": task,
        "sites": sites,
        "reached": state["reached_round"] is not None,
        "rounds": state["reached_round"],
        "seconds_to_target": state["reached_s"],
        "seconds_total": total,
        "seconds_startup": startup,
        "rounds_run": len(history) - 1,
        "metric_per_round": history,
        "seconds_at_round": state["times"],
        "warm_round_s": warm,
        "warm_seconds_to_target": (
            state["reached_round"] * warm
            if warm is not None and state["reached_round"] is not None
            else None
        ),
        "final_metric": final,
        "final_gap": gap(task, final, target_metric),
        "target": target_metric,
        "settings": {
            "max_rounds": max_rounds,
            "local_epochs": local_epochs,
            "lr": lr,
            "tol": tol,
            "batch_size": batch_size,
            "timing_rounds": timing_rounds,
            "model": "least squares"
            if task == "regression"
            else ("logistic" if k == 1 else "softmax"),
        },
    }


__all__ = ["INSTALL_HINT", "FlowerMissing", "local_train", "metric", "require_flower", "run_fedavg"]
