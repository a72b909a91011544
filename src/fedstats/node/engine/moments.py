"""Central moments of a set of rows, and their exact parallel combination.

`Moments` holds what every model needs about a set of rows: the count, the per-column
mean, the co-moment matrix Σ(x-x̄)(x-x̄)ᵀ, the per-column third and fourth central moment
sums (skewness, kurtosis) and the bounds seen. `combine` is Chan et al.'s parallel update
(extended to third and fourth moments by Pébay); `remove` is its exact inverse, which is
what makes forget possible. Working with central moments instead of raw sums keeps data
with huge offsets (mean 1e9, std 1) exact to the last few bits.

Bounds (min/max) cannot be un-merged: after a forget they stay the bounds seen so far.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import fused
from .xp import module_of

_BLOCK_BYTES = 4 << 20  # rows per block in `of_rows`: a few MiB stays in L2/L3 cache

Array = Any  # numpy.ndarray or cupy.ndarray


@dataclass
class Moments:
    """Moments of `n` rows over `d` columns (arrays of one array module)."""

    n: int
    mean: Array  # (d,)
    m2: Array  # (d, d) co-moment matrix, symmetric
    m3: Array  # (d,) Σ (x - x̄)³ per column
    m4: Array  # (d,) Σ (x - x̄)⁴ per column
    lo: Array  # (d,) smallest value seen (+inf when none)
    hi: Array  # (d,) largest value seen (-inf when none)
    # The mean's rounding error (true mean = mean + dmean, a double-double). A float64 mean
    # near 1e9 is only good to ~1e-7; without this term that error enters every merge's
    # mean difference and spoils co-moments of data with large offsets.
    dmean: Array = None

    def __post_init__(self) -> None:
        if self.dmean is None:
            self.dmean = module_of(self.mean).zeros(self.mean.shape[0])

    @property
    def d(self) -> int:
        return int(self.mean.shape[0])

    @property
    def xp(self) -> ModuleType:
        return module_of(self.mean)

    @classmethod
    def empty(cls, d: int, xp: ModuleType = np) -> Moments:
        return cls(
            n=0,
            mean=xp.zeros(d),
            m2=xp.zeros((d, d)),
            m3=xp.zeros(d),
            m4=xp.zeros(d),
            lo=xp.full(d, xp.inf),
            hi=xp.full(d, -xp.inf),
        )

    @classmethod
    def of_rows(cls, x: Array) -> Moments:
        """Moments of the rows of a 2-D float64 array.

        One pass for the column sums, then the rows in cache-sized blocks: each block is
        centred into a reused buffer (with its sums, cube and fourth-power sums and bounds,
        in one compiled pass when numba is present: `fused.py`) and feeds syrk while it is
        still in cache. Fresh full-size temporaries cost more than the arithmetic here
        (page faults on every new 16 MB array). The rows must be finite (the callers check).
        """
        xp = module_of(x)
        n, d = x.shape
        if n == 0:
            return cls.empty(d, xp)
        ones = xp.ones(n)
        mean = (ones @ x) / n  # BLAS gemv: faster than x.mean(axis=0)
        if xp is not np:  # pragma: no cover - GPU: one large kernel each beats blocks
            return cls._centred(x, mean, ones)
        rows = min(n, max(16, _BLOCK_BYTES // (8 * d)))
        buf, sq = _scratch(rows, d)
        m2 = np.zeros((d, d))
        s = np.zeros(d)
        p3 = np.zeros(d)
        p4 = np.zeros(d)
        lo = np.full(d, np.inf)
        hi = np.full(d, -np.inf)
        for start in range(0, n, rows):
            blk = x[start : start + rows]
            k = blk.shape[0]
            c, q = buf[:k], sq[:k]
            if fused.AVAILABLE:
                fused.centre_block(blk, mean, c, s, p3, p4, lo, hi)
            else:
                np.subtract(blk, mean, out=c)
                np.multiply(c, c, out=q)
                s += ones[:k] @ c
                p3 += np.einsum("ij,ij->j", q, c)
                p4 += np.einsum("ij,ij->j", q, q)
                _fold(np.minimum, blk, q, lo)  # q is free again: scratch for the bounds
                _fold(np.maximum, blk, q, hi)
            m2 += c.T @ c
        return cls._recentred(n, mean, s / n, m2, p3, p4, lo, hi)

    @classmethod
    def _centred(cls, x: Array, mean: Array, ones: Array) -> Moments:
        xp = module_of(x)
        n = x.shape[0]
        xc = x - mean
        m2 = xc.T @ xc  # numpy recognises Aᵀ·A and calls syrk
        sq = xc * xc
        p3 = xp.einsum("ij,ij->j", sq, xc)  # no temporary, unlike (sq * xc).sum(axis=0)
        p4 = xp.einsum("ij,ij->j", sq, sq)
        s = (ones @ xc) / n
        return cls._recentred(n, mean, s, m2, p3, p4, x.min(axis=0), x.max(axis=0))

    @classmethod
    def _recentred(
        cls, n: int, mean: Array, s: Array, m2: Array, p3: Array, p4: Array, lo: Array, hi: Array
    ) -> Moments:
        """Moments about the true mean from power sums about `mean`, whose rows average `s`.

        `mean`'s rounding leaves the rows centred on `s` (tiny, but not 0 with large
        offsets); re-centring in closed form is exact algebra and saves a pass over the rows.
        """
        p2 = module_of(m2).diagonal(m2).copy()
        nf = float(n)
        _rank1(m2, s, -nf)
        s2 = s * s
        m3 = p3 - 3.0 * s * p2 + 2.0 * nf * s2 * s
        m4 = p4 - 4.0 * s * p3 + 6.0 * s2 * p2 - 3.0 * nf * s2 * s2
        hi_mean, lo_mean = _two_sum(mean, s)
        return cls(n, hi_mean, m2, m3, m4, lo, hi, lo_mean)

    def copy(self) -> Moments:
        return Moments(
            self.n,
            self.mean.copy(),
            self.m2.copy(),
            self.m3.copy(),
            self.m4.copy(),
            self.lo.copy(),
            self.hi.copy(),
            self.dmean.copy(),
        )

    def padded(self, d: int) -> Moments:
        """These moments with zero-valued columns appended up to `d` columns.

        A column that appears only in later rows was 0 in the rows seen before it.
        """
        extra = d - self.d
        if extra == 0:
            return self
        if extra < 0:
            raise ValueError("cannot pad moments to fewer columns")
        xp = self.xp
        m2 = xp.zeros((d, d))
        m2[: self.d, : self.d] = self.m2
        zeros = xp.zeros(extra)
        bound = zeros if self.n else xp.full(extra, xp.inf)
        return Moments(
            self.n,
            xp.concatenate([self.mean, zeros]),
            m2,
            xp.concatenate([self.m3, zeros]),
            xp.concatenate([self.m4, zeros]),
            xp.concatenate([self.lo, bound]),
            xp.concatenate([self.hi, -bound if not self.n else zeros]),
            xp.concatenate([self.dmean, zeros]),
        )

    def take(self, idx: Array) -> Moments:
        """The moments restricted to the columns `idx` (in that order)."""
        return Moments(
            self.n,
            self.mean[idx],
            self.m2[np.ix_(idx, idx)] if self.xp is np else self.m2[idx][:, idx],
            self.m3[idx],
            self.m4[idx],
            self.lo[idx],
            self.hi[idx],
            self.dmean[idx],
        )

    def variance(self, ddof: int = 0) -> Array:
        """Per-column variance (ddof=0: divide by n; ddof=1: by n-1)."""
        return self.xp.diagonal(self.m2) / (self.n - ddof)

    def covariance(self, ddof: int = 0) -> Array:
        return self.m2 / (self.n - ddof)


def combine(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two disjoint row sets (Chan / Pébay)."""
    if a.d != b.d:
        raise ValueError(f"cannot combine moments over {a.d} and {b.d} columns")
    if b.n == 0:
        return _with_bounds(a.copy(), b)
    if a.n == 0:
        return _with_bounds(b.copy(), a)
    out = a.copy()
    combine_into(out, b)
    return out


