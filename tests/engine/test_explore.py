"""Exploration from merged accumulators equals numpy / scipy.stats on the pooled rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn import datasets
from sklearn.decomposition import PCA

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import ModelError
from fedstats.node.engine.explore import explore_bi, explore_pca, explore_uni
from fedstats.node.engine.frame import parse_frame

RTOL = 1e-9


def wine_frame(rows: np.ndarray) -> dict:
    d = datasets.load_wine()
    names = [f.replace("/", "_") for f in d.feature_names]
    labels = d.target_names[d.target]
    data = [[repr(float(v)) for v in d.data[i]] + [str(labels[i])] for i in rows]
    return {
        "attributeNames": [*names, "cultivar"],
        "attributeTypes": ["C"] * 13 + ["T"],
        "data": data,
    }


def pooled(rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The rows as the accumulator's expanded columns (cultivar as three indicators)."""
    d = datasets.load_wine()
    names = [f.replace("/", "_") for f in d.feature_names]
    labels = d.target_names[d.target][rows]
    levels = sorted(set(d.target_names))
    ind = np.column_stack([(labels == lv).astype(float) for lv in levels])
    return np.c_[d.data[rows], ind], names + [f"cultivar${lv}" for lv in levels]


def federated(sites: int, seed: int, forget: bool = True) -> tuple[Accumulator, np.ndarray]:
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, sites, 178)
    parts, kept = [], []
    for s in range(sites):
        rows = np.flatnonzero(owner == s)
        acc = Accumulator()
        acc.learn(parse_frame(wine_frame(rows)))
        if forget and s == 0:
            gone = rows[::5]
            acc.forget(parse_frame(wine_frame(gone)))
            rows = np.setdiff1d(rows, gone)
        parts.append(acc)
        kept.append(rows)
    return Accumulator.merged(parts), np.sort(np.concatenate(kept))


def aligned(acc: Accumulator, rows: np.ndarray) -> np.ndarray:
    x, names = pooled(rows)
    return x[:, [names.index(c) for c in acc.columns]]


@pytest.mark.parametrize("sites", [2, 4], ids=lambda s: f"{s}sites")
def test_univariate_statistics_equal_scipy_on_the_pooled_rows(sites: int) -> None:
    acc, rows = federated(sites, seed=sites)
    x = aligned(acc, rows)
    uni = explore_uni(acc)
    assert list(uni) == acc.columns
    for j, col in enumerate(acc.columns):
        got, v = uni[col], x[:, j]
        assert got["count"] == len(rows)
        expected = {
            "mean": v.mean(),
            "variance": v.var(ddof=1),
            "variance_biased": v.var(),
            "stddev": v.std(ddof=1),
            "stddev_biased": v.std(),
            "stderr": stats.sem(v),
            "skewness": stats.skew(v, bias=False),
            "skewness_biased": stats.skew(v),
            "kurtosis": stats.kurtosis(v, bias=False),
            "kurtosis_biased": stats.kurtosis(v),
        }
        for key, want in expected.items():
            np.testing.assert_allclose(got[key], want, rtol=RTOL, err_msg=f"{col} {key}")


def test_min_and_max_are_the_bounds_of_the_rows_learned() -> None:
    acc, rows = federated(3, seed=5, forget=False)
    x = aligned(acc, rows)
    uni = explore_uni(acc, ["alcohol", "cultivar"])
    assert list(uni) == ["alcohol", *acc.attribute_columns("cultivar")]
    assert uni["alcohol"]["min"] == x[:, acc.index["alcohol"]].min()
    assert uni["alcohol"]["max"] == x[:, acc.index["alcohol"]].max()


def test_statistics_undefined_for_so_few_rows_are_none() -> None:
    acc = Accumulator()
    acc.learn_array(np.array([[1.0, 5.0], [3.0, 5.0]]), ["a", "k"])
    uni = json.loads(json.dumps(explore_uni(acc)))
    assert uni["a"]["variance"] == 2.0 and uni["a"]["skewness"] is None  # needs 3 rows
    assert uni["a"]["kurtosis"] is None and uni["a"]["kurtosis_biased"] == -2.0
    assert uni["k"]["skewness_biased"] is None  # a constant column has no shape
    assert explore_bi(acc)["linCorr"][0][1] is None


