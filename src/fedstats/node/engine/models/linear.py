"""Linear regression (`mlr`), ridge, lasso and elastic net from the co-moment matrix.

Every one of them is a function of the centered Gram matrix G = Σ(x-x̄)(x-x̄)ᵀ and the
centered cross-moments c = Σ(x-x̄)(y-ȳ), which the accumulator holds exactly; the
intercept is ȳ - x̄ᵀb. The objectives are scikit-learn's:

    mlr         ||y - Xb||²                       b = G⁻¹c
    ridge       ||y - Xb||² + α||b||²             b = (G + αI)⁻¹c
    lasso/enet  1/(2n)||y - Xb||² + αρ||b||₁ + α(1-ρ)/2 ||b||²

For the L1 objectives, coordinate descent on G (compiled, `l1quad`) finds the active set
and the signs; then the KKT system restricted to that set, (G_AA + nα(1-ρ)I) b_A =
c_A - nαρ·sign(b_A), is solved directly and checked, so the answer is exact to rounding
instead of to a stopping tolerance. Category inputs: `mlr` and `lasso` drop each one-hot attribute's last level
(collinear with the intercept otherwise, which leaves mlr singular and the lasso optimum
not unique); ridge and elastic net keep every level, as their L2 penalty makes the
optimum unique.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

from ..accumulator import Accumulator
from ..errors import ModelError
from ..l1quad import NotSolved, solve_l1_quadratic
from ..xp import to_numpy
from .base import Columns, Floats, Model, check_rows, spd_solve, strings
from .context import MLContext, Problem

MAX_ITER = 10_000
TOL = 1e-10  # coordinate-descent progress at which the exact KKT solve is attempted


class LinearModel(Model):
    """ŷ = intercept + x·coef (also the shape of a principal components regression)."""

    algos = ("mlr", "ridge", "lasso", "elasticnet", "pcr")

    def _predict(self, x: Floats) -> Columns:
        y = x @ self.arrays["coef"] + float(self.arrays["intercept"])
        return {"res": strings(y)}

    def _info(self) -> dict[str, Any]:
        out = super()._info()
        out["coefficients"] = dict(zip(self.inputs, self.arrays["coef"].tolist(), strict=True))
        out["intercept"] = float(self.arrays["intercept"])
        return out


def regression_moments(
    acc: Accumulator, problem: Problem
) -> tuple[str, int, Floats, Floats, Floats, float]:
    """(target, n, G, c, x̄, ȳ) for a single continuous or binary target."""
    target = problem.single_target()
    typ = acc.types.get(target)
    if typ not in ("C", "B"):
        raise ModelError(
            f"target {target!r} has type {typ!r}: regression needs a continuous (C) "
            "or binary (B) target"
        )
    m = acc.moments([*problem.inputs, target])
    m2, mean = to_numpy(m.m2), to_numpy(m.mean)
    d = len(problem.inputs)
    return target, m.n, m2[:d, :d], m2[:d, d], mean[:d], float(mean[d])


# extraParameters per algorithm: the reference's names first, then scikit-learn's aliases
# (modeling-api.md, "MLContext Build Parameters"; docs/conformance.md has the mapping)
COMMON = ("sml_disable_error_logging",)
PARAMETERS = {
    "mlr": ("matrix_use_pseudoinv", *COMMON),
    "ridge": ("alpha", *COMMON),
    "lasso": ("lambda", "alpha", "eta", "maxiter", "max_iter", "tolerance", "tol",
              "standardize", "centerY", *COMMON),
    "elasticnet": ("lambda", "alpha", "eta", "l1_ratio", "maxiter", "max_iter", "tolerance",
                   "tol", "standardize", "centerY", *COMMON),
}


def build_linear(algo: str, acc: Accumulator, context: MLContext) -> LinearModel:
    context.check_parameters(algo, PARAMETERS[algo])
    context.boolean("sml_disable_error_logging", True)
    problem = Problem.of(acc, context, drop_reference=algo in ("mlr", "lasso"))
    target, n, g, c, xbar, ybar = regression_moments(acc, problem)
    d = len(problem.inputs)
    params: dict[str, Any] = {}
    fit_intercept = True
    if algo == "mlr":
        # matrix_use_pseudoinv: the minimum-norm least squares (scikit-learn's
        # LinearRegression, an lstsq); otherwise a singular G is refused, naming the columns
        pseudo = context.boolean("matrix_use_pseudoinv", False)
        params["matrix_use_pseudoinv"] = pseudo
        check_rows(n, 2 if pseudo else d + 1, f"linear regression on {d} input columns")
        if pseudo:
            coef = linalg.pinvh(g) @ c
        else:
            coef = spd_solve(g, c, problem.inputs,
                             hint=", or use ridge or matrix_use_pseudoinv=true")
    elif algo == "ridge":
        alpha = context.number("alpha", 1.0, low=0.0)  # scikit-learn's Ridge(alpha)
        params["alpha"] = alpha
        check_rows(n, 2, "ridge regression")
        if alpha == 0.0:
            coef = spd_solve(g, c, problem.inputs, hint=", or use alpha > 0")
        else:
            coef = linalg.solve(g + alpha * np.eye(d), c, assume_a="pos")
    else:
        # lambda <-> alpha, eta <-> l1_ratio, maxiter <-> max_iter, tolerance <-> tol,
        # centerY <-> fit_intercept, standardize <-> a StandardScaler before the estimator
        alpha = context.number("lambda", 1.0, low=0.0, aliases=("alpha",))
        if algo == "lasso":
            rho = context.number("eta", 1.0, low=1.0, high=1.0)
        else:
            rho = context.number("eta", 0.5, low=0.0, high=1.0, aliases=("l1_ratio",))
        max_iter = context.integer("maxiter", MAX_ITER, aliases=("max_iter",)) or MAX_ITER
        tol = context.number("tolerance", TOL, low=0.0, low_open=True, aliases=("tol",))
        standardize = context.boolean("standardize", False)
        fit_intercept = context.boolean("centerY", True)
        params.update(**{"lambda": alpha, "eta": rho, "maxiter": max_iter, "tolerance": tol,
                         "standardize": standardize, "centerY": fit_intercept})
        check_rows(n, 2, f"{algo} regression")
        gm, cm = g, c
        if not fit_intercept and not standardize:  # raw moments: no centering at all
            gm, cm = g + n * np.outer(xbar, xbar), c + n * xbar * ybar
        scale = np.ones(d)
        if standardize:  # StandardScaler: population std, 1 for a constant column
            sd = np.sqrt(np.maximum(np.diag(g), 0.0) / n)
            scale = np.where(sd > 0.0, 1.0 / np.where(sd > 0.0, sd, 1.0), 1.0)
            gm, cm = gm * scale[:, None] * scale[None, :], cm * scale
        coef, sweeps = enet_gram(gm, cm, n, alpha, rho, max_iter, tol)
        coef = coef * scale
        params["sweeps"] = sweeps
    if fit_intercept:
        intercept = ybar - float(xbar @ coef)
    else:  # the scaler still centers X; without it the model goes through the origin
        intercept = -float(xbar @ coef) if params.get("standardize") else 0.0
    return LinearModel(
        problem.inputs,
        problem.input_types,
        problem.input_parents,
        [target],
        {"coef": coef, "intercept": np.float64(intercept)},
        {"algo": algo, "n": n, "params": params},
    )


def enet_gram(
    g: Floats, c: Floats, n: int, alpha: float, rho: float, max_iter: int, tol: float
) -> tuple[Floats, int]:
    """Elastic-net coefficients from the Gram matrix: (coef, coordinate sweeps used).

    Minimizes 1/(2n)(bᵀGb - 2cᵀb) + αρ||b||₁ + α(1-ρ)/2 ||b||², the centered form of
    scikit-learn's objective, multiplied through by n here: an L1-penalized quadratic
    with Gram G + nα(1-ρ)I, solved exactly (`l1quad`).
    """
    l1, l2 = n * alpha * rho, n * alpha * (1.0 - rho)
    d = len(c)
    lam = np.full(d, l1)
    try:
        return solve_l1_quadratic(g + l2 * np.eye(d), c, lam, max_sweeps=max_iter, tol=tol)
    except NotSolved as e:
        raise ModelError(
            f"coordinate descent found no exact solution in {e.sweeps} sweeps: "
            "raise max_iter or alpha"
        ) from None
