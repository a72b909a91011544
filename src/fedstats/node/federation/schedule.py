"""Pulse schedules: `s5`, `m30`, `h3`, `d7` — a unit letter and a positive count.

Seconds exist for tests and demos; the reference system knows minutes, hours and days.
Pure: `parse_schedule` turns the text into seconds and says clearly what is wrong.

A schedule is stored, shown in fedInfo and sent to peers, so it is normalised: ASCII digits
only (`\\d` would take Arabic-Indic or fullwidth digits, which `int` then reads), no leading
zeros (`m030` is `m30`), at most `MAX_CHARS` characters looked at, and an error quotes at most
a short prefix of what was sent (never a 5,000-character string back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ScheduleError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DAYS = 365  # a pulse further apart is a mistake (and overflows the event loop's timers)
MAX_CHARS = 16  # "s31536000" (365 days in seconds) is 9; spaces around allowed
_FORM = re.compile(r"([smhd])([0-9]+)", re.ASCII)
_QUOTED = 12


@dataclass(frozen=True)
class Schedule:
    text: str
    seconds: int

    def __str__(self) -> str:
        return self.text


def _quote(text: str) -> str:
    return repr(text) if len(text) <= _QUOTED else f"{text[:_QUOTED]!r}…"


def parse_schedule(text: str) -> Schedule:
    """`m30` -> Schedule('m30', 1800), `M030 ` too; raises ScheduleError."""
    if not isinstance(text, str):
        raise ScheduleError(f"a schedule is text like 'm30', not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ScheduleError(
            f"bad schedule {_quote(text)} ({len(text):,} characters): at most {MAX_CHARS}, "
            "like m30 or h3"
        )
    m = _FORM.fullmatch(text.strip().lower())
    if m is None:
        raise ScheduleError(
            f"bad schedule {_quote(text)}: expected a unit (s, m, h, d) and a count in ASCII "
            "digits, like m30 or h3"
        )
    unit, count = m.group(1), int(m.group(2))  # at most 15 digits: int() is cheap
    if count <= 0:
        raise ScheduleError(f"bad schedule {_quote(text)}: the count must be positive")
    if count * UNITS[unit] > MAX_DAYS * UNITS["d"]:
        raise ScheduleError(f"bad schedule {_quote(text)}: at most {MAX_DAYS} days (d{MAX_DAYS})")
    return Schedule(f"{unit}{count}", count * UNITS[unit])
