"""The classes of a classification target, and their statistics.

A `B` target has classes "0" and "1" (class 0 is the complement of its column); a `T`
(or `S`) target has one class per level that some row still has, named by the level.
Classes are kept in sorted label order, the order scikit-learn's `classes_` has.

Two routes to per-class statistics: `class_means` derives the class means from the
GLOBAL co-moments (Σ(x-x̄)(z_k-z̄_k) = n_k(μ_k - x̄) for an indicator z_k), which is all
linear discriminants need; `class_moments` asks the accumulator's conditional moments,
which QDA and naive Bayes need for the per-class spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..accumulator import Accumulator
from ..errors import EngineError, ModelError
from ..moments import Moments
from ..xp import to_numpy
from .base import Floats
from .context import ONE_HOT, Problem, level_count, present_columns


@dataclass(frozen=True)
class Classes:
    """Labels, the indicator column of each, and how many rows each has."""

    target: str
    labels: list[str]
    columns: list[str]  # indicator column of each class ("" for a B target's class 0)
    counts: list[int]
    binary_column: str | None  # the B target's own column

    @property
    def k(self) -> int:
        return len(self.labels)

    @property
    def n(self) -> int:
        return sum(self.counts)

    def priors(self) -> Floats:
        return np.asarray(self.counts, dtype=np.float64) / self.n


def classes_of(acc: Accumulator, problem: Problem, algo: str) -> Classes:
    """The target's classes (at least two, each with a row)."""
    target = problem.single_target()
    typ = acc.types.get(target)
    if typ == "B":
        ones = level_count(acc, target)
        labels, columns, counts = ["0", "1"], ["", target], [acc.n - ones, ones]
        present = [i for i, c in enumerate(counts) if c > 0]
        labels = [labels[i] for i in present]
        columns = [columns[i] for i in present]
        counts = [counts[i] for i in present]
        binary_column: str | None = target
    elif typ in ONE_HOT:
        pairs = sorted((c.split("$", 1)[1], c) for c in present_columns(acc, target))
        labels = [p[0] for p in pairs]
        columns = [p[1] for p in pairs]
        counts = [level_count(acc, c) for c in columns]
        binary_column = None
    else:
        raise ModelError(
            f"target {target!r} has type {typ!r}: {algo} needs a binary (B) or category (T) target"
        )
    if len(labels) < 2:
        raise ModelError(f"target {target!r} has {len(labels)} class(es) with rows: {algo} needs 2")
    return Classes(target, labels, columns, counts, binary_column)


def class_means(acc: Accumulator, classes: Classes, inputs: list[str]) -> tuple[Floats, Floats]:
    """(class means K×d, within-class scatter d×d) from the global co-moments only."""
    zcols = [classes.binary_column] if classes.binary_column else classes.columns
    m = acc.moments([*inputs, *zcols])
    m2, mean = to_numpy(m.m2), to_numpy(m.mean)
    d = len(inputs)
    sxx, sxz = m2[:d, :d], m2[:d, d:]
    counts = np.asarray(classes.counts, dtype=np.float64)
    if classes.binary_column:
        # the indicator of class "0" is 1 - z: its cross-moments are -Σ(x-x̄)(z-z̄)
        z = sxz[:, 0]
        full = {"0": -z, "1": z}
        dev = np.stack([full[label] for label in classes.labels], axis=1)
    else:
        dev = sxz
    dev = dev / counts  # column k is μ_k - x̄
    between = (dev * counts) @ dev.T
    within = sxx - between
    return (mean[:d][:, None] + dev).T, within


def class_moments(
    acc: Accumulator, classes: Classes, inputs: list[str], algo: str
) -> list[Moments]:
    """The moments of the inputs over each class's rows (conditional statistics)."""
    out = []
    for label, col in zip(classes.labels, classes.columns, strict=True):
        try:
            if classes.binary_column:
                m = acc.given(classes.binary_column, int(label), columns=inputs)
            else:
                m = acc.given(col, 1, columns=inputs)
        except EngineError as e:
            raise ModelError(
                f"{algo} needs class-conditional statistics of {classes.target!r}, "
                f"which this project does not keep ({e})"
            ) from e
        out.append(m)
    return out
