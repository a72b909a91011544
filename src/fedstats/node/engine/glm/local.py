"""One batch's share of a Newton round: loss, gradient and Hessian at the given coefficients.

    binomial     η = Xw + b, μ = σ(η)     ℓ = log(1 + e^η) − yη    W = μ(1 − μ)
    poisson      η = Xw + b, μ = e^η      ℓ = e^η − yη             W = e^η
    multinomial  η_k = Xw_k + b_k, p = softmax(η)   ℓ = logsumexp(η) − Σ_k y_k η_k

Sums (never means) of the unpenalized per-row losses, so batches and sites add. The
parameter vector is x̃ = [x, 1] per class (intercept last), classes one after another;
the intercept's column of ones is written into a per-chunk scratch, never into a copy of
X. Rows go through in chunks small enough for the cache (`CHUNK`), each read from memory
once. For binomial and Poisson with numba: η is a BLAS gemv of the chunk, the one
transcendental per row a numpy SIMD call (a = e^{−|η|/2}, or e^{η/2} for Poisson: then
e^{−|η|} = a², √W = a/(1 + a²), and the loss's log(1 + e^{−|η|}) is one more SIMD log),
and one compiled loop (`_tail`) does the rest per row — μ, the residual, the row scaled
by √(sW) into the scratch, the gradient and the intercept's Hessian row, summed as it
goes. Scalar libm exp/log1p per row in the loop cost as much as the whole syrk; so did
the gemv's dot product as a serial chain of adds. The Hessian is then a BLAS `syrk` of
the scratch's d data columns (a 21st column of ones costs BLAS ~20% more than it is
worth). Without numba (and for the multinomial) numpy calls do the same, with a gemm
for the multinomial's off-diagonal blocks; bench/glm_local.py measures a round against
`X.T @ X`. On CuPy arrays (`gpu` projects) the same code runs with one chunk and cuBLAS
products.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from scipy.linalg.blas import dgemm, dsyrk

from ..l1quad import NUMBA
from ..xp import module_of, to_numpy
from .stats import RoundStats

FAMILIES = ("binomial", "multinomial", "poisson")
CHUNK = 8192  # rows per chunk: the chunk and its 8192 × 20 scratch (~1.3 MB each) stay in cache
_fused: Callable[..., Any] | None = None


def round_stats(
    x: Any,
    y: Any,
    coef: Any,
    family: str,
    weights: Any = None,
    *,
    chunk: int = CHUNK,
) -> RoundStats:
    """Σ loss, gradient and Hessian over the rows of `x` (n × d) at `coef`.

    `coef` is (d+1,) — w then the intercept — for binomial and poisson, (K, d+1) for
    multinomial; y is 0/1 (binomial), a count (poisson), or class indices 0..K-1 or a
    one-hot (n × K) matrix (multinomial). `weights` are optional non-negative row weights.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown GLM family {family!r}: expected one of {FAMILIES}")
    xp = module_of(x)
    x = xp.asarray(x, dtype=xp.float64)
    if x.ndim != 2:
        raise ValueError("x must be a 2-D array of rows")
    n, d = x.shape
    coef = xp.asarray(coef, dtype=xp.float64)
    k = coef.shape[0] if family == "multinomial" else 1
    coef = coef.reshape(k, d + 1)
    y = xp.asarray(y, dtype=xp.float64)
    if family == "multinomial" and y.ndim == 1:
        if bool(xp.any((y < 0) | (y >= k) | (y != xp.floor(y)))):
            raise ValueError(f"multinomial y must hold class indices 0..{k - 1}")
        y = (y[:, None] == xp.arange(k, dtype=xp.float64)[None, :]).astype(xp.float64)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} rows, x has {n}")
    w = None if weights is None else xp.asarray(weights, dtype=xp.float64)
    if w is not None and (w.shape != (n,) or bool(xp.any(w < 0))):
        raise ValueError("weights must be one non-negative number per row")
    p = k * (d + 1)
    out = RoundStats(0.0, 0.0, np.zeros(p), np.zeros((p, p), order="F"))
    if n == 0:
        return out
    step = max(1, chunk) if xp is np else n
    fused = xp is np and NUMBA and family != "multinomial"
    scratch = None if fused else xp.empty((min(step, n), d + 1))
    if fused:
        eta_buf, a_buf = np.empty(min(step, n)), np.empty(min(step, n))
        gram = np.empty((min(step, n), d))  # the scaled rows, C-contiguous
        h_row = np.zeros(d)  # the intercept's Hessian row, summed by the compiled loop
        h_corner = 0.0
    grad = xp.zeros((k, d + 1))
    hess = np.zeros((p, p), order="F") if xp is np else xp.zeros((p, p))
    loss = 0.0
    total = 0.0
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        xc, yc = x[lo:hi], y[lo:hi]
        wc = None if w is None else w[lo:hi]
        z = None if scratch is None else scratch[: hi - lo]
        if family == "multinomial":
            eta = xc @ coef[:, :d].T + coef[:, d]  # (rows, K)
            part, resid = _multinomial(xp, xc, yc, eta, wc, z, hess, d)
        elif fused:
            g = grad[0]
            et, av, zx = eta_buf[: hi - lo], a_buf[: hi - lo], gram[: hi - lo]
            np.dot(xc, coef[0, :d], out=et)
            et += coef[0, d]
            poisson = family == "poisson"
            if poisson:
                np.multiply(et, 0.5, out=av)
            else:
                np.abs(et, out=av)
                av *= -0.5
            np.exp(av, out=av)  # e^{η/2} or e^{−|η|/2}
            s = np.ones(0) if wc is None else wc
            root = np.ones(0) if wc is None else np.sqrt(wc)
            part, corner = _kernel()(xc, yc, et, av, s, root, poisson, zx, g, h_row)
            if not poisson:  # av now holds 1 + e^{−|η|}: the loss's log term
                np.log(av, out=av)
                part += float(av.sum()) if wc is None else float(av @ wc)
            h_corner += corner
            _syrk_into(xp, hess, zx, 0, 0)
            loss += part
            total += float(hi - lo) if wc is None else float(np.sum(wc))
            continue
        else:
            eta = xc @ coef[:, :d].T + coef[:, d]
            part, resid, weight = _single(xp, family, yc, eta[:, 0], wc)
            sw = xp.sqrt(weight if wc is None else weight * wc)
            _scaled(xp, xc, sw, z)
            _syrk_into(xp, hess, z, 0, 0)
        loss += part
        total += float(hi - lo) if wc is None else float(xp.sum(wc))
        grad[:, :d] += resid.T @ xc
        grad[:, d] += resid.sum(axis=0)
    if fused:
        hess[:d, d] += h_row
        hess[d, d] += h_corner
    hess = to_numpy(hess)
    iu = np.triu_indices(p, 1)
    hess.T[iu] = hess[iu]  # syrk filled the upper triangle
    out.n, out.loss = total, loss
    out.grad = to_numpy(grad).ravel()
    out.hess = np.ascontiguousarray(hess)
    return out


