"""GLMs (`lr`, `poisson`) fitted by Newton rounds equal scikit-learn on the pooled rows.

References: L2 and NONE against scikit-learn's `newton-cholesky` solver at tol 1e-14
(itself a Newton method, so exact to rounding); L1 against `saga` at tol 1e-12 on
standardized rows AND against the KKT conditions of the L1 objective, checked here
directly to 1e-9 (saga is a first-order method: the KKT check is the tighter reference).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import special
from sklearn import datasets
from sklearn import linear_model as lm

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import ModelError, SnapshotError
from fedstats.node.engine.frame import Batch, parse_frame
from fedstats.node.engine.glm import (
    RoundStats,
    decode_round_stats,
    encode_round_stats,
    fit_glm,
    round_stats,
)
from fedstats.node.engine.models.base import load_model
from fedstats.node.engine.models.context import MLContext
from fedstats.node.engine.models.glm import GlmError, GlmProblem, build_glm, local_round

RTOL = 1e-8


# --------------------------------------------------------------------------- data
def frame(x: np.ndarray, y: np.ndarray, ytype: str) -> dict[str, Any]:
    names = [f"x{j}" for j in range(x.shape[1])]
    ytexts = [str(v) if ytype == "T" else repr(float(v)) for v in y]
    if ytype == "B":
        ytexts = [str(int(v)) for v in y]
    data = [[*map(repr, map(float, row)), t] for row, t in zip(x, ytexts, strict=True)]
    return {"attributeNames": [*names, "y"], "attributeTypes": ["C"] * len(names) + [ytype],
            "data": data}


def cancer(standardize: bool, keep: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    x, y = datasets.load_breast_cancer(return_X_y=True)
    x = x[:, keep]
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return x, y.astype(float)


def counts() -> tuple[np.ndarray, np.ndarray]:
    """Diabetes inputs (scaled) and a seeded Poisson count drawn from a log-linear model."""
    x, _ = datasets.load_diabetes(return_X_y=True)
    x = x / x.std(0)
    rng = np.random.default_rng(7)
    eta = 0.5 + x @ rng.normal(scale=0.2, size=x.shape[1])
    return x, rng.poisson(np.exp(eta)).astype(float)


def fit(x: np.ndarray, y: np.ndarray, ytype: str, algo: str, extra: dict[str, str],
        pieces: int = 3) -> Any:
    """Learn the rows into an accumulator and fit `algo` over them, scanned in pieces."""
    batches = [parse_frame(frame(xp, yp, ytype))
               for xp, yp in zip(np.array_split(x, pieces), np.array_split(y, pieces),
                                 strict=True)]
    acc = Accumulator()
    for b in batches:
        acc.learn(b)
    ctx = MLContext.parse({"targetAttributeNames": ["y"], "extraParameters": extra})
    problem = GlmProblem.of(algo, acc, ctx)
    return build_glm(problem, local_round(problem, lambda: batches)), batches


def close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), RTOL, 0)


def proba(model: Any, batch: Batch) -> np.ndarray:
    out = model.predict_columns(batch)
    return np.array([[float(v) for v in out[f"proba_{lab}"]] for lab in model.meta["labels"]]).T


# --------------------------------------------------------------------------- lr
@pytest.mark.parametrize("standardize", [True, False], ids=["standardized", "raw-units"])
def test_binary_lr_l2_equals_scikit_learn_on_breast_cancer(standardize: bool) -> None:
    x, y = cancer(standardize)
    alpha = 0.01
    model, batches = fit(x, y, "B", "lr", {"alpha": str(alpha)})
    ref = lm.LogisticRegression(C=1 / (alpha * len(y)), solver="newton-cholesky", tol=1e-14,
                                max_iter=1000).fit(x, y)
    close(model.arrays["coef"][0], ref.coef_[0])
    close(model.arrays["intercept"], ref.intercept_)
    close(np.vstack([proba(model, b) for b in batches]), ref.predict_proba(x))
    assert model.predict_columns(batches[0])["res"] == [
        str(int(v)) for v in ref.predict(x[: batches[0].rows])]
    assert model.meta["converged"] and model.meta["iterations"] <= 15
    losses = model.meta["losses"]
    # every accepted step descends (to the rounding of the objective itself)
    assert all(b <= a + 1e-13 * abs(a) for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0]


def test_lr_default_alpha_is_scikit_learns_default_c() -> None:
    x, y = cancer(True)
    model, _ = fit(x, y, "B", "lr", {})
    ref = lm.LogisticRegression(solver="newton-cholesky", tol=1e-14).fit(x, y)
    close(model.arrays["coef"][0], ref.coef_[0])
    assert model.meta["params"]["alpha"] == pytest.approx(1 / len(y), rel=1e-15)


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_multinomial_lr_l2_equals_scikit_learn(name: str) -> None:
    d = datasets.load_iris() if name == "iris" else datasets.load_wine()
    x, labels = d.data, d.target_names[d.target]
    alpha = 0.01
    model, batches = fit(x, labels, "T", "lr", {"alpha": str(alpha)})
    ref = lm.LogisticRegression(C=1 / (alpha * len(labels)), solver="newton-cholesky",
                                tol=1e-14, max_iter=1000).fit(x, labels)
    assert model.meta["labels"] == list(ref.classes_)
    close(model.arrays["coef"], ref.coef_)
    close(model.arrays["intercept"], ref.intercept_)
    close(np.vstack([proba(model, b) for b in batches]), ref.predict_proba(x))


def test_binary_lr_without_penalty_equals_scikit_learn() -> None:
    x, y = cancer(False, keep=slice(0, 4))  # four features: not separable, the MLE exists
    model, _ = fit(x, y, "B", "lr", {"penalty": "NONE"})
    ref = lm.LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14,
                                max_iter=1000).fit(x, y)
    close(model.arrays["coef"][0], ref.coef_[0])
    close(model.arrays["intercept"], ref.intercept_)


def test_binary_lr_without_intercept_equals_scikit_learn() -> None:
    x, y = cancer(True)
    model, _ = fit(x, y, "B", "lr", {"alpha": "0.05", "fitIntercept": "false"})
    ref = lm.LogisticRegression(C=1 / (0.05 * len(y)), fit_intercept=False,
                                solver="newton-cholesky", tol=1e-14).fit(x, y)
    close(model.arrays["coef"][0], ref.coef_[0])
    assert model.arrays["intercept"][0] == 0.0


def test_binary_lr_l1_equals_saga_and_satisfies_the_kkt_conditions() -> None:
    x, y = cancer(True)
    alpha = 0.01
    model, _ = fit(x, y, "B", "lr", {"penalty": "L1", "alpha": str(alpha)})
    w, b = model.arrays["coef"][0], float(model.arrays["intercept"][0])
    mu = special.expit(x @ w + b)
    grad = x.T @ (mu - y) / len(y)
    on = w != 0
    assert 0 < on.sum() < len(w)  # a real sparse solution
    np.testing.assert_allclose(grad[on], -alpha * np.sign(w[on]), rtol=0, atol=1e-12)
    assert np.all(np.abs(grad[~on]) <= alpha * (1 + 1e-9))
    assert abs(float(np.mean(mu - y))) < 1e-13  # the unpenalized intercept's condition
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lm.LogisticRegression(C=1 / (alpha * len(y)), l1_ratio=1.0, solver="saga",
                                    tol=1e-12, max_iter=100_000).fit(x, y)
    np.testing.assert_allclose(w, ref.coef_[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b, ref.intercept_[0], rtol=1e-6)


# --------------------------------------------------------------------------- poisson
@pytest.mark.parametrize("penalty", ["L2", "NONE"])
def test_poisson_equals_scikit_learn_on_a_count_target(penalty: str) -> None:
    x, y = counts()
    alpha = 0.1 if penalty == "L2" else 0.0
    model, batches = fit(x, y, "C", "poisson", {"penalty": penalty, "alpha": str(alpha)})
    ref = lm.PoissonRegressor(alpha=alpha, solver="newton-cholesky", tol=1e-14,
                              max_iter=1000).fit(x, y)
    close(model.arrays["coef"][0], ref.coef_)
    close(model.arrays["intercept"], [ref.intercept_])
    pred = np.concatenate([[float(v) for v in model.predict_columns(b)["res"]] for b in batches])
    close(pred, ref.predict(x))


def test_poisson_refuses_a_negative_count() -> None:
    x, y = counts()
    y[3] = -1.0
    with pytest.raises(GlmError, match="non-negative target"):
        fit(x, y, "C", "poisson", {})


# --------------------------------------------------------------------------- rounds
FAMILY_DATA: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, int]]] = {
    "binomial": lambda: (*cancer(True), 1),
    "poisson": lambda: (*counts(), 1),
    "multinomial": lambda: (datasets.load_iris().data, datasets.load_iris().target * 1.0, 3),
}


@pytest.mark.parametrize("family", list(FAMILY_DATA))
def test_round_statistics_of_split_batches_add_up_to_one_batch(family: str) -> None:
    x, y, k = FAMILY_DATA[family]()
    rng = np.random.default_rng(3)
    coef = rng.normal(scale=0.1, size=(k, x.shape[1] + 1))
    whole = round_stats(x, y, coef, family)
    cuts = np.sort(rng.choice(np.arange(1, len(y)), size=4, replace=False))
    parts = [round_stats(xp, yp, coef, family, chunk=37)
             for xp, yp in zip(np.split(x, cuts), np.split(y, cuts), strict=True)]
    summed = RoundStats.merge(*reversed(parts))
    assert summed.n == whole.n == len(y)
    np.testing.assert_allclose(summed.loss, whole.loss, rtol=1e-13)
    np.testing.assert_allclose(summed.grad, whole.grad, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(summed.hess, whole.hess, rtol=1e-12, atol=1e-9)
    # and the gradient is the derivative of the loss
    eps = 1e-6
    bumped = coef.copy()
    bumped.flat[1] += eps
    numeric = (round_stats(x, y, bumped, family).loss - whole.loss) / eps
    assert numeric == pytest.approx(whole.grad[1], rel=1e-4, abs=1e-4)


def test_fit_glm_over_two_sites_equals_the_fit_over_their_pooled_rows() -> None:
    x, y = cancer(True)
    sites = [(x[::2], y[::2]), (x[1::2], y[1::2])]

    def federated(theta: np.ndarray) -> RoundStats:
        # each site's contribution crosses the wire as bytes
        return RoundStats.merge(*(decode_round_stats(encode_round_stats(
            round_stats(xs, ys, theta, "binomial"))) for xs, ys in sites))

    split = fit_glm(federated, x.shape[1], "binomial", "L2", 0.01)
    pooled = fit_glm(lambda t: round_stats(x, y, t, "binomial"), x.shape[1], "binomial",
                     "L2", 0.01)
    close(split.coef, pooled.coef)
    assert split.converged and split.rounds == pooled.rounds


def test_round_statistics_round_trip_through_bytes_exactly() -> None:
    x, y, k = FAMILY_DATA["multinomial"]()
    stats = round_stats(x, y, np.full((k, x.shape[1] + 1), 0.1), "multinomial")
    stats.round = 42
    back = decode_round_stats(encode_round_stats(stats))
    assert back.n == stats.n and back.loss == stats.loss and back.round == 42
    assert np.array_equal(back.grad, stats.grad) and np.array_equal(back.hess, stats.hess)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-1], "wrong length"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "checksum"),
        (lambda b: b"X" + b[1:], "bad magic"),
        (lambda b: b[:8] + b"\x09\x00" + b[10:], "format 9"),
    ],
    ids=["one-byte-short", "truncated-header", "bit-flip", "foreign-magic", "future-format"],
)
def test_damaged_round_statistics_are_refused(damage: Any, message: str) -> None:
    data = encode_round_stats(round_stats(*cancer(True), np.zeros(31), "binomial"))
    with pytest.raises(SnapshotError, match=message):
        decode_round_stats(damage(data))


# --------------------------------------------------------------------------- the model
def test_a_fitted_glm_survives_its_stored_form_exactly() -> None:
    d = datasets.load_iris()
    model, batches = fit(d.data, d.target_names[d.target], "T", "lr", {"alpha": "0.1"})
    back = load_model(model.to_dict())
    assert back.predict(batches[0]) == model.predict(batches[0])
    assert back.info()["iterations"] == model.meta["iterations"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"penalty": "L3"}, "'penalty' must be L2, L1 or NONE"),
        ({"alpha": "-1"}, "'alpha' must be a finite number >= 0"),
        ({"fitIntercept": "maybe"}, "'fitIntercept' must be 'true' or 'false'"),
        ({"lambda": "1"}, "'lambda' is not a parameter of lr"),
        ({"tol": "0"}, "'tol' must be a finite number > 0"),
        ({"maxIter": "0"}, "'maxIter' must be >= 1"),
        ({"maxIter": "ten"}, "'maxIter' must be an integer"),
    ],
    ids=["penalty", "alpha", "fitIntercept", "unknown", "tol", "maxIter-zero", "maxIter-text"],
)
def test_bad_parameters_are_refused_by_name(extra: dict[str, str], message: str) -> None:
    x, y = cancer(True)
    with pytest.raises(ModelError, match=message):
        fit(x[:50], y[:50], "B", "lr", extra)


def test_lr_on_a_continuous_target_is_refused() -> None:
    x, y = counts()
    with pytest.raises(ModelError, match="needs a binary"):
        fit(x, y, "C", "lr", {})


def test_multinomial_lr_l1_satisfies_the_kkt_conditions_on_wine() -> None:
    d = datasets.load_wine()
    x = (d.data - d.data.mean(0)) / d.data.std(0)
    alpha = 0.02
    model, _ = fit(x, d.target_names[d.target], "T", "lr", {"penalty": "L1", "alpha": "0.02"})
    w, b = model.arrays["coef"], model.arrays["intercept"]
    prob = special.softmax(x @ w.T + b, axis=1)
    resid = prob - np.eye(3)[d.target]
    grad = resid.T @ x / len(x)
    on = w != 0
    assert 0 < on.sum() < w.size
    np.testing.assert_allclose(grad[on], -alpha * np.sign(w[on]), rtol=0, atol=1e-12)
    assert np.all(np.abs(grad[~on]) <= alpha * (1 + 1e-9))
    assert np.max(np.abs(resid.mean(0))) < 1e-13 and abs(b.sum()) < 1e-12  # symmetric


def test_poisson_l1_satisfies_the_kkt_conditions() -> None:
    x, y = counts()
    alpha = 0.05
    model, _ = fit(x, y, "C", "poisson", {"penalty": "L1", "alpha": str(alpha)})
    w, b = model.arrays["coef"][0], float(model.arrays["intercept"][0])
    mu = np.exp(x @ w + b)
    grad = x.T @ (mu - y) / len(y)
    on = w != 0
    assert 0 < on.sum() < len(w)
    np.testing.assert_allclose(grad[on], -alpha * np.sign(w[on]), rtol=0, atol=1e-12)
    assert np.all(np.abs(grad[~on]) <= alpha * (1 + 1e-9))
    assert abs(float(np.mean(mu - y))) < 1e-12


def test_a_fit_stopped_by_max_iter_says_it_did_not_converge() -> None:
    x, y = cancer(True)
    model, _ = fit(x, y, "B", "lr", {"maxIter": "2"})
    assert model.meta["iterations"] == 2 and model.meta["converged"] is False
    assert len(model.meta["losses"]) == 3  # the start and two accepted steps
