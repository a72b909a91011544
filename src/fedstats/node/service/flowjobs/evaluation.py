"""FATE's Evaluation metrics (pure): binary, regression and multi-class summaries and curves.

Binary: auc (trapezoidal ROC area, ties handled), ks (max tpr − fpr over thresholds),
accuracy, precision, recall and f1 at FATE's threshold 0.5; curves roc, ks_tpr, ks_fpr
(thinned to CURVE_POINTS points; the summaries use the whole curve).
Regression: rmse, mae, r2, explained_variance. Multi: accuracy and macro precision,
recall and f1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .frames import Floats

BINARY = ("auc", "ks", "accuracy", "precision", "recall", "f1_score")
REGRESSION = ("rmse", "mae", "r2_score", "explained_variance")
MULTI = ("accuracy", "precision", "recall", "f1_score")
CURVE_POINTS = 500  # curves are thinned to this many points, as FATE's are


def roc(y: Floats, score: Floats) -> tuple[Floats, Floats, Floats]:
    """(fpr, tpr, thresholds), thresholds decreasing, starting at (0, 0)."""
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(t)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(tps[-1], 1e-300), max(fps[-1], 1e-300)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos], np.r_[np.inf, s[distinct]]


def binary(y: Floats, score: Floats, threshold: float = 0.5) -> tuple[dict[str, float],
                                                                     dict[str, list[list[float]]]]:
    fpr, tpr, thr = roc(y, score)
    auc = float(np.trapezoid(tpr, fpr))  # on the whole curve, before thinning
    ks = float(np.max(tpr - fpr))
    pred = (score >= threshold).astype(float)
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    summary = {"auc": auc, "ks": ks, "accuracy": float(np.mean(pred == y)),
               "precision": precision, "recall": recall, "f1_score": f1}
    keep = _thin(len(fpr))
    fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    finite = np.isfinite(thr)
    curves = {"roc": [[float(a), float(b)] for a, b in zip(fpr, tpr, strict=True)],
              "ks_tpr": [[float(a), float(b)] for a, b in zip(thr[finite], tpr[finite], strict=True)],
              "ks_fpr": [[float(a), float(b)] for a, b in zip(thr[finite], fpr[finite], strict=True)]}
    return summary, curves


def _thin(n: int, points: int = CURVE_POINTS) -> np.ndarray:
    """At most `points` indices of a curve, evenly spread, first and last kept."""
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(int))


def regression(y: Floats, pred: Floats) -> dict[str, float]:
    err = y - pred
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    var_y = float(np.var(y))
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
            "r2_score": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot else 0.0,
            "explained_variance": 1.0 - float(np.var(err)) / var_y if var_y else 0.0}


def multi(y: Floats, pred: Floats) -> dict[str, float]:
    labels = np.unique(np.r_[y, pred])
    p, r = [], []
    for c in labels:
        tp = float(np.sum((pred == c) & (y == c)))
        p.append(tp / max(float(np.sum(pred == c)), 1.0))
        r.append(tp / max(float(np.sum(y == c)), 1.0))
    f = [2 * a * b / (a + b) if a + b else 0.0 for a, b in zip(p, r, strict=True)]
    return {"accuracy": float(np.mean(pred == y)), "precision": float(np.mean(p)),
            "recall": float(np.mean(r)), "f1_score": float(np.mean(f))}


def evaluate(eval_type: str, y: Floats, result: Floats, score: Floats,
             pos_label: Any = 1) -> tuple[dict[str, float], dict[str, list[list[float]]]]:
    if eval_type == "binary":
        return binary((y == float(pos_label)).astype(float), score)
    if eval_type == "regression":
        return regression(y, result), {}
    return multi(y, result), {}
