"""Pulse schedule strings."""

from __future__ import annotations

import pytest

from fedstats.node.federation.errors import ScheduleError
from fedstats.node.federation.schedule import parse_schedule


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("s5", 5), ("m30", 1800), ("h3", 10800), ("d7", 604800), (" M1 ", 60)],
    ids=["seconds", "minutes", "hours", "days", "spaces-and-case"],
)
def test_schedule_reads_unit_and_count(text: str, seconds: int) -> None:
    assert parse_schedule(text).seconds == seconds


@pytest.mark.parametrize(
    "text",
    ["", "m", "30m", "w2", "m0", "m-1", "m1.5"],
    ids=["empty", "no-count", "reversed", "weeks", "zero", "negative", "float"],
)
def test_bad_schedules_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ScheduleError, match="like m30" if text not in ("m0",) else "positive"):
        parse_schedule(text)
