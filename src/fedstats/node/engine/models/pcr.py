"""Principal components regression (`pcr`) from the co-moment matrix.

PCA of the centered (not scaled) inputs is the eigen-decomposition of G = Σ(x-x̄)(x-x̄)ᵀ;
least squares of y on the first k component scores Z = (X - x̄)V_k has coefficients
Λ_k⁻¹V_kᵀc (the scores are uncorrelated), so the whole pipeline collapses to one linear
model with coef = V_k Λ_k⁻¹ V_kᵀ c. That form does not depend on the eigenvectors'
signs, which is why it equals scikit-learn's `make_pipeline(PCA(k), LinearRegression())`.
The number of components is the reference's `q` (its `pcr_type=qfirst` flavour, the only
one offered: `full`, a lasso on the augmented features, is refused); `k`, `components`
and `n_components` (scikit-learn's) are aliases. Every level of a category is kept, since
the components absorb the collinearity with the intercept.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ..accumulator import Accumulator
from ..errors import ModelError
from .base import check_rows
from .context import MLContext, Problem
from .linear import LinearModel, regression_moments

# Two eigenvalues this close (relative to the largest) span a plane with no preferred
# axes: keeping one and not the other would make the model depend on rounding.
TIE = 1e-10


def build_pcr(algo: str, acc: Accumulator, context: MLContext) -> LinearModel:
    problem = Problem.of(acc, context, drop_reference=False)
    target, n, g, c, xbar, ybar = regression_moments(acc, problem)
    d = len(problem.inputs)
    context.check_parameters(algo, ("q", "k", "components", "n_components", "pcr_type"))
    context.text("pcr_type", "qfirst", ("qfirst",))
    names = ("q", "k", "components", "n_components")
    k = context.integer("q", d, aliases=names[1:])
    used = next((key for key in names if key in context.extra), "q")
    assert k is not None
    if k > d:
        raise ModelError(
            f"parameter {used!r} must be at most the number of input columns ({d}), got {k}"
        )
    check_rows(n, 2, "principal components regression")
    w, v = linalg.eigh(g)
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    top = max(float(w[0]), 0.0)
    if not w[k - 1] > TIE * top:
        raise ModelError(
            f"component {k} has no variance: the inputs span fewer than {k} dimensions; lower k"
        )
    if k < d and w[k - 1] - w[k] <= TIE * top:
        raise ModelError(
            f"components {k} and {k + 1} have equal variance, so the first {k} are not "
            "unique; choose another k"
        )
    vk = v[:, :k]
    coef = vk @ ((vk.T @ c) / w[:k])
    intercept = ybar - float(xbar @ coef)
    variance = w[:k] / (n - 1)
    return LinearModel(
        problem.inputs,
        problem.input_types,
        problem.input_parents,
        [target],
        {
            "coef": coef,
            "intercept": np.float64(intercept),
            "explained_variance": variance,
        },
        {"algo": algo, "n": n, "params": {"q": k, "pcr_type": "qfirst"}},
    )
