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
    batch = parse_frame(frame)
    columns = model.predict_columns(batch)
    rows = model.predict(batch)["values"]  # the wire's KSVSMap: one map per row, in order
    assert rows == [dict(zip(columns, r, strict=True))
                    for r in zip(*columns.values(), strict=True)]
    return columns


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
        close(floats(answer["res"]), sk.predict(x_all))
    elif algo == "pcr":
        sk = make_pipeline(PCA(5), lm.LinearRegression()).fit(x, y)
        close(floats(answer["res"]), sk.predict(x_all))
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
        assert answer["res"] == expected
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
    assert answer["res"] == expected


# --------------------------------------------------------------------------- contexts
def single_site(data: str, conditional: bool = True) -> Accumulator:
    t = table(data)
    acc = Accumulator(conditional=conditional)
    acc.learn(parse_frame(t.frame(np.arange(t.rows))))
    return acc


def _timeless(d: dict[str, Any]) -> dict[str, Any]:
    """A stored model without when and how long it was built (ModelInfo's clock fields)."""
    meta = {k: v for k, v in d["meta"].items() if k not in ("creationDate", "buildTimeNanosec")}
    return {**d, "meta": meta}


def test_indices_and_names_build_the_same_model() -> None:
    acc = single_site("diabetes")  # attributes: age sex bmi bp s1..s6 target
    by_name = build_model(
        "ridge",
        acc,
        {"inputAttributeNames": ["bmi", "age"], "targetAttributeNames": ["target"]},
    )
    by_index = build_model("ridge", acc, {"inputAttributes": [2, 0], "targets": [10]})
    assert by_name.inputs == by_index.inputs == ["bmi", "age"]
    assert _timeless(by_name.to_dict()) == _timeless(by_index.to_dict())


def test_without_inputs_every_other_attribute_is_an_input() -> None:
    model = build_model("mlr", single_site("diabetes"), {"targetAttributeNames": ["target"]})
    assert model.inputs == list(table("diabetes").inputs)


@pytest.mark.parametrize(
    ("algo", "kept"),
    [
        ("mlr", ["sex$f"]),
        ("lasso", ["sex$f"]),
        ("ridge", ["sex$m", "sex$f"]),
        ("elasticnet", ["sex$m", "sex$f"]),
        ("pcr", ["sex$m", "sex$f"]),
    ],
    ids=["mlr-drops", "lasso-drops", "ridge-keeps", "elasticnet-keeps", "pcr-keeps"],
)
def test_one_hot_inputs_drop_their_last_sorted_level_only_where_it_is_collinear(
    algo: str, kept: list[str]
) -> None:
    t = table("diabetes-sex")
    acc = Accumulator()
    sex = t.values["sex"]
    # males first: the project's column order is then sex$m, sex$f, yet "m" is the
    # level dropped, because the reference level must not depend on arrival order
    acc.learn(parse_frame(t.frame(np.flatnonzero(sex == "m"))))
    acc.learn(parse_frame(t.frame(np.flatnonzero(sex == "f"))))
    assert acc.attribute_columns("sex") == ["sex$m", "sex$f"]
    ctx = {"inputAttributeNames": ["sex", "bmi"], "targetAttributeNames": ["target"]}
    model = build_model(algo, acc, {**ctx, "extraParameters": {"k": "2"} if algo == "pcr" else {}})
    assert [c for c in model.inputs if c.startswith("sex$")] == kept


def test_a_category_level_missing_from_the_rows_to_predict_counts_as_zero() -> None:
    t = table("diabetes-sex")
    acc = single_site("diabetes-sex")
    model = build_model("ridge", acc, {"targetAttributeNames": ["target"]})
    males = np.flatnonzero(t.values["sex"] == "m")
    batch = parse_frame(t.frame(males))
    assert "sex$f" not in batch.columns
    expected = t.design(model.inputs, males) @ model.arrays["coef"] + model.arrays["intercept"]
    close(floats(model.predict_columns(batch)["res"]), expected)


