"""What a party does with its own rows, by name: the only code that touches a Frame.

A coordinator (components.py) asks each party's site to run one of these and sees only
what it answers: counts, moments, GLM round statistics, an accumulator of co-moments,
evaluation figures. Rows never go back. A local site calls them directly; a remote site
would send the name and arguments to the party's node, which runs the same function.
Each op is `op(frames..., **args) -> (output frame or None, answer)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from ...engine.accumulator import Accumulator
from ...engine.frame import Batch
from ...engine.glm import RoundStats, round_stats
from ...engine.models import load_model
from .errors import ComponentFailed
from .evaluation import evaluate as evaluate_metrics
from .frames import Frame, Moments

Op = Callable[..., tuple[Frame | None, Any]]
MAX_LABELS = 64


def read(table: tuple[list[str], np.ndarray], sid_name: str = "id") -> tuple[Frame, Any]:
    columns, values = table
    frame = Frame(values[:, 0].copy(), list(columns[1:]), np.ascontiguousarray(values[:, 1:]),
                  sid_name=columns[0] or sid_name)
    return frame, {"count": frame.n, "header": frame.header, "sid": frame.sid_name}


def transform(frame: Frame, *, with_label: bool, label_name: str, label_type: str,
              header: Sequence[str] | None = None) -> tuple[Frame, Any]:
    cols = list(frame.header)
    label = None
    if with_label:
        if label_name not in cols:
            raise ComponentFailed(f"label column {label_name!r} is not in the table's header "
                                  f"{cols}")
        j = cols.index(label_name)
        label = frame.x[:, j].copy()
        if label_type in ("int", "int64", "long") and not np.all(label == np.floor(label)):
            raise ComponentFailed(f"label {label_name!r} has non-integer values but label_type "
                                  f"is {label_type!r}")
        keep = [k for k in range(len(cols)) if k != j]
        x, names = frame.x[:, keep], [cols[k] for k in keep]
    else:
        x, names = frame.x, cols
    if header is not None:  # predict: the train header, in its order
        missing = [h for h in header if h not in names]
        if missing:
            raise ComponentFailed(f"the table lacks the model's feature(s) {missing}")
        idx = [names.index(h) for h in header]
        x, names = x[:, idx], list(header)
    out = Frame(frame.sid, names, np.ascontiguousarray(x), label,
                label_name if with_label else None, frame.sid_name)
    return out, {"count": out.n, "header": names}


def moments(frame: Frame) -> tuple[None, Any]:
    return None, Moments.of(frame.x).to_dict()


def scale(frame: Frame, *, shift: Sequence[float], divide: Sequence[float],
          columns: Sequence[int]) -> tuple[Frame, Any]:
    x = frame.x.copy()
    idx = list(columns)
    x[:, idx] = (x[:, idx] - np.asarray(shift)) / np.asarray(divide)
    return Frame(frame.sid, frame.header, x, frame.label, frame.label_name, frame.sid_name), \
        {"count": frame.n}


def labels(frame: Frame) -> tuple[None, Any]:
    if frame.label is None:
        raise ComponentFailed("the data has no label: set with_label (and label_name) on "
                              "DataTransform")
    values = np.unique(frame.label)
    if len(values) > MAX_LABELS:
        raise ComponentFailed(f"the label has {len(values)} distinct values: not a class label")
    return None, values.tolist()


def glm_round(frame: Frame, *, coef: np.ndarray, family: str,
              positive: float | None = None) -> tuple[None, RoundStats]:
    """A round's sums at `coef`; with `positive`, of the binary label `label == positive`
    (one class against the rest)."""
    assert frame.label is not None
    y = frame.label if positive is None else (frame.label == float(positive)).astype(float)
    return None, round_stats(frame.x, y, coef, family)


def accumulate(frame: Frame, *, binary_label: bool) -> tuple[None, Accumulator]:
    if frame.label is None or frame.label_name is None:
        raise ComponentFailed("the data has no label: set with_label on DataTransform")
    acc = Accumulator()
    if frame.n:
        acc.learn_array(np.column_stack([frame.x, frame.label]), [*frame.header, frame.label_name],
                        binary=[frame.label_name] if binary_label else [])
    return None, acc


def predict_lr(frame: Frame, *, weight: Sequence[float], intercept: float,
               kind: str, threshold: float = 0.5) -> tuple[Frame, Any]:
    score = special.expit(frame.x @ np.asarray(weight) + intercept)
    result = (score >= threshold).astype(float)
    return _predictions(frame, result, score, {"0": 1.0 - score, "1": score}, kind)


def predict_ovr(frame: Frame, *, weights: Sequence[Sequence[float]],
                intercepts: Sequence[float], classes: Sequence[float],
                kind: str) -> tuple[Frame, Any]:
    """One against the rest: each class's own probability; the most probable class wins."""
    w = np.asarray(weights, dtype=float)
    scores = special.expit(frame.x @ w.T + np.asarray(intercepts, dtype=float))
    best = np.argmax(scores, axis=1)
    result = np.asarray(classes, dtype=float)[best]
    detail = {_class_key(c): scores[:, j] for j, c in enumerate(classes)}
    return _predictions(frame, result, scores[np.arange(frame.n), best], detail, kind)


def _class_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def predict_model(frame: Frame, *, model: dict[str, Any], kind: str) -> tuple[Frame, Any]:
    m = load_model(model)
    cols = m.predict_columns(Batch.from_array(frame.x, frame.header))
    res = cols["res"]
    try:
        result = np.asarray([float(v) for v in res])
    except ValueError:
        result = np.asarray([float(np.nan)] * len(res))
    proba = cols.get("proba_1")
    score = np.asarray([float(v) for v in proba]) if proba is not None else result
    detail = {k[len("proba_"):]: np.asarray([float(v) for v in cols[k]])
              for k in cols if k.startswith("proba_")}
    return _predictions(frame, result, score, detail, kind)


def _predictions(frame: Frame, result: np.ndarray, score: np.ndarray, detail: dict[str, Any],
                 kind: str) -> tuple[Frame, Any]:
    label = frame.label if frame.label is not None else np.full(frame.n, np.nan)
    out = Frame(frame.sid, frame.header, frame.x, frame.label, frame.label_name, frame.sid_name,
                predictions={"label": label, "predict_result": result, "predict_score": score,
                             "predict_detail": detail, "type": kind})
    return out, {"count": frame.n}


def evaluate(frame: Frame, *, eval_type: str, pos_label: Any) -> tuple[None, Any]:
    p = frame.predictions
    if p is None:
        raise ComponentFailed("Evaluation needs the predictions of a model component as input")
    if np.isnan(np.asarray(p["label"], dtype=float)).any():
        raise ComponentFailed("Evaluation needs labelled data (with_label on DataTransform)")
    summary, curves = evaluate_metrics(eval_type, np.asarray(p["label"], float),
                                       np.asarray(p["predict_result"], float),
                                       np.asarray(p["predict_score"], float), pos_label)
    return None, {"summary": summary, "curves": curves}


def save(frame: Frame, *, path: str) -> tuple[None, Any]:
    return None, {"count": frame.n, "header": frame.save(Path(path))}


def describe(frame: Frame) -> tuple[None, Any]:
    return None, {"header": list(frame.header), "label": frame.label_name, "count": frame.n,
                  "predictions": frame.predictions is not None}


OPS: dict[str, Op] = {f.__name__: f for f in (transform, moments, scale, labels, glm_round,
                                             accumulate, predict_lr, predict_ovr, predict_model, evaluate,
                                             save, describe)}
