"""Exact GLMs (logistic, multinomial, Poisson) by Newton rounds over row batches.

    round_stats(x, y, coef, family, weights)  -> RoundStats   one batch's share of a round
    RoundStats.add / merge / encode / decode                   sums travel, rows never do
    fit_glm(round_fn, d, family, ...)         -> GlmFit        the coordinator's loop

The split is the federation's: every site runs `round_stats` over its own rows and the
coordinator, which sees only the sums, takes the Newton step. Locally, `round_fn` scans
row batches; federated, it is one exchange over the federation's subjects.
"""

from .local import FAMILIES, round_stats
from .solve import GlmFit, GlmSpec, fit_glm
from .stats import RoundStats, decode_round_stats, encode_round_stats

__all__ = [
    "FAMILIES",
    "GlmFit",
    "GlmSpec",
    "RoundStats",
    "decode_round_stats",
    "encode_round_stats",
    "fit_glm",
    "round_stats",
]
