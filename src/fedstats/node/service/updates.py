"""Durable learn and forget: a batch's statistics folded into a project, logged, then published.

The shape that makes updates durable and concurrent updates lossless:

* the batch's statistics (an accumulator of the batch alone) are computed outside any lock;
* under the project's lock, they are folded into a *copy* of the project's accumulator,
  appended to the project's log (committed, `synchronous=FULL`), and only then is the
  copy swapped in: a failure at any step leaves the project as it was, and readers
  (explore, build, the federation) take `project.acc` without locking, as it is never
  mutated once published;
* the same fold (`fold`) replays the log at start (`registry`), so a restarted node holds
  exactly the accumulator it acknowledged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..engine.accumulator import Accumulator
from ..engine.admission import admit
from ..engine.codec import encode_snapshot
from ..engine.frame import DEFAULT_LIMITS, Batch
from ..limits import Limits
from ..store import ProjectStore
from . import rules
from .errors import no_project

if TYPE_CHECKING:
    from .registry import Project
    from .rows import KeptRows

from .rows import undo_rows

log = logging.getLogger("fedstats.node.service")

KINDS = ("learn", "forget")


def fold(acc: Accumulator, kind: str, part: Accumulator) -> None:
    """Fold one batch's statistics into `acc` in place: the live path and the replay.

    A forget must remove rows that were learned: when it leaves a variance (total or
    conditional) clearly negative, it is refused (`acc` is then a spoiled copy the caller
    drops).
    """
    rules.check_same_attributes(acc.types, part.types)
    if kind == "learn":
        acc.merge(part)
        return
    before = rules.variance_diagonals(acc)
    acc.unmerge(part)
    rules.check_forget(before, rules.variance_diagonals(acc))


def update(store: ProjectStore, project: Project, batch: Batch, kind: str,
           checkpoint_every: int, limits: Limits = DEFAULT_LIMITS,
           kept: KeptRows | None = None) -> int:
    """Learn or forget `batch` in `project`; returns its rows once that is durable.

    A keep-rows project's rows are appended (or deleted, as a multiset) in its row store
    first, then the statistics logged (`rows.py` says why that order)."""
    rules.check_has_attributes(batch.columns)
    part = Accumulator(project.engine)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked, below
        part.learn(batch)  # the expensive arithmetic, outside the lock
    rules.check_finite(part, "these rows' statistics")
    stats = encode_snapshot(part)
    with project.lock:
        if project.deleted:
            raise no_project(project.cid, project.pid)
        if kind == "learn":  # growth within the limits, no attribute new to old rows
            admit(project.acc, batch, limits)
        rows = kept.get(project.cid, project.pid) if kept is not None else None
        if rows is not None and kind == "forget":  # an unmatched row: refused, nothing changed
            rows.delete_matching(batch)
        try:
            acc = project.acc.copy()
            with np.errstate(over="ignore", invalid="ignore"):
                fold(acc, kind, part)
            rules.check_finite(acc, "the project's statistics with these rows")
            if rows is not None and kind == "learn":
                rows.append(batch)
        except BaseException:
            if rows is not None and kind == "forget":
                undo_rows(rows, batch, kind)
            raise
        try:
            store.append(project.cid, project.pid, project.seq + 1, kind, stats)
        except BaseException:
            if rows is not None:
                undo_rows(rows, batch, kind)
            raise
        project.seq += 1
        project.since_checkpoint += 1
        project.acc = acc
        if project.since_checkpoint >= checkpoint_every:
            checkpoint(store, project)
    return batch.rows


def checkpoint(store: ProjectStore, project: Project) -> None:
    """Fold the log into the snapshot (under the project's lock).

    The update is durable already (the log is the truth): a checkpoint that fails only
    leaves a longer log to replay, and is tried again after the next update.
    """
    try:
        store.checkpoint(project.cid, project.pid, project.seq, encode_snapshot(project.acc))
        project.since_checkpoint = 0
    except Exception as e:
        log.error("checkpoint of project %s/%s failed (its log holds every "
                  "change; retried after the next one): %s: %s",
                  project.cid, project.pid, type(e).__name__, e)