@pytest.mark.parametrize("sites", [2, 5], ids=lambda s: f"{s}sites")
def test_bivariate_statistics_equal_numpy_on_the_pooled_rows(sites: int) -> None:
    acc, rows = federated(sites, seed=10 + sites)
    x = aligned(acc, rows)
    bi = explore_bi(acc)
    assert bi["columns"] == acc.columns
    np.testing.assert_allclose(bi["covar"], np.cov(x, rowvar=False), rtol=RTOL)
    np.testing.assert_allclose(bi["covar_biased"], np.cov(x, rowvar=False, ddof=0), rtol=RTOL)
    # correlations near zero carry absolute, not relative, rounding
    np.testing.assert_allclose(bi["linCorr"], np.corrcoef(x, rowvar=False), rtol=RTOL, atol=1e-14)
    assert sorted(bi["condCount"]) == sorted(acc.binary)
    for b in acc.binary:
        mask = x[:, acc.index[b]] == 1.0
        assert bi["condCount"][b] == mask.sum()
        for j, col in enumerate(acc.columns):
            np.testing.assert_allclose(
                bi["condMean"][b][col], x[mask, j].mean(), rtol=RTOL, atol=1e-15
            )
            np.testing.assert_allclose(
                bi["condVariance"][b][col], x[mask, j].var(ddof=1), rtol=RTOL, atol=1e-15
            )


@pytest.mark.parametrize("k", [None, 3], ids=["all-components", "k3"])
def test_pca_equals_sklearn_on_the_pooled_rows(k: int | None) -> None:
    acc, rows = federated(3, seed=21)
    attrs = [c for c in acc.columns if "$" not in c]
    x = aligned(acc, rows)[:, : len(attrs)]
    got = explore_pca(acc, attrs, k=k)
    sk = PCA(k).fit(x)
    np.testing.assert_allclose(got["explained_variance"], sk.explained_variance_, rtol=RTOL)
    np.testing.assert_allclose(
        got["explained_variance_ratio"], sk.explained_variance_ratio_, rtol=RTOL
    )
    np.testing.assert_allclose(
        got["cumulative"], np.cumsum(sk.explained_variance_ratio_), rtol=RTOL
    )
    vec, comp = np.asarray(got["eigenvectors"]), sk.components_
    signs = np.sign(np.sum(vec * comp, axis=1))
    assert (signs == 1).all()  # both sign each vector's largest entry positive
    # An eigenvector is only determined to about eps·λ_max/gap (Davis-Kahan); wine's
    # unscaled proline has ~1e4 times the variance of the rest, so that bound, not 0,
    # is the honest absolute tolerance for the vectors' small entries.
    w = sk.explained_variance_ if k is None else PCA().fit(x).explained_variance_
    bound = np.finfo(float).eps * w[0] / np.min(-np.diff(w))
    np.testing.assert_allclose(vec * signs[:, None], comp, rtol=RTOL, atol=bound)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda acc: explore_uni(acc, ["nope"]), "unknown attribute 'nope'"),
        (lambda acc: explore_pca(acc, ["alcohol"], k=2), "between 1 and the number of columns"),
    ],
    ids=["unknown-attribute", "k-too-large"],
)
def test_bad_exploration_requests_raise_model_error(call, message: str) -> None:
    acc, _ = federated(2, seed=1, forget=False)
    with pytest.raises(ModelError, match=message):
        call(acc)


def test_a_negative_variance_has_no_derived_statistics_instead_of_an_error() -> None:
    # forgetting rows that were never learned (the engine cannot tell) spoils m2
    acc = Accumulator()
    acc.learn_array(np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 1.0], [4.0, 0.0]]), ["a", "b"],
                    binary=["b"])
    acc.forget_array(np.array([[100.0, 1.0], [-100.0, 0.0]]), ["a", "b"], binary=["b"])
    assert np.diag(acc.total.m2)[0] < 0
    uni = json.loads(json.dumps(explore_uni(acc)))
    assert uni["a"]["variance"] is None and uni["a"]["stddev"] is None
    assert uni["a"]["stderr"] is None and uni["a"]["skewness"] is None
    bi = explore_bi(acc)
    assert bi["linCorr"][0][1] is None
    assert bi["condVariance"]["b"]["a"] is None
    json.dumps(bi)
