"""The job machinery's pure parts: pooled moments at large offsets, conf resolution, the
predict DSL, and the evaluation metrics against scikit-learn's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

from fedstats.node.service.flowjobs import conf, dag, evaluation
from fedstats.node.service.flowjobs.frames import Moments

DATA = Path(__file__).parent / "data"


def test_moments_merged_from_sites_equal_the_pooled_rows_at_large_offsets() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 3)) * [1.0, 1e-3, 50.0] + [1e9, -3e8, 7.0]
    x[:, 1] += rng.exponential(size=3000)  # skewed
    parts = [x[:7], x[7:1500], x[1500:]]
    m = Moments.of(parts[0]).merge(Moments.of(parts[1])).merge(Moments.of(parts[2]))
    assert m.n == 3000
    exact = np.longdouble(x)  # the reference: two passes in extended precision
    exact_mean = exact.mean(0).astype(float)
    centered = exact - exact.mean(0)
    np.testing.assert_allclose(m.center, exact_mean, rtol=1e-16)
    np.testing.assert_allclose(m.m2 / m.n, (centered**2).mean(0).astype(float), rtol=1e-12)
    pop = m.m2 / m.n
    c2, c3, c4 = ((centered**k).mean(0) for k in (2, 3, 4))
    np.testing.assert_allclose((m.m3 / m.n) / pop**1.5, (c3 / c2**1.5).astype(float), rtol=1e-8,
                               atol=1e-8)
    np.testing.assert_allclose((m.m4 / m.n) / pop**2 - 3, (c4 / c2**2 - 3).astype(float),
                               rtol=1e-9)
    small = x - x.mean(0)  # without the offsets scipy's float64 skewness is exact enough
    np.testing.assert_allclose((m.m3 / m.n) / pop**1.5, stats.skew(small), rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(m.low, x.min(0))
    assert Moments.of(x[:0]).merge(m) is m


def test_role_parameters_override_common_ones_by_index_all_and_lists() -> None:
    c = {"component_parameters": {
        "common": {"lr": {"alpha": 1, "init_param": {"fit_intercept": True, "seed": 1}}},
        "role": {"host": {"all": {"lr": {"alpha": 2}}, "0|2": {"lr": {"init_param": {"seed": 9}}},
                          "1": {"lr": {"tol": 0.1}}}}}}
    assert conf.component_params(c, "lr", "host", 0) == {
        "alpha": 2, "init_param": {"fit_intercept": True, "seed": 9}}
    assert conf.component_params(c, "lr", "host", 1) == {
        "alpha": 2, "init_param": {"fit_intercept": True, "seed": 1}, "tol": 0.1}
    assert conf.component_params(c, "lr", "guest", 0)["alpha"] == 1
    roles = {"host": [10000, 10001], "guest": [9999], "arbiter": [10000]}
    assert conf.model_id_of(roles) == "arbiter-10000#guest-9999#host-10000_10001#model"


def test_the_predict_dsl_reads_test_data_and_the_deployed_models() -> None:
    train = json.loads((DATA / "homo_lr_train_dsl.json").read_text())
    pred = dag.predict_dsl(train)["components"]
    assert pred["homo_lr_0"]["input"] == {"data": {"test_data": ["scale_0.data"]},
                                          "model": ["pipeline.homo_lr_0.model"]}
    assert pred["scale_0"]["input"]["model"] == ["pipeline.scale_0.model"]
    assert "model" not in pred["reader_0"].get("input", {})
    only = dag.predict_dsl(train, ["reader_0", "data_transform_0"])["components"]
    assert list(only) == ["reader_0", "data_transform_0"]
    assert dag.order(train) == list(train["components"])


@pytest.mark.parametrize("ties", [False, True], ids=["distinct-scores", "tied-scores"])
def test_binary_metrics_equal_scikit_learns(ties: bool) -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(2000) < 0.4).astype(float)
    score = np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1)
    if ties:
        score = np.round(score, 1)
    summary, curves = evaluation.binary(y, score)
    assert summary["auc"] == pytest.approx(metrics.roc_auc_score(y, score), rel=1e-12)
    fpr, tpr, _ = metrics.roc_curve(y, score, drop_intermediate=False)
    assert summary["ks"] == pytest.approx(float(np.max(tpr - fpr)), rel=1e-12)
    pred = (score >= 0.5).astype(float)
    assert summary["precision"] == pytest.approx(metrics.precision_score(y, pred))
    assert summary["recall"] == pytest.approx(metrics.recall_score(y, pred))
    assert summary["f1_score"] == pytest.approx(metrics.f1_score(y, pred))
    assert len(curves["roc"]) <= evaluation.CURVE_POINTS and curves["roc"][-1] == [1.0, 1.0]


def test_regression_metrics_equal_scikit_learns() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=500) * 10 + 3
    pred = y + rng.normal(size=500)
    m = evaluation.regression(y, pred)
    assert m["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(y, pred)))
    assert m["mae"] == pytest.approx(metrics.mean_absolute_error(y, pred))
    assert m["r2_score"] == pytest.approx(metrics.r2_score(y, pred))
    assert m["explained_variance"] == pytest.approx(metrics.explained_variance_score(y, pred))
