"""What one reconcile observed: conditions, extra status fields, and the error to retry on.

Reconcilers return an `Outcome` instead of writing status themselves, so the kopf layer
(`handlers.py`) alone patches status and posts Events (Ready's changes, and the ones a
reconciler asks for, like an invitation issued), and a
failed step still reports the steps that did succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .conditions import Condition


@dataclass
class Outcome:
    conditions: list[Condition] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)

    def add(self, cond: Condition) -> Condition:
        self.conditions.append(cond)
        return cond

    def event(self, type_: str, reason: str, message: str) -> None:
        """An Event for users to see (`Normal` or `Warning`), posted by the kopf layer."""
        self.events.append((type_, reason, message))

    def fail(self, cond: Condition, error: Exception) -> Condition:
        """Records a failed step; the first error is the one the handler raises."""
        self.error = self.error or error
        return self.add(cond)
