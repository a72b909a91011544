"""Auto select (the reference's `autoSelect`): the best model for a task, scored on
out-of-sample rows.

auto-select-with-symetryml.md: candidate models are built from the project's statistics
(never from rows) on subsets of the input attributes chosen by a heuristic, each is
scored on a validation DataFrame the client sends, and the best is kept. Here:

    task binary_classifier   algos lda and bayes; scores auc (default), recall,
                             precision, mcc on P(class "1")
    task regression          elasticnet over the `autoselect_grid_type` grid of
                             (eta, lambda) (select-model-with-symetryml.md, "Selector
                             Grid"); scores rmse (default, lower is better), r2, mae

    selector_type_fw_bw      add the input that most improves the score while one does,
                             then remove the one whose removal most improves it while one
                             does; repeat up to `selector_max_iterations` (5) times
    selector_type_simple     the first k inputs for every k, in the order given

Candidates that cannot be built (a singular matrix, a class without rows) are skipped;
ties keep the earlier candidate, so the choice is deterministic. `rnd_seed` and
`autoselect_thread_pool_size` are accepted and have no effect (nothing here is random,
and candidates are built one after another). Any other parameter is refused, naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..accumulator import Accumulator
from ..errors import ModelError
from ..frame import Batch
from . import build_model
from .context import MLContext

TASKS = {"binary_classifier": "auc", "binary_classification": "auc", "regression": "rmse"}
GRIDS = {
    "autoselect_grid_type_tiny": ((0.0, 0.5, 1.0), (1e-3, 1e-2, 0.1)),
    "autoselect_grid_type_small": ((0.0, 0.5, 1.0), (1e-3, 1e-2, 0.1, 1.0)),
    "autoselect_grid_type_normal": ((0.0, 0.3333, 0.6666, 1.0), (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)),
    "autoselect_grid_type_large": ((0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                                   (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0,
                                    10.0, 100.0, 1000.0)),
}
SELECTORS = ("selector_type_fw_bw", "selector_type_simple")
PARAMETERS = ("rnd_seed", "selector_type", "autoselect_grid_type", "autoselect_thread_pool_size",
              "selector_max_iterations", "sml_model_assessment_type")
CLASSIFIER_METRICS = ("auc", "recall", "precision", "mcc")
REGRESSION_METRICS = ("rmse", "r2", "mae")


@dataclass
class Selection:
    """The chosen model: its algo and MLContext, its score, and how many were tried."""

    algo: str
    context: dict[str, Any]
    metric: str
    score: float
    tried: int = 0
    inputs: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, str]:
        """A KSVSMap row of strings, as the reference reports a selection."""
        return {"algo": self.algo, "metric": self.metric, "score": repr(self.score),
                "models_tried": str(self.tried), "inputs": ",".join(self.inputs),
                **{k: v for k, v in self.context["extraParameters"].items()}}


def auto_select(task: str, acc: Accumulator, mlcontext: Any, validation: Batch) -> Selection:
    """The best model for `task` on `validation` (see the module docstring)."""
    if task not in TASKS:
        raise ModelError(f"task {task!r} is not offered: use binary_classifier or regression")
    ctx = MLContext.parse(mlcontext)
    ctx.check_parameters("autoSelect", PARAMETERS)
    ctx.integer("rnd_seed", 0, low=-(2**63))
    ctx.integer("autoselect_thread_pool_size", 8)
    selector = ctx.text("selector_type", SELECTORS[0], SELECTORS)
    rounds = ctx.integer("selector_max_iterations", 5) or 5
    regression = task == "regression"
    metric = ctx.text("sml_model_assessment_type", TASKS[task],
                      REGRESSION_METRICS if regression else CLASSIFIER_METRICS)
    grid = ctx.text("autoselect_grid_type", "autoselect_grid_type_tiny", tuple(GRIDS))
    inputs, targets = MLContext(ctx.targets, ctx.input_attributes, ctx.input_names,
                                ctx.target_names).resolve(acc)
    if len(targets) != 1:
        raise ModelError(f"autoSelect takes one target attribute, got {len(targets)}")
    target = targets[0]
    if target not in validation.columns:
        raise ModelError(f"the validation DataFrame lacks the target {target!r}")
    truth = validation.values[:, validation.columns.index(target)]
    if regression:
        etas, lambdas = GRIDS[grid]
        candidates = [("elasticnet", {"eta": repr(e), "lambda": repr(lam)})
                      for e in etas for lam in lambdas]
    else:
        if set(np.unique(truth)) - {0.0, 1.0}:
            raise ModelError(f"binary_classifier needs a 0/1 target; {target!r} has other values")
        candidates = [("lda", {}), ("bayes", {})]
    score_of = _scorer(metric, truth)
    best: Selection | None = None
    tried = 0
    for algo, extra in candidates:

        def score(subset: Sequence[str], algo: str = algo,
                  extra: dict[str, str] = extra) -> float:
            nonlocal tried
            tried += 1
            context = {"inputAttributeNames": list(subset), "targetAttributeNames": [target],
                       "extraParameters": dict(extra)}
            try:
                model = build_model(algo, acc, context)
                columns = model.predict_columns(validation)
            except ModelError:
                return -math.inf
            return score_of(columns)

        subset, value = _select(selector, inputs, score, rounds)
        if subset and (best is None or value > best.score):
            best = Selection(algo, {"inputAttributeNames": subset,
                                    "targetAttributeNames": [target],
                                    "extraParameters": dict(extra)}, metric, value,
                             inputs=subset)
    if best is None or not math.isfinite(best.score):
        raise ModelError("autoSelect could build no model that scores on the validation rows")
    best.tried = tried
    if metric in ("rmse", "mae"):
        best.score = -best.score  # searched as "higher is better"
    return best


def _select(selector: str, inputs: list[str], score: Callable[[Sequence[str]], float],
            rounds: int) -> tuple[list[str], float]:
    if selector == "selector_type_simple":
        scored = [(score(inputs[:k]), k) for k in range(1, len(inputs) + 1)]
        value, k = max(scored, key=lambda s: (s[0], -s[1]))
        return inputs[:k], value
    chosen: list[str] = []
    best = -math.inf
    for _ in range(rounds):
        changed = False
        while len(chosen) < len(inputs):  # forward
            value, add = max(((score([*chosen, a]), a) for a in inputs if a not in chosen),
                             key=lambda s: s[0])
            if not value > best:
                break
            chosen, best, changed = [*chosen, add], value, True
        while len(chosen) > 1:  # backward
            value, drop = max(((score([c for c in chosen if c != d]), d) for d in chosen),
                              key=lambda s: s[0])
            if not value > best:
                break
            chosen, best, changed = [c for c in chosen if c != drop], value, True
        if not changed:
            break
    return chosen, best


def _scorer(metric: str, truth: np.ndarray) -> Callable[[dict[str, list[str]]], float]:
    """Higher is better: rmse and mae are negated."""

    def score(columns: dict[str, list[str]]) -> float:
        if metric in REGRESSION_METRICS:
            pred = np.asarray(columns["res"], dtype=np.float64)
            err = pred - truth
            if metric == "rmse":
                return -float(np.sqrt(np.mean(err * err)))
            if metric == "mae":
                return -float(np.mean(np.abs(err)))
            total = float(np.sum((truth - truth.mean()) ** 2))
            return 1.0 - float(np.sum(err * err)) / total if total > 0 else -math.inf
        if "proba_1" not in columns:
            return -math.inf  # the training rows had one class only
        p = np.asarray(columns["proba_1"], dtype=np.float64)
        if metric == "auc":
            return _auc(truth, p)
        label = p > 0.5
        tp = float(np.sum(label & (truth == 1)))
        fp = float(np.sum(label & (truth == 0)))
        fn = float(np.sum(~label & (truth == 1)))
        tn = float(np.sum(~label & (truth == 0)))
        if metric == "recall":
            return tp / (tp + fn) if tp + fn else -math.inf
        if metric == "precision":
            return tp / (tp + fp) if tp + fp else -math.inf
        denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return (tp * tn - fp * fn) / denom if denom else 0.0

    return score


def _auc(truth: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic, ties counted half."""
    pos, neg = p[truth == 1], p[truth == 0]
    if not len(pos) or not len(neg):
        raise ModelError("auc needs validation rows of both classes")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    rank_of = np.empty(len(values))
    rank_of[order] = ranks
    r_pos = float(rank_of[: len(pos)].sum())
    return (r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg))
