"""Errors of the federation layer.

    FederationError (ValueError)      a request the federation cannot honour       400
    ├── ContractError                 a PSR contract that does not parse (line, column)
    ├── ScheduleError                 a pulse schedule that is not `s|m|h|d` + a count
    ├── WireError                     a message that is not ours, is truncated, or does
    │                                 not decrypt with the federation key
    ├── InviteError                   an invitation that is wrong, reused or expired
    ├── NotFederated                  the project is not part of any federation
    ├── BootstrapError                FEDSTATS_* environment that cannot describe a node
    ├── NotAdmin                      an admin-only operation asked of a peer          403
    ├── NotConnected  (+ Temporary)   the project's federation is still connecting or its
    │                                 agent reviving                          503 + Retry-After
    └── Unreachable   (+ Temporary)   NATS or the federation admin did not answer: retry
                                      later (the bootstrap does, with backoff) 503 + Retry-After

The statuses are the one error mapping's (`api/errors.classify`), read off these types:
a `Temporary` (fedstats.node.errors) is a passing condition, never the client's mistake.
They subclass ValueError like the engine's errors, so a caller that only knows "bad
input" can still tell them from internal failures.
"""

from __future__ import annotations

from ..errors import Temporary


class FederationError(ValueError):
    """Base of every error the federation layer raises."""


class ContractError(FederationError):
    """A PSR contract that does not parse; `line` and `column` are 1-based."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{message}")


class ScheduleError(FederationError):
    """A schedule string that cannot be read."""


class WireError(FederationError):
    """A federation message that cannot be read or authenticated."""


class InviteError(FederationError):
    """An invitation that cannot be used."""


class NotFederated(FederationError):
    """A federation operation on a project that is not part of a federation."""


class NotAdmin(FederationError):
    """An operation only the federation's administrator may perform."""


class NotConnected(Temporary, FederationError):
    """The project's federation exists but its agent is not connected yet: retry shortly."""

    retry_after = 2


class Unreachable(Temporary, FederationError):
    """NATS, or the admin behind it, did not answer: a temporary condition, retry later."""

    retry_after = 5


class BootstrapError(FederationError):
    """The `FEDSTATS_*` environment is incomplete or contradictory (never retried)."""
