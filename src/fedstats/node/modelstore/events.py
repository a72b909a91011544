"""`FlEvents`: the model states of the reference system, with the values it shows.

10, 20 and 40 are observed in the public v2 documentation (a put, the upstream copy of a
feedback, the local copy of a transfer); 30 is never shown and is inferred for AGGREGATED.
A state belongs to one stored record and never changes: feedback and transfer create new
records in another store instead.
"""

from __future__ import annotations

from enum import IntEnum


class FlEvents(IntEnum):
    """`model_state` values."""

    CREATED = 10
    FEEDBACKED = 20
    AGGREGATED = 30
    TRANSFERRED = 40


SNAPSHOT_KIND = "fedstats.snapshot"
"""`model_kind` of a fedstats accumulator snapshot: stores of these aggregate exactly."""
