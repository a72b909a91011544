"""Pulse schedules: `s5`, `m30`, `h3`, `d7` — a unit letter and a positive count.

Seconds exist for tests and demos; the reference system knows minutes, hours and days.
Pure: `parse_schedule` turns the text into seconds and says clearly what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ScheduleError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DAYS = 365  # a pulse further apart is a mistake (and overflows the event loop's timers)
_FORM = re.compile(r"([smhd])(\d+)")


@dataclass(frozen=True)
class Schedule:
    text: str
    seconds: int

    def __str__(self) -> str:
        return self.text


def parse_schedule(text: str) -> Schedule:
    """`m30` -> Schedule('m30', 1800); raises ScheduleError."""
    if not isinstance(text, str):
        raise ScheduleError(f"a schedule is text like 'm30', not {type(text).__name__}")
    clean = text.strip().lower()
    m = _FORM.fullmatch(clean)
    if m is None:
        raise ScheduleError(
            f"bad schedule {text[:40]!r}: expected a unit (s, m, h, d) and a count, like m30 or h3"
        )
    digits = m.group(2).lstrip("0")
    if len(digits) > 9:  # int() of thousands of digits is an error of its own
        raise ScheduleError(f"bad schedule {text[:20]!r}: at most {MAX_DAYS} days")
    count = int(digits or "0")
    if count <= 0:
        raise ScheduleError(f"bad schedule {text!r}: the count must be positive")
    seconds = count * UNITS[m.group(1)]
    if seconds > MAX_DAYS * UNITS["d"]:
        raise ScheduleError(f"bad schedule {text!r}: at most {MAX_DAYS} days (d{MAX_DAYS})")
    return Schedule(clean, seconds)
