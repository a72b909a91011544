"""Where peers' statistics are merged into this node's: the view info, explore and build read.

The federation registers peer sources (`fn(cid, pid) -> [Accumulator]`, the newest
snapshot of each peer this node merges); the view of a project is its own accumulator
merged with all of them. The merge is kept until one of its parts changes: a learn
publishes a new local accumulator and a peer's snapshot arrives as a new object, so
comparing the parts by identity is enough, and a polled `info` no longer re-merges every
peer each time. A view is read-only: it may be the project's own published accumulator.
"""

from __future__ import annotations

from collections.abc import Callable

from ..engine.accumulator import Accumulator
from .registry import Project

PeerSource = Callable[[str, str], list[Accumulator]]


class MergedView:
    """Local merged with peers', per project, cached by the identity of its parts."""

    def __init__(self) -> None:
        self._sources: list[PeerSource] = []
        # (cid, pid) -> (the parts merged, by identity; their merge)
        self._merged: dict[tuple[str, str], tuple[tuple[Accumulator, ...], Accumulator]] = {}

    def add_source(self, fn: PeerSource) -> None:
        """`fn(cid, pid)` gives peers' accumulators to merge into this node's."""
        self._sources.append(fn)

    def of(self, project: Project) -> Accumulator:
        """The project's statistics with its peers' (read-only; its own when it has none)."""
        key = (project.cid, project.pid)
        peers = [a for fn in self._sources for a in fn(*key)]
        if not peers:
            return project.acc
        parts = (project.acc, *peers)
        cached = self._merged.get(key)
        if cached is not None and len(cached[0]) == len(parts) and all(
                a is b for a, b in zip(cached[0], parts, strict=True)):
            return cached[1]
        merged = Accumulator.merged(parts, engine=project.engine)
        self._merged[key] = (parts, merged)
        return merged

    def drop(self, cid: str, pid: str) -> None:
        """Forget the cached merge of a deleted project."""
        self._merged.pop((cid, pid), None)
