"""Errors of the security layer.

    SecurityError (Exception)
    ├── AuthError          who is asking cannot be trusted: bad or missing signature, unknown
    │                      customer, stale or future sym-date, replay, Content-MD5 mismatch
    │                      -> the node answers 401 with `reason`
    ├── CryptoError        bytes that do not open: bad ciphertext, wrong key, bad invitation,
    │                      used or expired token -> 400 or 401, as the caller decides
    ├── MessageFormatError a WebSocket message whose framing is broken (also a ValueError)
    └── Overloaded         the node cannot take this request now (too many bodies being
                           read, replay cache full of live signatures): a `Temporary`
                           (fedstats.node.errors) -> 503 with `Retry-After: retry_after`

Messages never carry a secret: a reason may be shown to the client as is.
"""

from __future__ import annotations

from ..errors import Temporary


class SecurityError(Exception):
    """Base of every error raised by `fedstats.node.security`."""


class AuthError(SecurityError):
    """A request that cannot be authenticated; `reason` tells the client what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CryptoError(SecurityError):
    """Data that cannot be decrypted or a token that cannot be redeemed."""


class MessageFormatError(SecurityError, ValueError):
    """A WebSocket message that does not follow `<len>,<header><payload>`."""


class Overloaded(Temporary, SecurityError):
    """A request refused for now, not for what it is: retry after `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: float = 1) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.reason = reason
