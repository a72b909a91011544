"""Linear (`lda`, `mlda`) and quadratic (`mqda`) discriminant analysis.

LDA needs only the class means and the pooled within-class covariance, and both come
from the GLOBAL co-moment matrix (see `classes.class_means`), so it works on projects
that keep no conditional statistics. It matches scikit-learn's
`LinearDiscriminantAnalysis(solver="lsqr")`: covariance = within / n, coef_k = Σ⁻¹μ_k,
intercept_k = -½μ_kᵀcoef_k + log prior_k; a binary model keeps the difference of the two
rows, and its probability is the logistic of the decision, as in scikit-learn.

QDA needs each class's own covariance, from the conditional moments. scikit-learn's
`QuadraticDiscriminantAnalysis` (1.9, reg_param 0) divides each class's scatter by n_k
(older releases by n_k - 1): `ddof` in extraParameters picks (default 0, the installed
behaviour). Predictions answer the reference's keys (prediction-api.md) plus fedstats'
`proba_<label>` per class:

    lda, mlda (2 classes)  res, resZ = x·w, z0 = the threshold (-intercept), z1GTz0 = "true"
                           (res is the second class exactly when resZ > z0: w points to it)
    mlda (K > 2 classes)   res (resZ/z0 have no meaning for more than two classes)
    mqda                   res and, per class, `<target>$<label>`: its log posterior

`matrix_use_pseudoinv=true` (lda, mlda) solves with the pseudo-inverse (scikit-learn's
`solver="lsqr"` is a least-squares solve, the minimum-norm answer on a singular
covariance). One-hot inputs drop their last level for both (it makes every covariance
singular).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg, special

from ..accumulator import Accumulator
from ..errors import ModelError
from ..xp import to_numpy
from .base import COLLINEAR, Columns, Floats, Model, check_rows, classify, spd_solve, strings
from .classes import class_means, class_moments, classes_of
from .context import MLContext, Problem


class LinearDiscriminant(Model):
    """Scores x·coefᵀ + intercept; one row of coef for two classes, K rows otherwise."""

    algos = ("lda", "mlda")

    def _predict(self, x: Floats) -> Columns:
        z = x @ self.arrays["coef"].T
        scores = z + self.arrays["intercept"]
        if len(self.meta["labels"]) == 2:
            p = special.expit(scores[:, 0])
            proba = np.stack([1.0 - p, p], axis=1)
            n = x.shape[0]
            keys = {"resZ": strings(z[:, 0]),
                    "z0": [repr(-float(self.arrays["intercept"][0]))] * n,
                    "z1GTz0": ["true"] * n}
            return classify(self.meta["labels"], proba, keys)
        return classify(self.meta["labels"], special.softmax(scores, axis=1))


class QuadraticDiscriminant(Model):
    """Per class: mean, eigenvectors (rotation) and eigenvalues (scaling) of its covariance."""

    algo = "mqda"

    def _predict(self, x: Floats) -> Columns:
        means, rotations, scalings = (self.arrays[k] for k in ("means", "rotations", "scalings"))
        scores = np.empty((x.shape[0], means.shape[0]))
        for k in range(means.shape[0]):
            z = (x - means[k]) @ (rotations[k] / np.sqrt(scalings[k]))
            scores[:, k] = -0.5 * ((z * z).sum(axis=1) + np.log(scalings[k]).sum())
        scores += np.log(self.arrays["priors"])
        log_post = scores - special.logsumexp(scores, axis=1, keepdims=True)
        labels, target = self.meta["labels"], self.targets[0]
        keys = {f"{target}${label}": strings(log_post[:, k]) for k, label in enumerate(labels)}
        return classify(labels, np.exp(log_post), keys)

    def _info(self) -> dict[str, Any]:
        return {
            "means": self.arrays["means"].tolist(),
            "priors": self.arrays["priors"].tolist(),
            "covariances": [
                ((r * s) @ r.T).tolist()
                for r, s in zip(self.arrays["rotations"], self.arrays["scalings"], strict=True)
            ],
        }


LDA_PARAMETERS = ("matrix_use_pseudoinv", "sml_disable_error_logging")
QDA_PARAMETERS = ("ddof", "matrix_use_pseudoinv", "sml_disable_error_logging")


def build_lda(algo: str, acc: Accumulator, context: MLContext) -> LinearDiscriminant:
    context.check_parameters(algo, LDA_PARAMETERS)
    context.boolean("sml_disable_error_logging", True)
    pseudo = context.boolean("matrix_use_pseudoinv", False)
    problem = Problem.of(acc, context, drop_reference=True)
    classes = classes_of(acc, problem, algo)
    if algo == "lda" and classes.k != 2:
        raise ModelError(
            f"lda needs a binary target but {classes.target!r} has {classes.k} classes: use mlda"
        )
    d = len(problem.inputs)
    check_rows(acc.n, d + classes.k, f"{algo} on {d} input columns and {classes.k} classes")
    means, within = class_means(acc, classes, problem.inputs)
    priors = classes.priors()
    cov = within / acc.n
    if pseudo:
        coef = (linalg.pinvh(cov) @ means.T).T
    else:
        coef = spd_solve(cov, means.T, problem.inputs,
                         hint=", or set matrix_use_pseudoinv=true").T  # K × d
    intercept = -0.5 * np.einsum("kd,kd->k", means, coef) + np.log(priors)
    if classes.k == 2:
        coef = coef[1:] - coef[:1]
        intercept = intercept[1:] - intercept[:1]
    return LinearDiscriminant(
        problem.inputs,
        problem.input_types,
        problem.input_parents,
        [classes.target],
        {"coef": coef, "intercept": intercept, "means": means, "priors": priors},
        {"algo": algo, "n": acc.n, "labels": classes.labels, "counts": classes.counts,
         "params": {"matrix_use_pseudoinv": pseudo}},
    )


def build_qda(algo: str, acc: Accumulator, context: MLContext) -> QuadraticDiscriminant:
    context.check_parameters(algo, QDA_PARAMETERS)
    context.boolean("sml_disable_error_logging", True)
    if context.boolean("matrix_use_pseudoinv", False):
        raise ModelError("parameter 'matrix_use_pseudoinv' is not offered for mqda: each "
                         "class's covariance must be invertible (as in scikit-learn's QDA)")
    problem = Problem.of(acc, context, drop_reference=True)
    classes = classes_of(acc, problem, algo)
    ddof = context.integer("ddof", 0, low=0)
    assert ddof is not None
    if ddof > 1:
        raise ModelError(f"parameter 'ddof' must be 0 or 1, got {ddof}")
    d = len(problem.inputs)
    means, rotations, scalings = [], [], []
    for label, count, m in zip(
        classes.labels,
        classes.counts,
        class_moments(acc, classes, problem.inputs, algo),
        strict=True,
    ):
        if count <= d:
            raise ModelError(
                f"class {label!r} has {count} rows: {algo} needs more rows than input "
                f"columns ({d}) in every class"
            )
        w, v = linalg.eigh(to_numpy(m.m2) / (count - ddof))
        if not w[0] > COLLINEAR * w[-1]:
            raise ModelError(
                f"the covariance of class {label!r} is singular: its inputs are collinear"
            )
        means.append(to_numpy(m.mean))
        rotations.append(v)
        scalings.append(w)
    return QuadraticDiscriminant(
        problem.inputs,
        problem.input_types,
        problem.input_parents,
        [classes.target],
        {
            "means": np.stack(means),
            "rotations": np.stack(rotations),
            "scalings": np.stack(scalings),
            "priors": classes.priors(),
        },
        {
            "algo": algo,
            "n": acc.n,
            "labels": classes.labels,
            "counts": classes.counts,
            "params": {"ddof": ddof},
        },
    )
