"""Models built from merged accumulators equal scikit-learn fitted on the pooled rows.

Each case splits a dataset scikit-learn ships between 2-5 sites; every site learns its
rows in two batches (as string DataFrames, or as arrays at some sites), then some sites
forget part of what they learned. The merged accumulator's model must equal scikit-learn
fitted on the rows that remain, within 1e-9 relative.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn import discriminant_analysis as da
from sklearn import linear_model as lm
from sklearn.decomposition import PCA
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import ModelError
from fedstats.node.engine.frame import Batch, parse_frame
from fedstats.node.engine.models import ALGORITHMS, MLContext, Model, build_model, load_model

RTOL = 1e-9


# --------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class Table:
    """A dataset as typed attributes: floats for C, 0/1 for B, labels for T."""

    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    values: dict[str, np.ndarray]
    target: str

    @property
    def rows(self) -> int:
        return len(self.values[self.names[0]])

    @property
    def inputs(self) -> list[str]:
        return [a for a in self.names if a != self.target]

    def frame(self, rows: np.ndarray, order: list[str] | None = None) -> dict[str, Any]:
        """The rows as the spec's DataFrame of strings."""
        names = order or list(self.names)
        kinds = dict(zip(self.names, self.types, strict=True))
        cols = [_texts(self.values[a], kinds[a], rows) for a in names]
        return {
            "attributeNames": names,
            "attributeTypes": [kinds[a] for a in names],
            "data": [list(r) for r in zip(*cols, strict=True)],
        }

    def array(self, rows: np.ndarray) -> Batch:
        """The rows as a numeric batch (only for tables without categories)."""
        assert "T" not in self.types
        x = np.column_stack([self.values[a][rows] for a in self.names])
        binary = [a for a, t in zip(self.names, self.types, strict=True) if t == "B"]
        return Batch.from_array(x, list(self.names), binary)

    def column(self, col: str, rows: np.ndarray) -> np.ndarray:
        """An expanded column (`attr$level` is the indicator of that level)."""
        if "$" in col:
            attr, level = col.split("$", 1)
            return (self.values[attr][rows] == level).astype(float)
        return self.values[col][rows].astype(float)

    def design(self, cols: list[str], rows: np.ndarray) -> np.ndarray:
        return np.column_stack([self.column(c, rows) for c in cols])


def _texts(values: np.ndarray, typ: str, rows: np.ndarray) -> list[str]:
    if typ == "T":
        return [str(v) for v in values[rows]]
    if typ == "B":
        return [str(int(v)) for v in values[rows]]
    return [repr(float(v)) for v in values[rows]]


def _table(name: str, x: np.ndarray, features: list[str], y: Any, ytype: str) -> Table:
    clean = [f.replace(" ", "_") for f in features]
    values = {f: x[:, j] for j, f in enumerate(clean)}
    values["target"] = np.asarray(y)
    return Table(name, (*clean, "target"), ("C",) * len(clean) + (ytype,), values, "target")


@functools.cache
def table(name: str) -> Table:
    if name == "diabetes":
        d = datasets.load_diabetes()
        return _table(name, d.data, list(d.feature_names), d.target, "C")
    if name == "diabetes-sex":  # the sex column as a category input
        t = table("diabetes")
        values = dict(t.values)
        values["sex"] = np.where(values["sex"] > 0, "m", "f")
        types = tuple("T" if a == "sex" else k for a, k in zip(t.names, t.types, strict=True))
        return Table(name, t.names, types, values, "target")
    if name == "cancer":
        # the "mean" features without perimeter and area: with them the pooled covariance
        # has condition ~1e10, and scikit-learn's own lstsq is then only good to ~5e-9
        # (checked against exact rational arithmetic; ours was within 1e-10)
        d = datasets.load_breast_cancer()
        keep = [0, 1, 4, 5, 6, 7, 8, 9]
        return _table(name, d.data[:, keep], list(d.feature_names[keep]), d.target, "B")
    if name in ("iris", "iris2"):
        d = datasets.load_iris()
        labels = d.target_names[d.target]
        keep = np.arange(len(labels)) if name == "iris" else np.flatnonzero(d.target > 0)
        return _table(name, d.data[keep], list(d.feature_names), labels[keep], "T")
    if name == "wine":
        d = datasets.load_wine()
        return _table(name, d.data, list(d.feature_names), d.target_names[d.target], "T")
    raise KeyError(name)


# --------------------------------------------------------------------------- federation
def federate(t: Table, sites: int, ingest: str, seed: int) -> tuple[Accumulator, np.ndarray]:
    """The merged accumulator of `sites` sites, and the rows that remain after forgets."""
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, sites, t.rows)
    owner[:sites] = np.arange(sites)  # every site has a row
    parts, kept = [], []
    for s in range(sites):
        rows = rng.permutation(np.flatnonzero(owner == s))
        as_array = ingest == "mixed" and s % 2 == 1
        acc = Accumulator()

        def feed(op: Any, idx: np.ndarray, as_array: bool = as_array) -> None:
            op(t.array(idx) if as_array else parse_frame(t.frame(idx)))

        half = len(rows) // 2
        feed(acc.learn, rows[:half])
        feed(acc.learn, rows[half:])
        if s % 2 == 0 and len(rows) > 10:  # even sites forget a few of their rows
            gone = rows[: max(1, len(rows) // 8)]
            feed(acc.forget, gone)
            rows = rows[len(gone) :]
        parts.append(acc)
        kept.append(rows)
    merged = Accumulator.merged(rng.permutation(np.array(parts, dtype=object)).tolist())
    return merged, np.sort(np.concatenate(kept))


def predict_frame(t: Table, model: Model) -> dict[str, list[str]]:
    """Predict every row of the dataset, columns reversed and one extra column added."""
    frame = t.frame(np.arange(t.rows), order=list(reversed(t.names)))
    frame["attributeNames"].append("extra")
    frame["attributeTypes"].append("C")
    for row in frame["data"]:
        row.append("1.5")
    return model.predict(parse_frame(frame))


def close(actual: Any, expected: Any, atol: float = 0.0) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), RTOL, atol)


