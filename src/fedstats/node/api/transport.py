"""What the node's connections may hold at once: one `Gate`, on `app.state.gate`.

The protocol classes (api/server.py) and the body readers (api/auth.py, the WebSocket
route) share it, so every facade is bounded the same way:

- **Connections**, node-wide (`max_connections`) and per client address
  (`max_connections_per_address`): a connection over either is answered 503 / 429 with
  `Retry-After` and closed before anything else is read.
- **Bytes in flight**: bytes of request bodies and WebSocket messages that have been
  *received* (never merely declared) and not yet handled, node-wide at most
  `Settings.max_body_bytes_reading`. Over it: 503 + `Retry-After` (a WebSocket: close 1013).
- **Unverified share**: a signature covers the whole body, so no request can be
  authenticated before its body is in; instead an address that has not yet signed a
  request successfully (in the last `trust_s` seconds) may hold at most
  `max_unverified_bytes_per_address` of that budget, and all such addresses together at
  most `max_unverified_bytes`. Hostile traffic from addresses without a customer's key can
  then take only that share; a customer's own address keeps the rest.

Everything here runs on the event loop (the protocol callbacks and the ASGI tasks of one
server), so there is no lock; the numbers are plain counters.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import NamedTuple

from ..limits import Limits
from ..security.errors import Overloaded

TRUSTED_ADDRESSES = 65_536  # remembered addresses that signed lately (oldest forgotten)


class Refusal(NamedTuple):
    """Why the transport refuses: the HTTP status, the limit's name and value, a message."""

    status: int
    limit: str
    value: int
    message: str


def overloaded(refusal: Refusal) -> Overloaded:
    """The 503 + Retry-After of a refusal; its envelope names the limit and its value."""
    exc = Overloaded(refusal.message, retry_after=1)
    exc.envelope_values = {"limit": refusal.limit, "value": refusal.value}  # type: ignore[attr-defined]
    return exc


class Gate:
    def __init__(self, limits: Limits, max_bytes_reading: int) -> None:
        self.limits = limits
        self.max_bytes = max_bytes_reading
        self.used = 0  # bytes in flight, node-wide
        self.unverified_used = 0
        self.unverified_by_address: dict[str, int] = {}
        self.connections = 0
        self.by_address: dict[str, int] = {}
        self._trusted: OrderedDict[str, float] = OrderedDict()

    # --- trust: an address whose request verified lately ------------------------------
    def verified(self, address: str | None) -> None:
        if not address:
            return
        self._trusted[address] = time.monotonic()
        self._trusted.move_to_end(address)
        while len(self._trusted) > TRUSTED_ADDRESSES:
            self._trusted.popitem(last=False)

    def trusted(self, address: str | None) -> bool:
        seen = self._trusted.get(address or "")
        if seen is None:
            return False
        if time.monotonic() - seen > self.limits.trust_s:
            del self._trusted[address or ""]
            return False
        return True

    # --- connections -------------------------------------------------------------------
    def open(self, address: str) -> Refusal | None:
        """Count a new connection, or say why it is refused (then nothing is counted)."""
        lim = self.limits
        if self.connections >= lim.max_connections:
            return Refusal(503, "max_connections", lim.max_connections,
                           f"the node has {self.connections} open connections: over its limit "
                           f"max_connections={lim.max_connections}; retry shortly")
        held = self.by_address.get(address, 0)
        if held >= lim.max_connections_per_address:
            return Refusal(429, "max_connections_per_address", lim.max_connections_per_address,
                           f"address {address} has {held} open connections: over the node's "
                           f"limit max_connections_per_address="
                           f"{lim.max_connections_per_address}")
        self.connections += 1
        self.by_address[address] = held + 1
        return None

    def close(self, address: str) -> None:
        self.connections -= 1
        held = self.by_address.get(address, 0) - 1
        if held > 0:
            self.by_address[address] = held
        else:
            self.by_address.pop(address, None)

    # --- bytes in flight ---------------------------------------------------------------
    def refuse_bytes(self, n: int, address: str, trusted: bool) -> Refusal | None:
        """Why `n` more received bytes from `address` cannot be held now, or None."""
        if self.used + n > self.max_bytes:
            return Refusal(503, "max_body_bytes_reading", self.max_bytes,
                           f"the node holds {self.used} bytes of request bodies and messages, "
                           f"at most max_body_bytes_reading={self.max_bytes} at once: "
                           "retry shortly")
        if trusted:
            return None
        lim = self.limits
        mine = self.unverified_by_address.get(address, 0)
        if mine + n > lim.max_unverified_bytes_per_address:
            return Refusal(503, "max_unverified_bytes_per_address",
                           lim.max_unverified_bytes_per_address,
                           f"address {address} has not yet signed a request and holds {mine} "
                           f"bytes in flight: over the node's limit "
                           f"max_unverified_bytes_per_address="
                           f"{lim.max_unverified_bytes_per_address} (a signed request from it "
                           "lifts this); retry shortly")
        if self.unverified_used + n > lim.max_unverified_bytes:
            return Refusal(503, "max_unverified_bytes", lim.max_unverified_bytes,
                           f"addresses that have not yet signed a request hold "
                           f"{self.unverified_used} bytes in flight: over the node's limit "
                           f"max_unverified_bytes={lim.max_unverified_bytes}; retry shortly")
        return None

    def take(self, n: int, address: str, trusted: bool) -> None:
        """Hold `n` received bytes (Overloaded, 503, when they do not fit)."""
        refusal = self.refuse_bytes(n, address, trusted)
        if refusal is not None:
            raise overloaded(refusal)
        self.hold(n, address, trusted)

    def hold(self, n: int, address: str, trusted: bool) -> None:
        self.used += n
        if not trusted:
            self.unverified_used += n
            self.unverified_by_address[address] = self.unverified_by_address.get(address, 0) + n

    def give(self, n: int, address: str, unverified: int) -> None:
        """Give back `n` bytes, `unverified` of which were held without trust."""
        self.used -= n
        if unverified:
            self.unverified_used -= unverified
            left = self.unverified_by_address.get(address, 0) - unverified
            if left > 0:
                self.unverified_by_address[address] = left
            else:
                self.unverified_by_address.pop(address, None)


class Held:
    """The bytes one reader (a body, a WebSocket connection) holds on the gate."""

    __slots__ = ("address", "gate", "total", "unverified")

    def __init__(self, gate: Gate, address: str) -> None:
        self.gate = gate
        self.address = address
        self.total = 0
        self.unverified = 0

    def refuse(self, n: int) -> Refusal | None:
        trusted = self.gate.trusted(self.address)
        refusal = self.gate.refuse_bytes(n, self.address, trusted)
        if refusal is None:
            self.gate.hold(n, self.address, trusted)
            self.total += n
            if not trusted:
                self.unverified += n
        return refusal

    def take(self, n: int) -> None:
        refusal = self.refuse(n)
        if refusal is not None:
            raise overloaded(refusal)

    def release(self) -> None:
        if self.total:
            self.gate.give(self.total, self.address, self.unverified)
        self.total = self.unverified = 0