def test_qda_ddof_1_uses_unbiased_class_covariances() -> None:
    t = table("iris")
    acc = single_site("iris")
    biased = build_model("mqda", acc, {"targetAttributeNames": ["target"]})
    unbiased = build_model(
        "mqda", acc, {"targetAttributeNames": ["target"], "extraParameters": {"ddof": "1"}}
    )
    x = t.design(biased.inputs, np.arange(t.rows))
    for k, label in enumerate(biased.meta["labels"]):
        rows = x[t.values["target"] == label]
        for model, ddof in ((biased, 0), (unbiased, 1)):
            cov = model.info()["covariances"][k]
            close(cov, np.cov(rows, rowvar=False, ddof=ddof))


def test_lda_needs_no_conditional_statistics() -> None:
    with_cond = build_model("mlda", single_site("wine"), {"targetAttributeNames": ["target"]})
    without = build_model(
        "mlda", single_site("wine", conditional=False), {"targetAttributeNames": ["target"]}
    )
    close(without.arrays["coef"], with_cond.arrays["coef"])


# --------------------------------------------------------------------------- errors
ERRORS = [
    ("unknown-algo", "nope", "diabetes", {"targets": [10]}, "unknown algorithm 'nope'"),
    (
        "unknown-input",
        "mlr",
        "diabetes",
        {"inputAttributeNames": ["zzz"], "targets": [10]},
        "unknown input attribute 'zzz'",
    ),
    (
        "unknown-target",
        "mlr",
        "diabetes",
        {"targetAttributeNames": ["zzz"]},
        "unknown target attribute 'zzz'",
    ),
    ("index-out-of-range", "mlr", "diabetes", {"targets": [99]}, "target index 99 is out of range"),
    (
        "names-disagree-with-indices",
        "mlr",
        "diabetes",
        {"targets": [9], "targetAttributeNames": ["target"]},
        "disagree with indices",
    ),
    ("no-target", "mlr", "diabetes", {}, "names no target"),
    (
        "target-among-inputs",
        "mlr",
        "diabetes",
        {"inputAttributeNames": ["bmi", "target"], "targetAttributeNames": ["target"]},
        "'target' is both a target and an input",
    ),
    (
        "input-twice",
        "mlr",
        "diabetes",
        {"inputAttributeNames": ["bmi", "bmi"], "targets": [10]},
        "'bmi' is listed twice",
    ),
    ("two-targets", "mlr", "diabetes", {"targets": [9, 10]}, "takes one target attribute, got 2"),
    (
        "category-target-regression",
        "mlr",
        "iris",
        {"targets": [4]},
        "regression needs a continuous",
    ),
    (
        "continuous-target-lda",
        "lda",
        "diabetes",
        {"targets": [10]},
        "needs a binary (B) or category (T) target",
    ),
    ("three-classes-lda", "lda", "iris", {"targets": [4]}, "has 3 classes: use mlda"),
    (
        "alpha-not-a-number",
        "ridge",
        "diabetes",
        {"targets": [10], "extraParameters": {"alpha": "lots"}},
        "'alpha' must be a number",
    ),
    (
        "alpha-negative",
        "lasso",
        "diabetes",
        {"targets": [10], "extraParameters": {"alpha": "-1"}},
        "'alpha' must be a finite number >= 0",
    ),
    (
        "l1-ratio-above-1",
        "elasticnet",
        "diabetes",
        {"targets": [10], "extraParameters": {"l1_ratio": "2"}},
        "'l1_ratio' must be a finite number >= 0 and <= 1",
    ),
    (
        "k-zero",
        "pcr",
        "diabetes",
        {"targets": [10], "extraParameters": {"k": "0"}},
        "'k' must be >= 1",
    ),
    (
        "k-not-integer",
        "pcr",
        "diabetes",
        {"targets": [10], "extraParameters": {"k": "2.5"}},
        "'k' must be an integer",
    ),
    (
        "k-above-d",
        "pcr",
        "diabetes",
        {"targets": [10], "extraParameters": {"k": "11"}},
        "'k' must be at most the number of input columns (10)",
    ),
    (
        "lasso-max-iter",
        "lasso",
        "diabetes",
        {"targets": [10], "extraParameters": {"alpha": "0.01", "max_iter": "1"}},
        "no exact solution in 1 sweeps",
    ),
    (
        "qda-ddof-2",
        "mqda",
        "iris",
        {"targets": [4], "extraParameters": {"ddof": "2"}},
        "'ddof' must be 0 or 1",
    ),
    ("context-not-object", "mlr", "diabetes", ["target"], "must be a JSON object"),
    (
        "context-unknown-field",
        "mlr",
        "diabetes",
        {"targets": [10], "algo": "x"},
        "unknown field(s): algo",
    ),
    (
        "extra-not-object",
        "mlr",
        "diabetes",
        {"targets": [10], "extraParameters": [1]},
        "extraParameters must be an object",
    ),
    ("targets-not-integers", "mlr", "diabetes", {"targets": ["a"]}, "targets must hold integers"),
]


