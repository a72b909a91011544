"""What one reconcile observed: conditions, extra status fields, and the error to retry on.

Reconcilers return an `Outcome` instead of writing status themselves, so the kopf layer
(`handlers.py`) alone decides how status is patched and which Events are posted, and a
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

    def add(self, cond: Condition) -> Condition:
        self.conditions.append(cond)
        return cond

    def fail(self, cond: Condition, error: Exception) -> Condition:
        """Records a failed step; the first error is the one the handler raises."""
        self.error = self.error or error
        return self.add(cond)
