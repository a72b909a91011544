"""The L1 quadratic solver behind lasso, elastic net and L1 GLMs: exact, and in few sweeps.

Speed is not timed here (bench/engine.py does that); what is pinned is what makes it
fast — a coefficient that belongs at 0 is found by the active-set repair after a
handful of sweeps instead of by hundreds of sweeps creeping towards 0 — and that the
compiled and the Python sweeps are the same arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import linear_model as lm

from fedstats.node.engine import l1quad
from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.models import build_model


def correlated(d: int, n: int = 20_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ (np.eye(d) + 0.1)
    y = x @ rng.normal(size=d) + rng.normal(size=n)
    return x, y


def gram(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xc, yc = x - x.mean(0), y - y.mean()
    return xc.T @ xc, xc.T @ yc


def kkt_gap(g: np.ndarray, c: np.ndarray, lam: np.ndarray, b: np.ndarray) -> float:
    """How far b is from the L1 optimality conditions, relative to the penalty."""
    grad = c - g @ b
    on = b != 0
    gap_on = np.abs(grad[on] - lam[on] * np.sign(b[on]))
    gap_off = np.maximum(np.abs(grad[~on]) - lam[~on], 0.0)
    return float(np.max(np.concatenate([gap_on, gap_off]))) / float(np.max(lam))


def test_a_coefficient_that_belongs_at_zero_is_found_in_a_few_sweeps() -> None:
    x, y = correlated(99)
    g, c = gram(x, y)
    lam = np.full(99, len(y) * 0.01)
    b, sweeps = l1quad.solve_l1_quadratic(g, c, lam)
    assert np.count_nonzero(b) < 99  # the case: one coefficient sits exactly at 0
    assert sweeps <= 20  # creeping to that 0 took over 1000 sweeps
    assert kkt_gap(g, c, lam, b) < 1e-10


@pytest.mark.parametrize("alpha", [1e-4, 0.01, 0.1, 1.0])
def test_lasso_at_d_100_equals_scikit_learn(alpha: float) -> None:
    x, y = correlated(99, n=5_000, seed=round(-np.log10(alpha)))
    inputs = [f"x{i}" for i in range(99)]
    acc = Accumulator()
    acc.learn_array(np.c_[x, y], [*inputs, "y"])
    ctx = {"inputAttributeNames": inputs, "targetAttributeNames": ["y"],
           "extraParameters": {"lambda": str(alpha)}}
    model = build_model("lasso", acc, ctx)
    ref = lm.Lasso(alpha=alpha, tol=1e-14, max_iter=10**6).fit(x, y)
    scale = float(np.max(np.abs(ref.coef_)))
    np.testing.assert_allclose(model.arrays["coef"], ref.coef_, rtol=1e-8, atol=1e-9 * scale)


def test_unpenalized_coordinates_are_free_and_the_rest_sparse() -> None:
    x, y = correlated(12, n=2_000, seed=4)
    g, c = gram(x, y)
    lam = np.full(12, 400.0)
    lam[:3] = 0.0  # like an intercept: never shrunk
    b, _ = l1quad.solve_l1_quadratic(g, c, lam)
    assert np.all(b[:3] != 0)
    assert kkt_gap(g, c, lam, b) < 1e-10


def test_compiled_and_python_sweeps_are_the_same_arithmetic() -> None:
    x, y = correlated(30, n=3_000, seed=2)
    g, c = gram(x, y)
    lam = np.full(30, 300.0)
    out = []
    for sweeps in (l1quad._kernel(), l1quad._run_sweeps):
        b, r = np.zeros(30), c.copy()
        pattern = np.zeros(30, dtype=np.int8)
        sweeps(g, lam, b, r, pattern, 7, 0.0, 10**6)
        out.append(b)
    assert np.array_equal(out[0], out[1])


def test_a_budget_too_small_is_refused() -> None:
    x, y = correlated(30, n=3_000, seed=2)
    g, c = gram(x, y)
    with pytest.raises(l1quad.NotSolved, match="in 1 sweeps"):
        l1quad.solve_l1_quadratic(g, c, np.full(30, 1.0), max_sweeps=1)