def _single(
    xp: ModuleType, family: str, y: Any, eta: Any, w: Any
) -> tuple[float, Any, Any]:
    """(Σ loss, residual column (rows × 1) weighted, Hessian weight W) for one η."""
    if family == "binomial":
        e = xp.exp(-xp.abs(eta))
        one_e = 1.0 + e
        mu = xp.where(eta >= 0, 1.0 / one_e, e / one_e)
        losses = xp.maximum(eta, 0.0) + xp.log1p(e) - y * eta
        weight = e / (one_e * one_e)  # μ(1 − μ) without cancellation at either tail
    else:
        mu = xp.exp(eta)
        losses = mu - y * eta
        weight = mu
    resid = mu - y
    if w is not None:
        losses = losses * w
        resid = resid * w
    return float(xp.sum(losses)), resid[:, None], weight


def _multinomial(
    xp: ModuleType, x: Any, y: Any, eta: Any, w: Any, z: Any, hess: Any, d: int
) -> tuple[float, Any]:
    """Σ loss and the weighted residuals (rows × K); the Hessian blocks go into `hess`."""
    k = eta.shape[1]
    top = eta.max(axis=1, keepdims=True)
    ex = xp.exp(eta - top)
    tot = ex.sum(axis=1, keepdims=True)
    prob = ex / tot
    losses = (top[:, 0] + xp.log(tot[:, 0])) - (y * eta).sum(axis=1)
    resid = prob - y
    if w is not None:
        losses = losses * w
        resid = resid * w[:, None]
    q = d + 1
    ones = _ones_column(xp, x, z.shape[0]) if k > 1 else None
    for a in range(k):
        # 1 − p_a as the sum of the other classes, exact where p_a is near 1
        others = sum((prob[:, b] for b in range(k) if b != a), xp.zeros_like(prob[:, 0]))
        wa = prob[:, a] * others
        _scaled(xp, x, xp.sqrt(wa if w is None else wa * w), z)
        _syrk_into(xp, hess, z, a * q, a * q)
        for b in range(a + 1, k):
            wab = prob[:, a] * prob[:, b]
            _scaled(xp, x, wab if w is None else wab * w, z)
            _gemm_into(xp, hess, z, ones, a * q, b * q)
    return float(xp.sum(losses)), resid