@pytest.mark.parametrize(
    ("algo", "data", "context", "message"),
    [e[1:] for e in ERRORS],
    ids=[e[0] for e in ERRORS],
)
def test_bad_contexts_raise_model_error_saying_why(
    algo: str, data: str, context: Any, message: str
) -> None:
    with pytest.raises(ModelError) as e:
        build_model(algo, single_site(data), context)
    assert message in str(e.value)


def _acc(x: np.ndarray, names: list[str], binary: tuple[str, ...] = ()) -> Accumulator:
    acc = Accumulator()
    acc.learn_array(x, names, binary)
    return acc


def _data_errors() -> list[tuple[str, str, Accumulator, str]]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(float)
    collinear = np.c_[x[:, 0], 2 * x[:, 0] + 1, x[:, 1], x[:, 2]]
    constant = np.c_[x[:, :2], np.ones(40), x[:, 2]]
    few = np.c_[x[:2, :2], x[:2, 2]]
    y_few_ones = np.r_[np.ones(2), np.zeros(38)]
    return [
        ("collinear", "mlr", _acc(collinear, ["a", "b", "c", "y"]), "['a', 'b'] are collinear"),
        ("constant", "mlr", _acc(constant, ["a", "b", "k", "y"]), "column 'k' is constant"),
        (
            "too-few-rows",
            "mlr",
            _acc(few, ["a", "b", "y"]),
            "needs at least 3 rows, the project has 2",
        ),
        (
            "qda-small-class",
            "mqda",
            _acc(np.c_[x[:, :2], y_few_ones], ["a", "b", "y"], ("y",)),
            "class '1' has 2 rows: mqda needs more rows than input columns (2)",
        ),
        (
            "one-class",
            "lda",
            _acc(np.c_[x[:, :2], np.ones(40)], ["a", "b", "y"], ("y",)),
            "has 1 class(es) with rows",
        ),
        ("empty", "mlr", Accumulator(), "no rows"),
        (
            "bayes-zero-smoothing-constant-in-class",
            "bayes",
            _acc(np.c_[x[:, :1], y, y], ["a", "b", "y"], ("y",)),
            "raise var_smoothing",
        ),
        (
            "lda-collinear",
            "lda",
            _acc(np.c_[collinear[:, :3], y], ["a", "b", "c", "y"], ("y",)),
            "are collinear",
        ),
    ]


DATA_ERRORS = _data_errors()


@pytest.mark.parametrize(
    ("algo", "acc", "message"), [e[1:] for e in DATA_ERRORS], ids=[e[0] for e in DATA_ERRORS]
)
def test_data_that_cannot_give_a_model_raises_model_error(
    algo: str, acc: Accumulator, message: str
) -> None:
    target = acc.columns[-1] if acc.columns else "y"
    extra = {"var_smoothing": "0"} if algo == "bayes" else {}
    with pytest.raises(ModelError) as e:
        build_model(algo, acc, {"targetAttributeNames": [target], "extraParameters": extra})
    assert message in str(e.value)


