"""Waiting on another process's state when it offers nothing to subscribe to.

A node's merged row count or a peer's pulse lives in another process and is read over
REST; there is no event to await, so `eventually` re-reads it (every 0.1 s) until it holds
or `timeout` passes. Where an event exists (a child's log line, an agent's `changed`
condition, a socket bound before a server starts) the harness and the tests await that
instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 30.0, what: str = "",
               interval: float = 0.1) -> T:  # fmt: skip
    """`check()`'s first truthy answer; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)  # polling another process over REST: nothing to await
    return value
