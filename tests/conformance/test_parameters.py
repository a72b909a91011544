"""MLContext parameters by the reference's names equal the scikit-learn settings
docs/conformance.md maps them to (modeling-api.md, "MLContext Build Parameters").

    lambda <-> alpha, eta <-> l1_ratio (lasso: 1), maxiter <-> max_iter,
    tolerance <-> tol, centerY <-> fit_intercept, standardize <-> StandardScaler first,
    alpha (ridge) <-> Ridge(alpha), q (pcr) <-> PCA(q), matrix_use_pseudoinv (mlr) <->
    LinearRegression's minimum-norm least squares.

Built from an accumulator (the statistics alone), predicted through the KSVSMap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as lm
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import ModelError
from fedstats.node.engine.frame import Batch
from fedstats.node.engine.models import build_model

RTOL = 1e-9


def _data() -> tuple[np.ndarray, np.ndarray, Accumulator, Batch]:
    d = datasets.load_diabetes()
    x = d.data * np.array([1, 10, 100, 1, 1, 1000, 1, 1, 1, 0.01])  # unequal scales
    y = d.target
    names = [f"x{j}" for j in range(x.shape[1])]
    acc = Accumulator()
    acc.learn(Batch.from_array(np.column_stack([x, y]), [*names, "y"]))
    return x, y, acc, Batch.from_array(x, names)


def _res(model: Any, batch: Batch) -> np.ndarray:
    return np.asarray([float(r["res"]) for r in model.predict(batch)["values"]])


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
@pytest.mark.parametrize("center_y", [True, False], ids=["centerY", "no-centerY"])
@pytest.mark.parametrize(("algo", "eta"), [("lasso", None), ("elasticnet", "0.3")])
def test_lambda_eta_standardize_center_y_equal_scikit_learn(
        algo: str, eta: str | None, center_y: bool, standardize: bool) -> None:
    x, y, acc, batch = _data()
    extra = {"lambda": "0.2", "standardize": str(standardize).lower(),
             "centerY": str(center_y).lower(), "maxiter": "100000", "tolerance": "1e-12"}
    if eta is not None:
        extra["eta"] = eta
    model = build_model(algo, acc, {"targetAttributeNames": ["y"], "extraParameters": extra})
    kwargs = {"alpha": 0.2, "fit_intercept": center_y, "tol": 1e-14, "max_iter": 10**6}
    estimator = lm.Lasso(**kwargs) if algo == "lasso" else \
        lm.ElasticNet(l1_ratio=float(eta or 1), **kwargs)
    sk = make_pipeline(StandardScaler(), estimator) if standardize else estimator
    want = sk.fit(x, y).predict(x)
    np.testing.assert_allclose(_res(model, batch), want, rtol=RTOL, atol=RTOL * np.abs(want).max())


def test_scikit_learn_names_are_aliases_and_both_at_once_is_refused() -> None:
    _, _, acc, batch = _data()
    ctx = {"targetAttributeNames": ["y"]}
    by_ref = build_model("elasticnet", acc, {**ctx, "extraParameters": {"lambda": "0.1",
                                                                       "eta": "0.4"}})
    by_sk = build_model("elasticnet", acc, {**ctx, "extraParameters": {"alpha": "0.1",
                                                                      "l1_ratio": "0.4"}})
    np.testing.assert_array_equal(_res(by_ref, batch), _res(by_sk, batch))
    with pytest.raises(ModelError, match="'lambda' and 'alpha' are the same setting"):
        build_model("lasso", acc, {**ctx, "extraParameters": {"lambda": "1", "alpha": "1"}})
    with pytest.raises(ModelError, match="'eta'"):
        build_model("lasso", acc, {**ctx, "extraParameters": {"eta": "0.5"}})


def test_ridge_alpha_and_pcr_q() -> None:
    x, y, acc, batch = _data()
    ridge = build_model("ridge", acc, {"targetAttributeNames": ["y"],
                                       "extraParameters": {"alpha": "3"}})
    np.testing.assert_allclose(_res(ridge, batch), lm.Ridge(alpha=3).fit(x, y).predict(x),
                               rtol=RTOL)
    with pytest.raises(ModelError, match="'pcr_type' must be one of qfirst"):
        build_model("pcr", acc, {"targetAttributeNames": ["y"],
                                 "extraParameters": {"pcr_type": "full"}})


def test_mlr_matrix_use_pseudoinv_is_the_minimum_norm_least_squares() -> None:
    x, y, _, _ = _data()
    xx = np.column_stack([x[:, :3], x[:, 0] + x[:, 1]])  # exactly collinear
    names = ["a", "b", "c", "d"]
    acc = Accumulator()
    acc.learn(Batch.from_array(np.column_stack([xx, y]), [*names, "y"]))
    ctx: dict[str, Any] = {"targetAttributeNames": ["y"]}
    with pytest.raises(ModelError, match="collinear"):
        build_model("mlr", acc, ctx)
    model = build_model("mlr", acc, {**ctx, "extraParameters": {"matrix_use_pseudoinv": "true"}})
    want = lm.LinearRegression().fit(xx, y).predict(xx)
    np.testing.assert_allclose(_res(model, Batch.from_array(xx, names)), want, rtol=1e-7)
