"""One batch's share of a Newton round: loss, gradient and Hessian at the given coefficients.

    binomial     η = Xw + b, μ = σ(η)     ℓ = log(1 + e^η) − yη    W = μ(1 − μ)
    poisson      η = Xw + b, μ = e^η      ℓ = e^η − yη             W = e^η
    multinomial  η_k = Xw_k + b_k, p = softmax(η)   ℓ = logsumexp(η) − Σ_k y_k η_k

Sums (never means) of the unpenalized per-row losses, so batches and sites add. The
parameter vector is x̃ = [x, 1] per class (intercept last), classes one after another;
the intercept's column of ones is written into a per-chunk scratch, never into a copy of
X. Rows go through in chunks small enough for the cache: for binomial and Poisson one
compiled pass (numba; rows in parallel on machines of 4 cores or more, `PARALLEL`: on
fewer, numba's threads and BLAS's, and those of other node processes, fight over the
cores and a round measured 5x slower) reads each row once for η, μ, the loss and the
residual and writes it scaled by √(sW) into the scratch (the d data columns only: the
intercept's Hessian row is a gemv of the same cached rows, since BLAS runs a 21st column
of ones ~20% slower than it is worth); without numba (and for the
multinomial) numpy calls do the same. The Hessian is a BLAS `syrk` of the scratch (a
gemm for the multinomial's off-diagonal blocks) and the gradient a gemv of the
residuals over the cached chunk — so X is read from memory once, and the rest runs at
the BLAS rate (bench/glm_local.py measures it against `X.T @ X`). On CuPy arrays (`gpu`
projects) the same code runs with one chunk and cuBLAS products.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from scipy.linalg.blas import dgemm, dsyrk

from ..l1quad import NUMBA
from ..xp import module_of, to_numpy
from .stats import RoundStats

FAMILIES = ("binomial", "multinomial", "poisson")
CHUNK = 16384  # rows per chunk: a 16384 × 21 scratch is ~2.7 MB, in cache on most machines
_fused: Callable[..., Any] | None = None
prange = range  # numba.prange once the kernel is compiled (numba reads it as a global)
PARALLEL = (os.cpu_count() or 1) >= 4


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
    scratch = xp.empty((min(step, n), d + 1))
    resid_buf = np.empty(min(step, n))
    sw_buf = np.empty(min(step, n))
    fused = xp is np and NUMBA and family != "multinomial"
    gram = np.empty((min(step, n), d)) if fused else None  # the scaled rows, C-contiguous
    grad = xp.zeros((k, d + 1))
    hess = np.zeros((p, p), order="F") if xp is np else xp.zeros((p, p))
    loss = 0.0
    total = 0.0
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        xc, yc = x[lo:hi], y[lo:hi]
        wc = None if w is None else w[lo:hi]
        z = scratch[: hi - lo]
        if family == "multinomial":
            eta = xc @ coef[:, :d].T + coef[:, d]  # (rows, K)
            part, resid = _multinomial(xp, xc, yc, eta, wc, z, hess, d)
        elif xp is np and NUMBA:
            # one compiled pass: η, μ, the loss, the residuals, √(sW) and the scaled rows
            r, sw = resid_buf[: hi - lo], sw_buf[: hi - lo]
            g = np.zeros(d + 1)  # serial: the pass sums the gradient too (x is in cache)
            assert gram is not None
            zx = gram[: hi - lo]
            part = _kernel()(xc, yc, np.ones(0) if wc is None else wc, coef[0],
                             family == "poisson", zx, sw, r, g, not PARALLEL)
            # the Gram of the d scaled columns by syrk (BLAS kernels run a column of ones
            # more slowly than it is worth: 21 columns cost 20% more than 20), the
            # intercept's row by a gemv of the same cached rows, its corner by a dot
            _syrk_into(xp, hess, zx, 0, 0)
            hess[:d, d] += sw @ zx
            hess[d, d] += sw @ sw
            loss += part
            total += float(hi - lo) if wc is None else float(np.sum(wc))
            if PARALLEL:  # rows in parallel cannot share one gradient: a gemv after
                g[:d] = r @ xc
                g[d] = r.sum()
            grad[0] += g
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
    global _fused, prange
    if _fused is None:
        import numba

        prange = numba.prange

        _fused = numba.njit(cache=True, nogil=True, boundscheck=False, parallel=PARALLEL)(
            _one_pass
        )
    return _fused


def _one_pass(
    x: Any, y: Any, s: Any, coef: Any, poisson: bool, z: Any, q: Any, r: Any, g: Any,
    fuse: bool,
) -> float:  # pragma: no cover - compiled; the numpy path computes the same sums
    """Σ loss; r = the weighted residuals; q = √(sW); z = x·q (row-wise); with `fuse`
    (serial only) g += Σ r·[x, 1], the gradient."""
    n, d = x.shape
    weighted = s.shape[0] > 0
    loss = 0.0
    for i in prange(n):
        eta = coef[d]
        for j in range(d):
            eta += x[i, j] * coef[j]
        if poisson:
            mu = math.exp(eta)
            li = mu - y[i] * eta
            wt = mu
        else:
            e = math.exp(-abs(eta))
            one = 1.0 + e
            mu = 1.0 / one if eta >= 0.0 else e / one
            li = max(eta, 0.0) + math.log1p(e) - y[i] * eta
            wt = e / (one * one)
        ri = mu - y[i]
        if weighted:
            li *= s[i]
            ri *= s[i]
            wt *= s[i]
        loss += li
        r[i] = ri
        sw = math.sqrt(wt)
        q[i] = sw
        for j in range(d):
            z[i, j] = x[i, j] * sw
        if fuse:
            for j in range(d):
                g[j] += ri * x[i, j]
            g[d] += ri
    return loss