def floats(values: list[str]) -> np.ndarray:
    return np.array([float(v) for v in values])


# --------------------------------------------------------------------------- cases
REGRESSION = {
    "mlr": ({}, lambda: lm.LinearRegression()),
    "ridge": ({"alpha": "0.5"}, lambda: lm.Ridge(alpha=0.5)),
    "lasso": ({"alpha": "0.1"}, lambda: lm.Lasso(alpha=0.1, tol=1e-14, max_iter=10**6)),
    "elasticnet": (
        {"alpha": "0.01", "l1_ratio": "0.7"},
        lambda: lm.ElasticNet(alpha=0.01, l1_ratio=0.7, tol=1e-14, max_iter=10**6),
    ),
}

CASES = [
    *[(algo, "diabetes", ingest) for algo in REGRESSION for ingest in ("frame", "mixed")],
    ("mlr", "diabetes-sex", "frame"),
    ("ridge", "diabetes-sex", "frame"),
    ("lasso", "diabetes-sex", "frame"),
    ("pcr", "diabetes", "mixed"),
    ("pcr", "diabetes-sex", "frame"),
    ("lda", "cancer", "mixed"),
    ("lda", "iris2", "frame"),
    ("mlda", "iris", "frame"),
    ("mlda", "wine", "frame"),
    ("mqda", "cancer", "mixed"),
    ("mqda", "iris", "frame"),
    ("mqda", "wine", "frame"),
    ("bayes", "cancer", "mixed"),
    ("bayes", "iris", "frame"),
    ("bayes", "wine", "frame"),
]


@pytest.mark.parametrize("sites", [2, 3, 5], ids=lambda s: f"{s}sites")
@pytest.mark.parametrize(
    ("algo", "data", "ingest"), CASES, ids=[f"{a}-{d}-{i}" for a, d, i in CASES]
)
def test_federated_model_equals_sklearn_on_pooled_remaining_rows(
    algo: str, data: str, ingest: str, sites: int
) -> None:
    t = table(data)
    acc, rows = federate(t, sites, ingest, seed=sites * 101 + len(algo))
    assert acc.n == len(rows) < t.rows
    extra = REGRESSION[algo][0] if algo in REGRESSION else {}
    if algo == "pcr":
        extra = {"k": "5"}
    model = build_model(algo, acc, {"targetAttributeNames": [t.target], "extraParameters": extra})
    x = t.design(model.inputs, rows)
    x_all = t.design(model.inputs, np.arange(t.rows))
    y = t.values[t.target][rows]
    answer = predict_frame(t, model)
    if algo in REGRESSION:
        sk = REGRESSION[algo][1]().fit(x, y)
        close(model.arrays["coef"], sk.coef_, atol=1e-12 * np.abs(sk.coef_).max())
        close(model.arrays["intercept"], sk.intercept_)
        close(floats(answer["prediction"]), sk.predict(x_all))
    elif algo == "pcr":
        sk = make_pipeline(PCA(5), lm.LinearRegression()).fit(x, y)
        close(floats(answer["prediction"]), sk.predict(x_all))
    else:
        check_classifier(algo, model, x, y, x_all, answer)


def check_classifier(
    algo: str, model: Model, x: np.ndarray, y: np.ndarray, x_all: np.ndarray, answer: Any
) -> None:
    labels = [str(c) if isinstance(c, str) else str(int(c)) for c in np.unique(y)]
    assert model.meta["labels"] == labels
    # probabilities this small come from exponentials of huge distances, whose last bits
    # are amplified rounding; 1e-12 absolute says nothing about the model's correctness
    patol = 1e-12
    if algo in ("lda", "mlda"):
        sk = da.LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
        close(model.arrays["means"], sk.means_)
        close(model.arrays["priors"], sk.priors_)
        close(model.arrays["coef"], sk.coef_, atol=1e-12 * np.abs(sk.coef_).max())
        close(model.arrays["intercept"], sk.intercept_)
        default = da.LinearDiscriminantAnalysis().fit(x, y)
        expected = [str(v) if isinstance(v, str) else str(int(v)) for v in default.predict(x_all)]
        assert answer["prediction"] == expected
    elif algo == "mqda":
        # tol is only scikit-learn's absolute rank check; cancer's small-unit features
        # have class variances below its default 1e-4
        sk = da.QuadraticDiscriminantAnalysis(tol=1e-12).fit(x, y)
        close(model.arrays["means"], sk.means_)
        close(model.arrays["priors"], sk.priors_)
    else:
        sk = GaussianNB().fit(x, y)
        close(model.arrays["theta"], sk.theta_)
        close(model.arrays["var"], sk.var_)
        close(model.arrays["priors"], sk.class_prior_)
    proba = sk.predict_proba(x_all)
    for k, label in enumerate(labels):
        close(floats(answer[f"proba_{label}"]), proba[:, k], atol=patol)
    expected = [str(v) if isinstance(v, str) else str(int(v)) for v in sk.predict(x_all)]
    assert answer["prediction"] == expected
