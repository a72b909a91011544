"""Logistic (`lr`) and Poisson (`poisson`) regression, fitted exactly from rows by Newton rounds.

Unlike every other model here, a GLM is not a function of the co-moments: it needs the
rows, one pass per Newton round. The accumulator still decides what is fitted (the
columns, the classes, the parameters: `GlmProblem.of`); the rows arrive as batches
through a round function — locally a scan of the node's kept rows (`local_round`),
federated one exchange with every member — and `build_glm` runs the same driver on
either. Objective (see `glm.solve`): mean loss + α/2‖w‖² (L2, default), α‖w‖₁ (L1)
or nothing (NONE), intercept unpenalized; α defaults to 1/N for `lr` (scikit-learn's
C = 1) and to 1 for `poisson` (PoissonRegressor's default).

`lr` answers the class as `res` and `proba_<label>` per class (binary on a `B` target,
multinomial on a `T` target); `poisson` answers the mean e^η as `res`.

Federated, the coordinator resolves the problem once and sends it to every member as a
`plan` (plain JSON: the columns, the classes, and every column the model's attributes had
at the coordinator); a member reads its rows through `GlmProblem.from_plan`, and a row with
a category level the plan does not know is refused (`check_columns`), never silently read
as the reference level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from ..accumulator import Accumulator
from ..errors import ModelError
from ..frame import Batch
from ..glm import GlmFit, RoundStats, fit_glm, round_stats
from ..glm.solve import GlmNotConverged
from .base import Columns, Floats, Model, check_rows, classify, strings
from .classes import classes_of
from .context import MLContext, Problem, present_columns

ALGOS = ("lr", "poisson")
PARAMETERS = ("penalty", "alpha", "fitIntercept", "tol", "maxIter")
MAX_ITER = 100
TOL = 1e-10


class GlmError(ModelError):
    """A GLM that cannot be fitted: bad parameters, a bad target, or no convergence."""


class GlmModel(Model):
    """η = x·coefᵀ + intercept per class; probabilities (lr) or the mean e^η (poisson)."""

    algos = ALGOS

    def _predict(self, x: Floats) -> Columns:
        eta = x @ self.arrays["coef"].T + self.arrays["intercept"]
        if self.name == "poisson":
            return {"res": strings(np.exp(eta[:, 0]))}
        labels = self.meta["labels"]
        if len(labels) == 2:
            p = special.expit(eta[:, 0])
            proba = np.stack([1.0 - p, p], axis=1)
        else:
            proba = special.softmax(eta, axis=1)
        return classify(labels, proba)


@dataclass
class GlmProblem:
    """What to fit, resolved against the accumulator: columns, classes, parameters."""

    algo: str
    problem: Problem
    family: str
    labels: list[str]  # class labels (lr); [] for poisson
    target_columns: list[str]  # the B column, the T levels' indicator columns, or the C column
    penalty: str
    alpha: float | None
    fit_intercept: bool
    tol: float
    max_iter: int
    known: tuple[str, ...] = ()  # every present column of the model's attributes

    @classmethod
    def of(cls, algo: str, acc: Accumulator, context: MLContext) -> GlmProblem:
        if algo not in ALGOS:
            raise GlmError(f"unknown GLM {algo!r}: expected one of {', '.join(ALGOS)}")
        context.check_parameters(algo, PARAMETERS)
        raw_penalty = context.extra.get("penalty", "L2")
        penalty = raw_penalty.strip().upper()
        if penalty not in ("L2", "L1", "NONE"):
            raise GlmError(f"parameter 'penalty' must be L2, L1 or NONE, got {raw_penalty!r}")
        alpha_default = None if algo == "lr" else 1.0
        alpha = None
        if "alpha" in context.extra or alpha_default is not None:
            alpha = context.number("alpha", alpha_default or 0.0, low=0.0)
        fit_intercept = context.boolean("fitIntercept", True)
        tol = context.number("tol", TOL, low=0.0, low_open=True)
        max_iter = context.integer("maxIter", MAX_ITER) or MAX_ITER
        # an L2 penalty makes the optimum unique with every level; the others need a reference
        problem = Problem.of(acc, context, drop_reference=penalty != "L2")
        target = problem.single_target()
        typ = acc.types.get(target)
        if algo == "poisson":
            if typ != "C":
                raise GlmError(f"target {target!r} has type {typ!r}: poisson needs a count (C)")
            labels, columns, family = [], [target], "poisson"
        else:
            classes = classes_of(acc, problem, algo)
            labels = classes.labels
            if classes.binary_column:
                columns, family = [classes.binary_column], "binomial"
            elif classes.k == 2:
                columns, family = [classes.columns[1]], "binomial"
            else:
                columns, family = classes.columns, "multinomial"
        check_rows(acc.n, len(problem.inputs) + 5 if penalty != "L2" else 2, f"{algo}")
        known = tuple(c for a in (*problem.input_types, target) for c in present_columns(acc, a))
        return cls(algo, problem, family, labels, columns, penalty, alpha,
                   fit_intercept, tol, max_iter, known)

    def plan(self) -> dict[str, Any]:
        """What a member needs to read its rows for this fit (JSON-able; no parameters)."""
        p = self.problem
        return {
            "algo": self.algo, "family": self.family, "labels": list(self.labels),
            "inputs": list(p.inputs), "inputTypes": dict(p.input_types),
            "inputParents": dict(p.input_parents), "targets": list(p.targets),
            "targetColumns": list(self.target_columns), "known": list(self.known),
        }

    @classmethod
    def from_plan(cls, plan: Any) -> GlmProblem:
        """The problem a coordinator's `plan` describes (GlmError if it is malformed)."""
        try:
            family = str(plan["family"])
            problem = Problem(
                [str(c) for c in plan["inputs"]],
                {str(k): str(v) for k, v in plan["inputTypes"].items()},
                {str(k): str(v) for k, v in plan["inputParents"].items()},
                [str(t) for t in plan["targets"]], MLContext())
            labels = [str(v) for v in plan["labels"]]
            columns = [str(c) for c in plan["targetColumns"]]
            known = tuple(str(c) for c in plan["known"])
            algo = str(plan["algo"])
        except (KeyError, TypeError, AttributeError) as e:
            raise GlmError(f"a malformed GLM plan: missing or bad {e}") from e
        if family not in ("binomial", "multinomial", "poisson") or algo not in ALGOS:
            raise GlmError(f"a GLM plan of unknown family {family!r} or algo {algo!r}")
        if len(problem.targets) != 1 or not columns or not problem.inputs:
            raise GlmError("a GLM plan needs one target, its columns, and inputs")
        return cls(algo, problem, family, labels, columns, "L2", None, True, TOL, MAX_ITER,
                   known)

    def check_columns(self, batch: Batch) -> None:
        """GlmError if the rows hold a column of the model's attributes it does not know
        (a category level the coordinator never saw: the rows could not be read exactly)."""
        attrs = {*self.problem.input_types, self.problem.targets[0]}
        known = set(self.known)
        for c in batch.columns:
            if c not in known and batch.parents.get(c, c) in attrs:
                raise GlmError(f"the rows hold column {c!r}, which the model's statistics do "
                               "not know (synchronize the federation's statistics first)")

    @property
    def d(self) -> int:
        return len(self.problem.inputs)

    def rows(self, batch: Batch) -> tuple[Floats, Floats]:
        """(X, y) of a batch of rows: y is 0/1, class indices, or the counts."""
        where = {c: j for j, c in enumerate(batch.columns)}
        target = self.problem.targets[0]
        for c in (*self.problem.inputs, *self.target_columns):
            attr = target if c in self.target_columns else self.problem.input_parents.get(c, c)
            if attr not in batch.types:  # a missing level of a present attribute is all 0
                raise GlmError(f"the rows lack attribute {attr!r} that the model needs")
        values = batch.values
        x = np.zeros((batch.rows, self.d))
        for k, c in enumerate(self.problem.inputs):
            if c in where:
                x[:, k] = values[:, where[c]]
        if self.family == "multinomial":
            z = np.stack([values[:, where[c]] if c in where else np.zeros(batch.rows)
                          for c in self.target_columns], axis=1)
            bad = np.flatnonzero(z.sum(axis=1) != 1.0)
            if bad.size:
                raise GlmError(f"row {int(bad[0])} has no class among the model's "
                               f"({', '.join(self.labels)})")
            y = np.argmax(z, axis=1).astype(np.float64)
        else:
            y = values[:, where[self.target_columns[0]]].copy()
            if self.family == "poisson" and np.any(y < 0):
                raise GlmError(f"poisson needs a non-negative target: {self.target_columns[0]!r}"
                               " has a negative value")
        return x, y

    def coef_shape(self) -> int:
        return len(self.labels) if self.family == "multinomial" else 1