def combine_into(a: Moments, b: Moments) -> None:
    """`a` becomes the moments of the union of `a` and `b` (in place)."""
    if b.n == 0:
        _with_bounds(a, b)
        return
    if a.n == 0:
        a.n, a.mean, a.m2, a.m3, a.m4 = b.n, b.mean.copy(), b.m2.copy(), b.m3.copy(), b.m4.copy()
        a.dmean = b.dmean.copy()
        _with_bounds(a, b)
        return
    na, nb = float(a.n), float(b.n)
    n = na + nb
    delta = _difference(b, a.mean, a.dmean)
    m2a_diag = a.xp.diagonal(a.m2).copy()
    m2b_diag = b.xp.diagonal(b.m2)
    d2 = delta * delta
    m4 = (
        a.m4
        + b.m4
        + d2 * d2 * (na * nb * (na * na - na * nb + nb * nb) / (n * n * n))
        + 6.0 * d2 * (na * na * m2b_diag + nb * nb * m2a_diag) / (n * n)
        + 4.0 * delta * (na * b.m3 - nb * a.m3) / n
    )
    m3 = (
        a.m3
        + b.m3
        + d2 * delta * (na * nb * (na - nb) / (n * n))
        + 3.0 * delta * (na * m2b_diag - nb * m2a_diag) / n
    )
    a.m2 += b.m2
    _rank1(a.m2, delta, na * nb / n)
    a.mean, a.dmean = _two_sum(a.mean, a.dmean + delta * (nb / n))
    a.m3, a.m4, a.n = m3, m4, a.n + b.n
    _with_bounds(a, b)


