"""The coordinator's side of a GLM fit: Newton (or proximal Newton) on summed statistics.

    objective  F(θ) = (Σ loss) / (Σ weight) + α/2‖w‖²  (L2)  or  + α‖w‖₁  (L1)  or  nothing

with the intercepts never penalized — so `binomial`/`multinomial` with L2 is
scikit-learn's `LogisticRegression(C=1/(α·N))` on the pooled N rows and `poisson` is
`PoissonRegressor(alpha=α)` (whose half mean deviance is the mean of e^η − yη up to a
constant). Each iteration asks `round_fn(θ)` for one `RoundStats` — the only thing the
rows ever give up — and steps:

- L2 / NONE: the Newton step, H⁻¹g.
- L1: the minimizer of the quadratic model plus the L1 term (`l1quad`, exact to rounding).

A backtracking (Armijo) line search keeps every step a descent on F; a trial costs one
round, and an accepted trial's statistics are the next iteration's, so no round is
wasted. The fit stops when a step moves no coefficient by more than tol·max(1, ‖θ‖∞),
applying that last step: Newton converges quadratically, so the answer is then exact
to rounding, far below tol.

The multinomial model is invariant to adding one vector to every class's parameters;
the intercepts (and, unpenalized, the weights) are kept in scikit-learn's symmetric
parametrization (summing to zero over classes) by adding the projector onto that
direction to the Hessian: the gradient never has a component along it, so the step is
the minimum-norm Newton step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from ..l1quad import NotSolved, solve_l1_quadratic
from .local import FAMILIES
from .stats import Floats, RoundStats

PENALTIES = ("L2", "L1", "NONE")
ARMIJO = 1e-4
MAX_HALVINGS = 40
RoundFn = Callable[[Floats], RoundStats]


class GlmNotConverged(ArithmeticError):
    """The fit could not make progress (a loss that is not finite anywhere on the path)."""


@dataclass(frozen=True)
class GlmSpec:
    """What is fitted: family, shape and penalty."""

    family: str
    d: int
    classes: int = 2
    penalty: str = "L2"
    alpha: float | None = None  # None: 1/N, scikit-learn's default C = 1
    fit_intercept: bool = True
    tol: float = 1e-10
    max_iter: int = 100

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown GLM family {self.family!r}: expected one of {FAMILIES}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"unknown penalty {self.penalty!r}: expected one of {PENALTIES}")
        if self.family == "multinomial" and self.classes < 2:
            raise ValueError("a multinomial fit needs at least 2 classes")

    @property
    def k(self) -> int:
        return self.classes if self.family == "multinomial" else 1


@dataclass
class GlmFit:
    """The fitted parameters and how the fit went."""

    coef: Floats  # (K, d): one row per class (one row for binomial and poisson)
    intercept: Floats  # (K,)
    alpha: float
    n: float
    iterations: int
    rounds: int
    converged: bool
    losses: list[float] = field(default_factory=list)  # F at each accepted iterate


def fit_glm(
    round_fn: RoundFn,
    d: int,
    family: str,
    penalty: str = "L2",
    alpha: float | None = None,
    fit_intercept: bool = True,
    tol: float = 1e-10,
    max_iter: int = 100,
    classes: int = 2,
) -> GlmFit:
    """Fit by Newton rounds; `round_fn(θ)` answers the summed statistics at θ (K × (d+1))."""
    spec = GlmSpec(family, d, classes, penalty, alpha, fit_intercept, tol, max_iter)
    return Solver(spec, round_fn).run()


class Solver:
    """One fit's state: θ, the latest statistics, the history."""

    def __init__(self, spec: GlmSpec, round_fn: RoundFn) -> None:
        self.spec = spec
        self.round_fn = round_fn
        k, q = spec.k, spec.d + 1
        self.shape = (k, q)
        free = np.ones(self.shape, dtype=bool)
        free[:, spec.d] = spec.fit_intercept
        self.free = free.ravel()
        pen = np.zeros(self.shape, dtype=bool)
        pen[:, : spec.d] = spec.penalty != "NONE"
        self.penalized = pen.ravel()[self.free]
        self.null = self._null_space()
        self.rounds = 0
        self.alpha = 0.0

    def run(self) -> GlmFit:
        theta = np.zeros(int(self.free.sum()))
        stats = self._round(theta)
        if not stats.n > 0:
            raise GlmNotConverged("the rows have no weight: nothing to fit")
        spec = self.spec
        if spec.penalty != "NONE":
            self.alpha = 1.0 / stats.n if spec.alpha is None else spec.alpha
        value = self._objective(stats, theta)
        if not math.isfinite(value):
            raise GlmNotConverged("the loss is not finite at the starting point")
        losses = [value]
        converged = False
        iterations = 0
        previous = math.inf
        while iterations < spec.max_iter:
            iterations += 1
            step, decrease = self._direction(stats, theta)
            size = float(np.max(np.abs(step), initial=0.0))
            scale = max(1.0, float(np.max(np.abs(theta), initial=0.0)))
            floor = size <= math.sqrt(spec.tol) * scale and size >= 0.5 * previous
            if size <= spec.tol * scale or floor:
                theta = theta + step  # quadratic convergence: the error is now ~size²
                converged = True
                break
            previous = size
            theta, stats, value = self._line_search(theta, step, stats, value, decrease)
            losses.append(value)
        return self._result(theta, stats.n, iterations, converged, losses)

    # ------------------------------------------------------------------ pieces
    def _round(self, theta: Floats) -> RoundStats:
        self.rounds += 1
        stats = self.round_fn(self._full(theta))
        p = self.shape[0] * self.shape[1]
        if stats.p != p:
            raise ValueError(f"a round answered {stats.p} parameters, the fit has {p}")
        return stats

    def _full(self, theta: Floats) -> Floats:
        out = np.zeros(self.shape[0] * self.shape[1])
        out[self.free] = theta
        return out.reshape(self.shape)

    def _l1(self, theta: Floats) -> float:
        if self.spec.penalty != "L1":
            return 0.0
        return self.alpha * float(np.abs(theta[self.penalized]).sum())

    def _objective(self, stats: RoundStats, theta: Floats) -> float:
        value = stats.loss / stats.n + self._l1(theta)
        if self.spec.penalty == "L2":
            w = theta[self.penalized]
            value += 0.5 * self.alpha * float(w @ w)
        return value

    def _smooth(self, stats: RoundStats, theta: Floats) -> tuple[Floats, Floats]:
        g = stats.grad[self.free] / stats.n
        h = stats.hess[np.ix_(self.free, self.free)] / stats.n
        if self.spec.penalty == "L2":
            g = g + self.alpha * np.where(self.penalized, theta, 0.0)
            h = h + np.diag(np.where(self.penalized, self.alpha, 0.0))
        if self.null is not None:
            h = h + float(np.mean(np.diag(h)) or 1.0) * self.null
        return g, h

    def _direction(self, stats: RoundStats, theta: Floats) -> tuple[Floats, float]:
        """(step, predicted decrease Δ < 0 used by the Armijo test)."""
        g, h = self._smooth(stats, theta)
        if self.spec.penalty == "L1":
            lam = np.where(self.penalized, self.alpha, 0.0)
            try:
                target, _ = solve_l1_quadratic(
                    h, h @ theta - g, lam, start=theta, tol=1e-13, inexact_ok=True
                )
            except NotSolved as e:
                raise GlmNotConverged(f"the L1 step did not converge: {e}") from e
            step = target - theta
            return step, float(g @ step) + self._l1(target) - self._l1(theta)
        try:
            step = -linalg.solve(h, g, assume_a="pos", check_finite=False)
        except (linalg.LinAlgError, ValueError):
            step = -linalg.lstsq(h, g, check_finite=False)[0]
        return step, float(g @ step)

    def _line_search(
        self, theta: Floats, step: Floats, stats: RoundStats, value: float, decrease: float
    ) -> tuple[Floats, RoundStats, float]:
        # below ~1e-13 of F a decrease is lost in the rounding of F itself
        noise = 1e-13 * (1.0 + abs(value))
        t = 1.0
        for _ in range(MAX_HALVINGS):
            candidate = theta + t * step
            trial = self._round(candidate)
            new = self._objective(trial, candidate)
            if math.isfinite(new) and new <= value + ARMIJO * t * min(decrease, 0.0) + noise:
                return candidate, trial, new
            t *= 0.5
        raise GlmNotConverged("the line search found no decrease of the objective")

    def _null_space(self) -> Floats | None:
        """Projector onto the multinomial's shift directions among the free parameters."""
        spec = self.spec
        if spec.family != "multinomial":
            return None
        k, q = self.shape
        columns = [spec.d] if spec.fit_intercept else []
        if spec.penalty == "NONE":
            columns = [*range(spec.d), *columns]
        if not columns:
            return None
        u = np.zeros((k * q, len(columns)))
        for i, j in enumerate(columns):
            u[np.arange(k) * q + j, i] = 1.0 / math.sqrt(k)
        u = u[self.free]
        return u @ u.T

    def _result(
        self, theta: Floats, n: float, iterations: int, converged: bool, losses: list[float]
    ) -> GlmFit:
        full = self._full(theta)
        if self.spec.family == "multinomial":
            full[:, self.spec.d] -= full[:, self.spec.d].mean()
            if self.spec.penalty == "NONE":
                full[:, : self.spec.d] -= full[:, : self.spec.d].mean(axis=0)
        return GlmFit(
            coef=full[:, : self.spec.d].copy(),
            intercept=full[:, self.spec.d].copy(),
            alpha=self.alpha,
            n=n,
            iterations=iterations,
            rounds=self.rounds,
            converged=converged,
            losses=losses,
        )
