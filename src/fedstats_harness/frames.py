"""DataFrames as the node's REST API takes them, built from rows of numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def frame(rows: Iterable[Iterable[Any]], names: Sequence[str] | None = None,
          types: str | Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A DataFrame of `rows` (all C unless `types` says otherwise)."""
    data = [list(r) for r in rows]
    width = len(data[0]) if data else len(names or [])
    names = list(names or [f"x{j}" for j in range(width)])
    return {
        "attributeNames": names,
        "attributeTypes": list(types or "C" * width),
        "data": [[str(v) for v in r] for r in data],
    }
