"""Errors of the federation layer.

    FederationError (ValueError)      a request the federation cannot honour: answered 400
    ├── ContractError                 a PSR contract that does not parse (line and column)
    ├── ScheduleError                 a pulse schedule that is not `s|m|h|d` + a count
    ├── WireError                     a message that is not ours, is truncated, or does not
    │                                 decrypt with the federation key
    ├── InviteError                   an invitation that is wrong, reused or expired
    ├── NotAdmin                      an admin-only operation asked of a peer
    ├── Unreachable                   NATS or the federation admin did not answer: worth
    │                                 retrying later (the bootstrap does, with backoff)
    └── BootstrapError                FEDSTATS_* environment that cannot describe a node

They subclass ValueError like the engine's errors, so a caller that only knows "bad
input" can still map them to a 400.
"""

from __future__ import annotations


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


class NotAdmin(FederationError):
    """An operation only the federation's administrator may perform."""


class Unreachable(FederationError):
    """NATS, or the admin behind it, did not answer: a temporary condition, retry later."""


class BootstrapError(FederationError):
    """The `FEDSTATS_*` environment is incomplete or contradictory (never retried)."""
