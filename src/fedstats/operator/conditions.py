"""metav1.Condition bookkeeping, pure: merge new observations into a status's conditions.

`lastTransitionTime` moves only when a condition's status changes, as Kubernetes' own
controllers do, so `kubectl wait` and humans can tell how long something has been so.
`Ready` is always derived from the conditions it summarizes, never set by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    current: Sequence[Mapping[str, Any]] | None,
    observed: Iterable[Condition],
    generation: int,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """`current` with each observed condition replaced; others kept as they were."""
    stamp = now or now_rfc3339()
    by_type = {c["type"]: dict(c) for c in current or []}
    for cond in observed:
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != cond.status
        by_type[cond.type] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "observedGeneration": generation,
            "lastTransitionTime": stamp if changed else old["lastTransitionTime"],  # type: ignore[index]
        }
    return sorted(by_type.values(), key=lambda c: (c["type"] != "Ready", c["type"]))


def ready(parts: Sequence[Condition]) -> Condition:
    """True when every part is True; else False (or Unknown) naming the first part that is not."""
    for part in parts:
        if part.status != "True":
            return Condition("Ready", "False" if part.status == "False" else "Unknown",
                             part.reason, f"{part.type}: {part.message}".rstrip(": "))
    return Condition("Ready", "True", "AllReady", ", ".join(p.type for p in parts) + " are True")


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