def remove(total: Moments, part: Moments) -> Moments:
    """The moments of `total`'s rows without `part`'s rows (the inverse of `combine`).

    `part` must be a subset of the rows `total` was built from; only the count can be
    checked, so a caller that forgets rows it never learned gets wrong moments.
    """
    if total.d != part.d:
        raise ValueError(f"cannot remove moments over {part.d} columns from {total.d}")
    if part.n > total.n:
        raise ValueError(f"cannot forget {part.n} rows: only {total.n} are known")
    if part.n == 0:
        return total.copy()
    xp = total.xp
    if part.n == total.n:
        out = Moments.empty(total.d, xp)
        out.lo, out.hi = total.lo.copy(), total.hi.copy()
        return out
    n, nb = float(total.n), float(part.n)
    na = n - nb
    # mean_a from the difference of the means keeps large offsets exact
    mean_a, dmean_a = _two_sum(
        total.mean, total.dmean - _difference(part, total.mean, total.dmean) * (nb / na)
    )
    delta = _difference(part, mean_a, dmean_a)
    m2 = total.m2 - part.m2
    _rank1(m2, delta, -na * nb / n)
    m2a_diag = xp.diagonal(m2).copy()
    m2b_diag = xp.diagonal(part.m2)
    d2 = delta * delta
    m3 = (
        total.m3
        - part.m3
        - d2 * delta * (na * nb * (na - nb) / (n * n))
        - 3.0 * delta * (na * m2b_diag - nb * m2a_diag) / n
    )
    m4 = (
        total.m4
        - part.m4
        - d2 * d2 * (na * nb * (na * na - na * nb + nb * nb) / (n * n * n))
        - 6.0 * d2 * (na * na * m2b_diag + nb * nb * m2a_diag) / (n * n)
        - 4.0 * delta * (na * part.m3 - nb * m3) / n
    )
    # m4's last term needs m3 of `a`, which is `m3` just computed
    lo, hi = total.lo.copy(), total.hi.copy()
    return Moments(total.n - part.n, mean_a, m2, m3, m4, lo, hi, dmean_a)


def _difference(b: Moments, mean: Array, dmean: Array) -> Array:
    """b's true mean minus (mean + dmean), without the rounding of either mean."""
    return (b.mean - mean) + (b.dmean - dmean)


def _two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _rank1(m: Array, v: Array, alpha: float) -> None:
    """m += alpha · v vᵀ, in place.

    numpy's own outer product, not scipy's BLAS dger: numpy and scipy each bundle an
    OpenBLAS with its own thread pool, and waking the second pool right after numpy's syrk
    cost milliseconds per call here (two pools fighting over two cores), far more than the
    d² temporary this allocates.
    """
    m += module_of(m).multiply.outer(v, v * alpha)


_SCRATCH = threading.local()


def _scratch(rows: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (rows, d) work arrays, reused by this thread from one call to the next.

    A fresh multi-megabyte array comes from mmap and page-faults on first touch: at d=100
    that cost several times the syrk itself. The blocks are at most `_BLOCK_BYTES`, so
    keeping the two largest ever used is cheap.
    """
    have = getattr(_SCRATCH, "arrays", None)
    size = rows * d
    if have is None or have[0].size < size:
        have = (np.empty(size), np.empty(size))
        _SCRATCH.arrays = have
    return have[0][:size].reshape(rows, d), have[1][:size].reshape(rows, d)


def _fold(op: Any, x: np.ndarray, scratch: np.ndarray, acc: np.ndarray) -> None:
    """acc = op(acc, op over the rows of x), by halving: every step is one contiguous
    vectorised op, about twice as fast as numpy's column-wise reduce of a C-ordered array."""
    k = x.shape[0]
    h = k // 2
    if h == 0:
        if k:
            op(acc, x[0], out=acc)
        return
    cur = scratch[:h]
    op(x[:h], x[h : 2 * h], out=cur)
    if k % 2:
        op(acc, x[-1], out=acc)
    while cur.shape[0] > 1:
        m = cur.shape[0]
        h = m // 2
        if m % 2:
            op(acc, cur[-1], out=acc)
        op(cur[:h], cur[h : 2 * h], out=cur[:h])
        cur = cur[:h]
    op(acc, cur[0], out=acc)


def _with_bounds(a: Moments, b: Moments) -> Moments:
    xp = a.xp
    a.lo = xp.minimum(a.lo, b.lo)
    a.hi = xp.maximum(a.hi, b.hi)
    return a
