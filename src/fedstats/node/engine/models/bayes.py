"""Gaussian naive Bayes (`bayes`) from the class-conditional moments.

Matches scikit-learn's `GaussianNB`: per class and input, the mean and the biased
variance (scatter / n_k) plus ε = var_smoothing · the largest biased global variance;
priors are the class frequencies. Every level of a category input is kept: naive Bayes
treats inputs one at a time, so collinearity does not hurt it. Predictions answer
`prediction` and `proba_<label>` per class (the normalized joint likelihood).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ..accumulator import Accumulator
from ..errors import ModelError
from ..xp import to_numpy
from .base import Floats, KSVSMap, Model, check_rows, classify
from .classes import class_moments, classes_of
from .context import MLContext, Problem

VAR_SMOOTHING = 1e-9


class GaussianBayes(Model):
    algo = "bayes"

    def _predict(self, x: Floats) -> KSVSMap:
        theta, var = self.arrays["theta"], self.arrays["var"]
        jll = np.empty((x.shape[0], theta.shape[0]))
        for k in range(theta.shape[0]):
            normal = -0.5 * np.sum(np.log(2.0 * np.pi * var[k]))
            jll[:, k] = normal - 0.5 * np.sum((x - theta[k]) ** 2 / var[k], axis=1)
        jll += np.log(self.arrays["priors"])
        proba = np.exp(jll - special.logsumexp(jll, axis=1, keepdims=True))
        return classify(self.meta["labels"], proba)

    def _info(self) -> dict[str, Any]:
        return {
            "means": self.arrays["theta"].tolist(),
            "variances": self.arrays["var"].tolist(),
            "priors": self.arrays["priors"].tolist(),
            "epsilon": float(self.arrays["epsilon"]),
        }


def build_bayes(algo: str, acc: Accumulator, context: MLContext) -> GaussianBayes:
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
