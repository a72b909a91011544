"""The per-row half of a learn, fused into one compiled pass (numba), when numba is present.

A learn is one syrk (the co-moment matrix) plus per-column work on every value: centring,
the sums of the centred values and of their cubes and fourth powers, the bounds. As numpy
calls those are eight passes over each block, which at d=100 cost as much as the syrk;
compiled, they are one pass that reads each value once and leaves the centred block in
cache for the syrk.

`centre_block(x, mean, out, s, p3, p4, lo, hi)` writes x - mean into `out` and adds into
the (d,) accumulators. `AVAILABLE` is False when numba is not installed (or
FEDSTATS_NO_NUMBA is set), and `moments.py` then runs the same arithmetic as numpy calls.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

# numba is imported (~0.2 s) and the kernel compiled or loaded from its cache only at the
# first learn, not by every process that merely imports the engine (the CLI, the operator).
AVAILABLE = (not os.environ.get("FEDSTATS_NO_NUMBA")
             and importlib.util.find_spec("numba") is not None)
_kernel: Any = None


def centre_block(x: np.ndarray, mean: np.ndarray, out: np.ndarray, s: np.ndarray,
                 p3: np.ndarray, p4: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """out = x - mean; s, p3, p4 += the column sums of out, out³, out⁴; lo/hi take x's bounds."""
    global _kernel
    if _kernel is None:
        _kernel = _compile()
    _kernel(x, mean, out, s, p3, p4, lo, hi)


def _compile() -> Any:
    import numba

    @numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"nnan", "ninf"})
    def kernel(
        x: np.ndarray,
        mean: np.ndarray,
        out: np.ndarray,
        s: np.ndarray,
        p3: np.ndarray,
        p4: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> None:  # pragma: no cover - compiled; covered through moments.of_rows
        k, d = x.shape
        for i in range(k):
            for j in range(d):
                v = x[i, j]
                lo[j] = min(lo[j], v)
                hi[j] = max(hi[j], v)
                t = v - mean[j]
                out[i, j] = t
                s[j] += t
                t2 = t * t
                p3[j] += t2 * t
                p4[j] += t2 * t2

    return kernel
