"""The service's rules, as pure functions: what an id, an engine, a batch or a forget must be.

Each takes values and answers (or raises the service's error saying why), touching no
store, lock or clock, so every rule is tested on its own (`tests/node/test_service_rules.py`)
and the stateful modules beside it (`registry`, `updates`) only decide *when* to ask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping

import numpy as np

from ..engine.accumulator import Accumulator
from ..engine.errors import FrameError, SchemaMismatch
from ..engine.xp import to_numpy
from .errors import BadRequest

ENGINES = ("cpu", "gpu")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # whole value: fullmatch ($ passes "\n")
# a forget's rounding leaves at most this tiny a negative, relative to the variance before
NEGATIVE_TOLERANCE = 1e-7


def check_id(value: str | None, what: str) -> str:
    """Ids become paths and keys: letters, digits, `_ . -`, at most 128, not empty."""
    if not value or not _ID.fullmatch(value):
        raise BadRequest(
            f"{what} {value!r} is not valid: use 1-128 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return value


def project_engine(requested: str | None, default: str, has_gpu: Callable[[], bool]) -> str:
    """The engine a new project runs on: the one asked for, else the node's default.

    A default of gpu on a node without one falls back to cpu (the node was configured for
    hardware it lacks: its projects still work); an explicit gpu there is refused, as the
    client asked for what this node cannot give. `has_gpu` is asked only when gpu is.
    """
    engine = default if requested is None else requested
    if requested is None and engine == "gpu" and not has_gpu():
        engine = "cpu"
    if engine not in ENGINES:
        raise BadRequest(f"project type {engine!r} is not valid: use cpu or gpu")
    if engine == "gpu" and not has_gpu():
        raise BadRequest("project type 'gpu' needs a CUDA GPU and CuPy; this node has none")
    return engine


def check_algo(algo: str | None, known: Collection[str]) -> str:
    """`algo` if it names a known algorithm; BadRequest listing them otherwise."""
    if not algo or algo not in known:
        raise BadRequest(f"unknown algo {algo!r}: use one of {', '.join(sorted(known))}")
    return algo


def check_has_attributes(columns: Collection[str]) -> None:
    """A learn or forget needs at least one attribute (X columns are skipped)."""
    if not columns:
        raise FrameError("the DataFrame has no attribute to learn or forget (all X, or none)")


def check_same_attributes(project: Iterable[str], batch: Collection[str]) -> None:
    """Learn and forget alike need every attribute of the project in the batch."""
    missing = [a for a in project if a not in batch]
    if missing:
        raise SchemaMismatch(
            f"the rows lack attribute(s) {', '.join(map(repr, missing))} that the project has"
        )


def check_finite(acc: Accumulator, what: str) -> None:
    """BadRequest unless every moment (total and conditional) is finite.

    Finite values can still overflow float64 once squared or merged (1e200 and -1e200):
    such statistics could never be stored, explored or reloaded, so they are refused
    before anything reaches the log.
    """
    xp = acc.xp
    for m in (acc.total, *acc.cond.values()):
        for a in (m.mean, m.dmean, m.m2, m.m3, m.m4):
            if a.size and not bool(xp.isfinite(a).all()):
                raise BadRequest(
                    f"{what} overflow (the moments are not finite): values this large "
                    "cannot be learned; rescale the attributes"
                )


def variance_diagonals(acc: Accumulator) -> dict[str, np.ndarray]:
    """The diagonal of m2 (sums of squared deviations): '' for the total, then each condition."""
    out = {"": np.diagonal(to_numpy(acc.total.m2)).copy()}
    for col, m in acc.cond.items():
        out[col] = np.diagonal(to_numpy(m.m2)).copy()
    return out


def negative_variance(before: Mapping[str, np.ndarray],
                      after: Mapping[str, np.ndarray]) -> str | None:
    """Where a forget left a variance clearly negative (or not finite): '' for the total,
    a binary column for its condition; None when the forget removed rows really learned.

    Rounding may leave a tiny negative: up to `NEGATIVE_TOLERANCE` of the variance before.
    """
    for key, old in before.items():
        new = after.get(key)
        if new is None or not new.size:
            continue
        if bool((new < -NEGATIVE_TOLERANCE * np.abs(old)).any()) or not bool(
                np.isfinite(new).all()):
            return key
    return None


def check_forget(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> None:
    """BadRequest when the rows forgotten cannot have been learned (`negative_variance`)."""
    key = negative_variance(before, after)
    if key is not None:
        raise BadRequest(
            "these rows were not learned: forgetting them would leave a negative "
            "variance" + (f" given {key!r}" if key else "")
        )
