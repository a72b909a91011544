"""Retry policy carried in an exception's type, shared by every layer of the node.

A `Temporary` error says "not now" rather than "not this": the condition passes by itself
(a federation still connecting, NATS unreachable, a full budget). The one error mapping
(`api/errors.classify`) answers every `Temporary` with 503 and `Retry-After: retry_after`,
whichever layer raised it, so a client never reads a passing condition as its own mistake.
Each layer's tree mixes it in where it applies (`security.errors.Overloaded`,
`federation.errors.NotConnected`, `federation.errors.Unreachable`).

This module imports nothing, so the engine, the store and security may use it too.
"""

from __future__ import annotations


class Temporary(Exception):
    """A condition worth retrying after `retry_after` seconds (at least 1)."""

    retry_after: int = 1

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        if retry_after is not None:
            self.retry_after = max(1, int(retry_after))