def local_round(problem: GlmProblem, batches: Callable[[], Iterable[Batch]]) -> Callable[
    [Floats], RoundStats
]:
    """A round function over the node's own rows: `batches()` scans them afresh each round."""

    def run(coef: Floats) -> RoundStats:
        total = RoundStats.zeros(problem.coef_shape() * (problem.d + 1))
        for batch in batches():
            x, y = problem.rows(batch)
            total.add(round_stats(x, y, coef, problem.family))
        return total

    return run


def build_glm(problem: GlmProblem, round_fn: Callable[[Floats], RoundStats]) -> GlmModel:
    """Fit `problem` by Newton rounds through `round_fn` (local or federated)."""
    try:
        fit = fit_glm(
            round_fn, problem.d, problem.family, problem.penalty, problem.alpha,
            problem.fit_intercept, problem.tol, problem.max_iter,
            classes=max(2, len(problem.labels)),
        )
    except GlmNotConverged as e:
        raise GlmError(f"{problem.algo} could not be fitted: {e}") from e
    return model_of(problem, fit)


def model_of(problem: GlmProblem, fit: GlmFit) -> GlmModel:
    params: dict[str, Any] = {
        "penalty": problem.penalty,
        "alpha": fit.alpha,
        "fitIntercept": problem.fit_intercept,
        "tol": problem.tol,
        "maxIter": problem.max_iter,
    }
    meta: dict[str, Any] = {
        "algo": problem.algo,
        "n": fit.n,
        "params": params,
        "family": problem.family,
        "iterations": fit.iterations,
        "rounds": fit.rounds,
        "converged": fit.converged,
        "losses": list(fit.losses),
    }
    if problem.labels:
        meta["labels"] = list(problem.labels)
    p = problem.problem
    return GlmModel(p.inputs, p.input_types, p.input_parents, p.targets,
                    {"coef": fit.coef, "intercept": fit.intercept}, meta)