@pytest.mark.parametrize("algo", ["mqda", "bayes"])
def test_class_conditional_models_need_conditional_statistics(algo: str) -> None:
    acc = single_site("iris", conditional=False)
    with pytest.raises(ModelError, match="class-conditional statistics of 'target'"):
        build_model(algo, acc, {"targetAttributeNames": ["target"]})


def test_predict_names_a_missing_input_attribute() -> None:
    t = table("diabetes")
    model = build_model("mlr", single_site("diabetes"), {"targetAttributeNames": ["target"]})
    names = [a for a in t.names if a != "s3"]
    with pytest.raises(ModelError, match="lack input attribute 's3'"):
        model.predict(parse_frame(t.frame(np.arange(5), order=names)))


def test_predict_refuses_a_category_sent_as_a_number() -> None:
    t = table("diabetes-sex")
    model = build_model("mlr", single_site("diabetes-sex"), {"targetAttributeNames": ["target"]})
    frame = t.frame(np.arange(3))
    frame["attributeTypes"][frame["attributeNames"].index("sex")] = "C"
    for row in frame["data"]:
        row[frame["attributeNames"].index("sex")] = "1"
    with pytest.raises(ModelError, match="'sex' has type 'C' here but 'T' in the model"):
        model.predict(parse_frame(frame))


# --------------------------------------------------------------------------- storage
ROUND_TRIP = [
    ("mlr", "diabetes-sex"),
    ("ridge", "diabetes"),
    ("lasso", "diabetes"),
    ("elasticnet", "diabetes"),
    ("pcr", "diabetes"),
    ("lda", "cancer"),
    ("mlda", "iris"),
    ("mqda", "wine"),
    ("bayes", "iris"),
]


def test_every_algorithm_has_a_round_trip_case() -> None:
    assert {a for a, _ in ROUND_TRIP} == set(ALGORITHMS)


@pytest.mark.parametrize(("algo", "data"), ROUND_TRIP, ids=[a for a, _ in ROUND_TRIP])
def test_stored_model_loads_back_exactly(algo: str, data: str) -> None:
    t = table(data)
    penalized = ("ridge", "lasso", "elasticnet")  # mlr has no alpha: it would be refused
    extra = {"k": "3"} if algo == "pcr" else {"alpha": "0.05"} if algo in penalized else {}
    model = build_model(
        algo, single_site(data), {"targetAttributeNames": ["target"], "extraParameters": extra}
    )
    stored = json.loads(json.dumps(model.to_dict()))
    loaded = load_model(stored)
    assert type(loaded) is type(model)
    assert loaded.to_dict() == model.to_dict()
    for k, v in model.arrays.items():
        assert np.array_equal(loaded.arrays[k], v), k
    batch = parse_frame(t.frame(np.arange(t.rows)))
    assert loaded.predict(batch) == model.predict(batch)
    info = json.loads(json.dumps(model.info()))
    assert info["algo"] == algo and info["targets"] == ["target"]


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"format": 99}, "format 99"),
        ({"format": 1, "algo": "zzz"}, "unknown algo 'zzz'"),
        ({"format": 1, "algo": "mlr"}, "malformed"),
        ("text", "must be a JSON object"),
    ],
    ids=["format", "algo", "malformed", "not-object"],
)
def test_load_model_rejects_what_to_dict_never_wrote(stored: Any, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(stored)


def test_mlcontext_round_trips_through_its_json_form() -> None:
    ctx = MLContext.parse(
        {"targets": [1], "inputAttributeNames": ["a"], "extraParameters": {"alpha": 2}}
    )
    assert ctx.extra == {"alpha": "2"}
    assert MLContext.parse(ctx.to_dict()) == ctx
