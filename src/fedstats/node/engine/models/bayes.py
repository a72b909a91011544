"""Gaussian naive Bayes (`bayes`) from the class-conditional moments.

Matches scikit-learn's `GaussianNB`: per class and input, the mean and the biased
variance (scatter / n_k) plus ε = var_smoothing · the largest biased global variance;
priors are the class frequencies. Every level of a category input is kept: naive Bayes
treats inputs one at a time, so collinearity does not hurt it. Predictions answer the
reference's `res` (the label) and `Prob` (the posterior probability of that label), plus
fedstats' `proba_<label>` per class (the normalized joint likelihood).

Parameters: `var_smoothing` (scikit-learn's); `use_log_likelihood` (the reference's) is
accepted and always true here, since the likelihoods are summed as logarithms anyway.
The reference's `laplace_factor` smooths counts of discrete inputs, which a Gaussian
model has not: refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ..accumulator import Accumulator
from ..errors import ModelError
from ..xp import to_numpy
from .base import Columns, Floats, Model, check_rows, classify, strings
from .classes import class_moments, classes_of
from .context import MLContext, Problem

VAR_SMOOTHING = 1e-9


class GaussianBayes(Model):
    algo = "bayes"

    def _predict(self, x: Floats) -> Columns:
        theta, var = self.arrays["theta"], self.arrays["var"]
        jll = np.empty((x.shape[0], theta.shape[0]))
        for k in range(theta.shape[0]):
            normal = -0.5 * np.sum(np.log(2.0 * np.pi * var[k]))
            jll[:, k] = normal - 0.5 * np.sum((x - theta[k]) ** 2 / var[k], axis=1)
        jll += np.log(self.arrays["priors"])
        proba = np.exp(jll - special.logsumexp(jll, axis=1, keepdims=True))
        return classify(self.meta["labels"], proba, {"Prob": strings(proba.max(axis=1))})

    def _info(self) -> dict[str, Any]:
        return {
            "means": self.arrays["theta"].tolist(),
            "variances": self.arrays["var"].tolist(),
            "priors": self.arrays["priors"].tolist(),
            "epsilon": float(self.arrays["epsilon"]),
        }


def build_bayes(algo: str, acc: Accumulator, context: MLContext) -> GaussianBayes:
    context.check_parameters(algo, ("var_smoothing", "use_log_likelihood"))
    if not context.boolean("use_log_likelihood", True):
        raise ModelError("parameter 'use_log_likelihood' must be true here: the Gaussian "
                         "likelihoods are always summed as logarithms")
    problem = Problem.of(acc, context, drop_reference=False)
    classes = classes_of(acc, problem, algo)
    smoothing = context.number("var_smoothing", VAR_SMOOTHING, low=0.0)
    check_rows(acc.n, 2, "naive Bayes")
    total = acc.moments(problem.inputs)
    epsilon = smoothing * float(np.max(np.diag(to_numpy(total.m2)) / acc.n))
    theta, var = [], []
    for count, m in zip(
        classes.counts, class_moments(acc, classes, problem.inputs, algo), strict=True
    ):
        theta.append(to_numpy(m.mean))
        var.append(np.diag(to_numpy(m.m2)) / count + epsilon)
    var_arr = np.stack(var)
    if not np.all(var_arr > 0.0):
        bad = problem.inputs[int(np.flatnonzero((var_arr <= 0.0).any(axis=0))[0])]
        raise ModelError(
            f"input column {bad!r} is constant within a class and var_smoothing is 0: "
            "raise var_smoothing"
        )
    return GaussianBayes(
        problem.inputs,
        problem.input_types,
        problem.input_parents,
        [classes.target],
        {
            "theta": np.stack(theta),
            "var": var_arr,
            "priors": classes.priors(),
            "epsilon": np.float64(epsilon),
        },
        {
            "algo": algo,
            "n": acc.n,
            "labels": classes.labels,
            "counts": classes.counts,
            "params": {"var_smoothing": smoothing},
        },
    )
