"""Exact aggregation of fedstats snapshots: the rows of every part, as one accumulator.

A store whose models are accumulator snapshots (`model_kind` "fedstats.snapshot") fed back
from its edges holds each edge's whole statistics (edges send state, not deltas). Their
merge is the accumulator of all their rows, so a model built from the root of a hierarchy
equals the model built on the pooled rows. The math is the engine's (`codec`,
`Accumulator.merged`); this module only chooses what to merge and checks it can be.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..engine.accumulator import Accumulator, schema_conflict
from ..engine.codec import decode_snapshot, encode_snapshot
from ..engine.errors import EngineError
from .errors import AggregationError


def merge_snapshots(parts: Sequence[tuple[str, bytes]]) -> tuple[bytes, int]:
    """The snapshot of all parts' rows and its row count; parts are (model id, bytes)."""
    if not parts:
        raise AggregationError("no fedstats snapshots to aggregate")
    accs: list[Accumulator] = []
    for model_id, data in parts:
        try:
            accs.append(decode_snapshot(data))
        except EngineError as e:
            raise AggregationError(f"model {model_id} is not a readable fedstats snapshot: {e}",
                                   model_id=model_id) from e
    for i, acc in enumerate(accs):
        conflict = schema_conflict(acc, accs[:i])
        if conflict:
            raise AggregationError(f"model {parts[i][0]} cannot be merged: {conflict}",
                                   model_id=parts[i][0])
    try:
        merged = Accumulator.merged(accs)
    except EngineError as e:
        raise AggregationError(f"the snapshots cannot be merged: {e}") from e
    return encode_snapshot(merged), merged.n
