"""Exploration: univariate, bivariate and PCA summaries from an accumulator alone.

The spec's `uni` metric asks for count, mean, variance, stddev, skewness, kurtosis,
stderr, min and max; `bi` for covar, linCorr, condMean, condCount, condVariance. Each
estimator comes in two clearly named variants because clients disagree on which they
mean: the plain name is the sample (bias-corrected) estimator, as pandas reports it,
and the `_biased` name is the population one (scipy.stats' default for skew/kurtosis):

    variance, stddev        Σ(x-x̄)²/(n-1)         variance_biased, stddev_biased   /n
    skewness                G1 (scipy bias=False)  skewness_biased  g1 = m3/m2^1.5
    kurtosis                G2 excess (bias=False) kurtosis_biased  g2 = m4/m2² - 3
    stderr                  stddev / √n (scipy.stats.sem)

A value that is undefined for so few rows (a variance of one row, a skewness of a
constant column), or for a negative variance, is None, so the answer stays valid JSON. min and max are the bounds of
every row seen: forgetting rows cannot narrow them (a bound is not invertible). Columns are the expanded ones:
a category attribute contributes its `attr$value` indicator columns.

`context_attributes` reads the ExploreContext a client sends (`{values: [MLContext]}`): it
is called on a worker thread, never the event loop, and is linear in the body (names are
deduplicated through a dict, attributes resolved to columns through one index built per
call), bounded by `Limits.max_project_columns` names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from scipy import linalg

from ..limits import LimitExceeded, Limits
from .accumulator import Accumulator
from .errors import FrameError, ModelError
from .frame import DEFAULT_LIMITS, short
from .xp import to_numpy


def explore_uni(acc: Accumulator, attributes: Sequence[str] | None = None) -> dict[str, Any]:
    """Per column: count, mean, min, max and the moment-based statistics."""
    cols = _columns(acc, attributes)
    m = acc.moments(cols)
    n = m.n
    mean, m2 = to_numpy(m.mean), np.diag(to_numpy(m.m2))
    m3, m4, lo, hi = (to_numpy(a) for a in (m.m3, m.m4, m.lo, m.hi))
    out: dict[str, Any] = {}
    for j, col in enumerate(cols):
        out[col] = _uni(n, float(mean[j]), float(m2[j]), float(m3[j]), float(m4[j]))
        out[col]["min"] = float(lo[j]) if n else None
        out[col]["max"] = float(hi[j]) if n else None
    return out


def _uni(n: int, mean: float, m2: float, m3: float, m4: float) -> dict[str, Any]:
    # a negative m2 (rows forgotten that were never learned, before the node refused
    # that) has no variance: None, like every statistic derived from it
    valid = math.isfinite(m2) and m2 >= 0.0
    var = m2 / (n - 1) if n > 1 and valid else None
    var_b = m2 / n if n and valid else None
    out: dict[str, Any] = {
        "count": n,
        "mean": mean if n else None,
        "variance": var,
        "variance_biased": var_b,
        "stddev": math.sqrt(var) if var is not None else None,
        "stddev_biased": math.sqrt(var_b) if var_b is not None else None,
        "stderr": math.sqrt(var / n) if var is not None else None,
        "skewness": None,
        "skewness_biased": None,
        "kurtosis": None,
        "kurtosis_biased": None,
    }
    if n and valid and m2 > 0.0:
        g1 = (m3 / n) / (m2 / n) ** 1.5
        g2 = (m4 / n) / (m2 / n) ** 2 - 3.0
        out["skewness_biased"], out["kurtosis_biased"] = g1, g2
        if n > 2:
            out["skewness"] = g1 * math.sqrt(n * (n - 1)) / (n - 2)
        if n > 3:
            out["kurtosis"] = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    return out


def explore_bi(acc: Accumulator, attributes: Sequence[str] | None = None) -> dict[str, Any]:
    """Covariance and correlation matrices; each column's statistics given each binary column.

    `covar` divides by n-1 (`covar_biased` by n); `linCorr` is Pearson's r, None where a
    column is constant. `condCount[b]`, `condMean[b][col]`, `condVariance[b][col]`
    (n-1) describe the rows where binary column b is 1; they need the project's
    conditional statistics and are empty without them.
    """
    cols = _columns(acc, attributes)
    m = acc.moments(cols)
    n = m.n
    s = to_numpy(m.m2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(np.diag(s))  # NaN for a negative variance: its correlations are None
        corr = s / np.outer(sd, sd)
    corr_list: list[list[float | None]] = [
        [float(v) if a > 0 and b > 0 else None for v, b in zip(row, sd, strict=True)]
        for row, a in zip(corr, sd, strict=True)
    ]
    out: dict[str, Any] = {
        "columns": cols,
        "count": n,
        "covar": (s / (n - 1)).tolist() if n > 1 else None,
        "covar_biased": (s / n).tolist() if n else None,
        "linCorr": corr_list,
        "condCount": {},
        "condMean": {},
        "condVariance": {},
    }
    for b in acc.binary:
        if b not in acc.cond:
            continue
        g = acc.given(b, 1, columns=cols)
        out["condCount"][b] = g.n
        mean, var = to_numpy(g.mean), np.diag(to_numpy(g.m2))
        out["condMean"][b] = {c: (float(mean[j]) if g.n else None) for j, c in enumerate(cols)}
        out["condVariance"][b] = {
            c: (float(var[j]) / (g.n - 1) if g.n > 1 and var[j] >= 0.0 else None)
            for j, c in enumerate(cols)
        }
    return out


def explore_pca(
    acc: Accumulator, attributes: Sequence[str] | None = None, k: int | None = None
) -> dict[str, Any]:
    """Principal components of the centered (unscaled) columns, largest first.

    Matches scikit-learn's PCA: `explained_variance` (eigenvalues of the n-1 covariance),
    `explained_variance_ratio` (of the total variance of all columns), `cumulative`, and
    `eigenvectors` (rows, like `components_`), each signed so its largest-magnitude entry
    is positive, which is scikit-learn's convention for `components_`.
    """
    cols = _columns(acc, attributes)
    d = len(cols)
    if k is None:
        k = d
    if not 1 <= k <= d:
        raise ModelError(f"k must be between 1 and the number of columns ({d}), got {k}")
    m = acc.moments(cols)
    if m.n < 2:
        raise ModelError(f"PCA needs at least 2 rows, the project has {m.n}")
    cov = to_numpy(m.m2) / (m.n - 1)
    w, v = linalg.eigh(cov)
    order = np.argsort(w)[::-1][:k]
    w, v = np.clip(w[order], 0.0, None), v[:, order].T
    pivot = np.argmax(np.abs(v), axis=1)
    v *= np.sign(v[np.arange(k), pivot])[:, None]
    total = float(np.trace(cov))
    ratio = w / total if total > 0 else np.zeros(k)
    return {
        "columns": cols,
        "count": m.n,
        "eigenvalues": w.tolist(),
        "eigenvectors": v.tolist(),
        "explained_variance": w.tolist(),
        "explained_variance_ratio": ratio.tolist(),
        "cumulative": np.cumsum(ratio).tolist(),
        "mean": to_numpy(m.mean).tolist(),
    }


def context_attributes(body: bytes, limits: Limits = DEFAULT_LIMITS) -> list[str] | None:
    """The attributes an ExploreContext `{values: [MLContext]}` (or one MLContext) names,
    each once, in order of first mention; None for an empty body or no names."""
    if not body.strip():
        return None
    try:
        context: Any = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise FrameError(f"the body is not valid JSON: {e}") from None
    return attributes_of(context, limits)


def attributes_of(context: Any, limits: Limits = DEFAULT_LIMITS) -> list[str] | None:
    """`context_attributes` of an already decoded ExploreContext (None for JSON null)."""
    if context is None:
        return None
    if not isinstance(context, dict):
        raise FrameError("an ExploreContext must be a JSON object {values: [MLContext]}")
    contexts = context.get("values", [context])
    if not isinstance(contexts, list):
        raise FrameError("ExploreContext.values must be a list of MLContext objects")
    names: dict[str, None] = {}  # insertion-ordered set: a linear dedup
    for c in contexts:
        if not isinstance(c, dict):
            raise FrameError("each ExploreContext value must be an MLContext object")
        for key in ("inputAttributeNames", "targetAttributeNames"):
            got = c.get(key) or []
            if not isinstance(got, list) or not all(isinstance(a, str) for a in got):
                raise FrameError(f"MLContext.{key} must be a list of strings")
            names.update(dict.fromkeys(got))
            if len(names) > limits.max_project_columns:
                raise LimitExceeded("max_project_columns", limits.max_project_columns,
                                    f"the ExploreContext names more than "
                                    f"{limits.max_project_columns} attributes")
    return list(names) or None


def _columns(acc: Accumulator, attributes: Sequence[str] | None) -> list[str]:
    if attributes is None:
        return list(acc.columns)
    by_attribute: dict[str, list[str]] = {}
    for col in acc.columns:  # one pass: an attribute's indicator columns, in column order
        parent = acc.parents.get(col)
        if parent is not None:
            by_attribute.setdefault(parent, []).append(col)
    cols: list[str] = []
    for attr in attributes:
        if attr in acc.index:
            cols.append(attr)
        elif attr in by_attribute:
            cols.extend(by_attribute[attr])
        else:
            raise ModelError(f"unknown attribute {short(attr)}")
    return cols