def _scaled(xp: ModuleType, x: Any, s: Any, out: Any) -> None:
    """out = [x, 1] scaled row-wise by s."""
    d = x.shape[1]
    xp.multiply(x, s[:, None], out=out[:, :d])
    out[:, d] = s


def _ones_column(xp: ModuleType, x: Any, rows: int) -> Any:
    return xp.concatenate([x[:rows], xp.ones((rows, 1))], axis=1)


def _syrk_into(xp: ModuleType, hess: Any, z: Any, r: int, c: int) -> None:
    """hess[r:r+q, c:c+q] (upper triangle) += zᵀz."""
    q = z.shape[1]
    if xp is np:
        block = hess[r : r + q, c : c + q]
        block[...] = dsyrk(1.0, z.T, beta=1.0, c=np.asfortranarray(block), trans=0)
    else:  # pragma: no cover - GPU only
        hess[r : r + q, c : c + q] += xp.triu(z.T @ z)


def _gemm_into(xp: ModuleType, hess: Any, left: Any, right: Any, r: int, c: int) -> None:
    """hess[r:r+q, c:c+q] −= leftᵀ right (an off-diagonal multinomial block)."""
    q = left.shape[1]
    if xp is np:
        block = hess[r : r + q, c : c + q]
        block[...] = dgemm(-1.0, left.T, right.T, beta=1.0, c=np.asfortranarray(block), trans_b=1)
    else:  # pragma: no cover - GPU only
        hess[r : r + q, c : c + q] -= left.T @ right



def _kernel() -> Callable[..., Any]:
    global _fused
    if _fused is None:
        import numba

        _fused = numba.njit(cache=True, nogil=True, boundscheck=False)(_tail)
    return _fused


def _tail(
    x: Any, y: Any, eta: Any, a: Any, s: Any, root: Any, poisson: bool, z: Any, g: Any,
    h: Any,
) -> tuple[float, float]:  # pragma: no cover - compiled; the numpy path computes the same sums
    """One chunk's rows after η and a = e^{η/2} (Poisson) or e^{−|η|/2} (binomial).

    Returns (Σ loss without the binomial's log term, Σ sW: the intercept's Hessian
    corner); z = x·√(sW) row-wise, g += Σ r·[x, 1] with r = s(μ − y), h += Σ √(sW)·z.
    For the binomial, `a` is overwritten with 1 + e^{−|η|}, whose log the caller sums.
    `s` (and `root` = √s) are the row weights, empty when there are none."""
    n, d = x.shape
    weighted = s.shape[0] > 0
    loss = 0.0
    corner = 0.0
    for i in range(n):
        ai = a[i]
        et = eta[i]
        if poisson:
            mu = ai * ai
            sw = ai
            li = mu - y[i] * et
        else:
            e = ai * ai
            one = 1.0 + e
            inv = 1.0 / one
            sw = ai * inv  # √(μ(1 − μ)) without cancellation at either tail
            mu = inv if et >= 0.0 else e * inv
            li = max(et, 0.0) - y[i] * et
            a[i] = one
        ri = mu - y[i]
        if weighted:
            li *= s[i]
            ri *= s[i]
            sw *= root[i]
        loss += li
        corner += sw * sw
        for j in range(d):
            v = x[i, j]
            zij = v * sw
            z[i, j] = zij
            g[j] += ri * v
            h[j] += sw * zij
        g[d] += ri
    return loss, corner
