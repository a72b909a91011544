"""The node's HTTP server: uvicorn, with protocol classes that enforce the transport limits.

uvicorn's defaults leave a node open to cheap attacks: httptools buffers a request line
and headers of any size, a connection that sends nothing (or a header a byte at a time) is
never closed, a declared body that never arrives is waited for forever, and nothing bounds
connections per client. Its options do not close these (`limit_concurrency` counts tasks
and answers only once headers are in; `h11_max_incomplete_event_size` exists only for the
slower h11 parser). So the node keeps uvicorn (and httptools, its fastest parser) and
subclasses its two protocol classes; the limits are fields of `Settings.limits`
(docs/limits.md):

- connections: counted per node and per client address when they open (`Gate.open`); one
  over either is answered 503 or 429 with `Retry-After` and closed;
- `max_header_bytes`, `max_headers`: bytes received while a request's headers are
  incomplete, and header fields, are counted as they arrive: over either, 431 and close;
- `header_timeout_s`: from a connection's opening, or a request's first byte, to its last
  header; a connection idle between requests is closed after `keep_alive_s` (uvicorn's
  keep-alive timer): 408 and close;
- `body_timeout_s` + `min_body_rate`: a body must have arrived within `body_timeout_s`
  plus one second per `min_body_rate` bytes received (time while the node itself holds
  reading back does not count): 408 and close;
- a request answered before its body has all arrived (the app's 503 for the body budget,
  an early 401 or 413) is answered with `connection: close`; the node then shuts its side
  for writing and reads on, dropping bytes, until the declared body is in, the client
  closes or `linger_s` passes, and closes (closing at once would reset a client still
  sending, and the reset can lose the answer before the client reads it);
- WebSocket: bytes received are held on the same `Gate` as bodies, by the same rules
  (node-wide budget, unverified addresses' share), until the app takes the next message;
  over them the socket is closed with 1013 (try again later) and a reason naming the
  limit. Per-message deflate is off: a compressed message would hold far more memory
  than the bytes it was charged for.

Refusals made here carry the REST envelope (the node's own API), naming the limit.
`config(app, settings)` is what both `fedstats node` and the in-process test harness run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..limits import Limits
from ..settings import Settings
from .envelope import envelope_bytes
from .transport import Gate, Held, Refusal

log = logging.getLogger(__name__)

TRY_AGAIN_LATER = 1013
_REASONS = {408: "Request Timeout", 429: "Too Many Requests", 431:
            "Request Header Fields Too Large", 503: "Service Unavailable"}


def refusal_bytes(refusal: Refusal) -> bytes:
    """A whole HTTP/1.1 response for a refusal: the envelope, then the connection closes."""
    body = envelope_bytes(refusal.status, refusal.message,
                          {"error": refusal.message, "errorKind": "limit",
                           "limit": refusal.limit, "value": refusal.value})
    head = [f"HTTP/1.1 {refusal.status} {_REASONS.get(refusal.status, '')}",
            "content-type: application/json", f"content-length: {len(body)}",
            "connection: close"]
    if refusal.status in (429, 503):
        head.append("retry-after: 1")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


class GuardedHttp(HttpToolsProtocol):
    """httptools HTTP/1.1 with the node's connection, header and body limits."""

    gate: Gate  # set on the subclass `config` makes for one app

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: Limits = self.gate.limits
        self._address = ""
        self._counted = False
        self._refused = False
        self._pending: Refusal | None = None  # set by a parser callback, answered after it
        self._in_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_start = 0.0
        self._body_last = 0.0
        self._body_bytes = 0
        self._body_started = False
        self._keep_alive: bool | None = None  # the request's keep-alive, while its body arrives
        self._declared: int | None = None  # the request's Content-Length, if it has one
        self._lingering = False  # answered early: dropping the rest of the body, then closing
        self._linger_left: int | None = None  # bytes of that body still to come, if known
        self._linger_timer: asyncio.TimerHandle | None = None

    # --- connection ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        refusal = self.gate.open(self._address)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._counted = True
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._counted:
            self._counted = False
            self.gate.close(self._address)
        super().connection_lost(exc)

    def _refuse(self, refusal: Refusal) -> None:
        if self._refused:
            return
        self._refused = True
        self._cancel_timers()
        log.info("refused %s: %s=%s", self._address, refusal.limit, refusal.value)
        if not self.transport.is_closing():
            # an answer already begun (an early 401 while its body still trickles in) is
            # not followed by a second one: the connection is only closed
            cycle = self.cycle
            if cycle is None or not cycle.response_started or cycle.response_complete:
                self.transport.write(refusal_bytes(refusal))
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._linger_timer = None

    # --- a request answered before its body arrived: a lingering close ------------------
    def _close_after_answer(self) -> None:
        """What the request's cycle calls for `transport.close()` once it has answered with
        `connection: close` while (maybe) its body was still arriving."""
        transport = self.transport
        if self._lingering or transport.is_closing():
            return
        cycle = self.cycle
        body_whole = self._keep_alive is None  # on_message_complete has run
        no_body_coming = cycle is not None and cycle.waiting_for_100_continue
        left = None if self._declared is None else self._declared - self._body_bytes
        if body_whole or no_body_coming or left == 0 or not transport.can_write_eof():
            # over TLS there is no half-close: the answer is written and the connection closed
            transport.close()
            return
        self._lingering = True
        self._linger_left = left
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        transport.write_eof()  # the answer and a FIN go out; the client may finish sending
        if self.flow is not None:
            self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(self._limits.linger_s, self._linger_over)

    def _linger_over(self) -> None:
        self._linger_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _drop(self, data: bytes) -> None:
        if self._linger_left is not None:
            self._linger_left -= len(data)
            if self._linger_left <= 0:  # the declared body is in: nothing left to reset
                self._linger_over()

    def on_response_complete(self) -> None:
        if self._lingering:  # no keep-alive timer and no pipelined request: it closes
            self.server_state.total_requests += 1
            return
        super().on_response_complete()

    # --- headers -----------------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._limits.header_timeout_s,
                                                      self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        lim = self._limits.header_timeout_s
        self._refuse(Refusal(408, "header_timeout_s", lim,
                             f"the request's headers did not arrive within the node's limit "
                             f"header_timeout_s={lim}"))

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._drop(data)
            return
        if self._refused:
            return
        super().data_received(data)
        if self._pending is not None:
            self._refuse(self._pending)
            return
        if self._in_headers and not self._refused:
            self._header_bytes += len(data)
            lim = self._limits.max_header_bytes
            if self._header_bytes > lim:
                self._refuse(Refusal(431, "max_header_bytes", lim,
                                     f"the request line and headers exceed the node's limit "
                                     f"max_header_bytes={lim}"))

    def send_400_response(self, msg: str) -> None:
        if self._pending is not None:  # our own callback stopped the parser
            self._refuse(self._pending)
            return
        self._refused = True
        self._cancel_timers()
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_count = 0
        self._arm_header_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        lim = self._limits.max_headers
        if self._header_count > lim:
            self._pending = Refusal(431, "max_headers", lim,
                                    f"the request has more header fields than the node's "
                                    f"limit max_headers={lim}")
            raise ValueError("too many header fields")  # stops the parser; answered above
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        previous = self.cycle
        super().on_headers_complete()
        self._body_bytes = 0
        self._body_started = False
        if not self._has_body():
            return
        if self.cycle is not None and self.cycle is not previous:
            # Answered before its body has all arrived (a refusal, an early 401), the
            # request's connection says `connection: close` and closes after a linger
            # (`_close_after_answer`), instead of being kept for keep-alive while a body
            # nobody will use arrives (uvicorn's keep-alive timer, stopped by each late
            # byte, is not started again). Keep-alive comes back once the body has arrived
            # whole before the answer (`on_message_complete`).
            self._keep_alive = self.cycle.keep_alive
            self.cycle.keep_alive = False
            self.cycle.transport = cast(
                asyncio.Transport, _ClosesAfterAnswer(self.transport, self._close_after_answer))
        if not self.expect_100_continue:
            self._start_body_clock()  # with 100-continue: at the first byte, once asked

    def _start_body_clock(self) -> None:
        self._body_started = True
        self._body_start = self._body_last = self.loop.time()
        self._arm_body_timer()

    def _has_body(self) -> bool:
        self._declared = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value.strip()
                if length.isdigit():
                    self._declared = int(length)
                return length not in (b"", b"0")
            if name == b"transfer-encoding":
                return True
        return False

    # --- body --------------------------------------------------------------------------
    def _arm_body_timer(self) -> None:
        self._body_timer = self.loop.call_later(1.0, self._body_tick)

    def _body_tick(self) -> None:
        self._body_timer = None
        now = self.loop.time()
        if self.flow is not None and self.flow.read_paused:
            self._body_start += now - self._body_last  # the node holds reading back
        self._body_last = now
        lim = self._limits
        allowed = self._body_start + lim.body_timeout_s + self._body_bytes / lim.min_body_rate
        if now > allowed:
            self._refuse(Refusal(408, "body_timeout_s", lim.body_timeout_s,
                                 f"the body arrived slower than the node's limits allow: "
                                 f"body_timeout_s={lim.body_timeout_s} plus one second per "
                                 f"min_body_rate={lim.min_body_rate} bytes"))
            return
        self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        if not self._body_started:
            self._start_body_clock()
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        keep, self._keep_alive = self._keep_alive, None
        if keep is not None and self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = keep  # the whole body came before the answer
        super().on_message_complete()

    # --- WebSocket upgrade: the connection's count moves to the WebSocket protocol ------
    def handle_websocket_upgrade(self) -> None:
        self._cancel_timers()
        super().handle_websocket_upgrade()
        protocol = self.transport.get_protocol()
        if isinstance(protocol, GuardedWs) and self._counted:
            protocol.adopt(self._address)
            self._counted = False


class _ClosesAfterAnswer:
    """The transport a request's cycle writes its answer to, whose `close()` is the
    protocol's lingering close; everything else is the connection's transport."""

    def __init__(self, transport: asyncio.Transport, close: Callable[[], None]) -> None:
        self._transport = transport
        self.close = close

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedWs(WebSocketsSansIOProtocol):
    """WebSocket connections whose received bytes are held on the node's `Gate`."""

    gate: Gate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted_address: str | None = None
        self._held: Held | None = None
        self._delivered: list[Held] = []

    def adopt(self, address: str) -> None:
        """Take over the connection's count from the HTTP protocol that upgraded it."""
        self._counted_address = address

    def data_received(self, data: bytes) -> None:
        if self._held is None:
            self._held = Held(self.gate, self.client[0] if self.client else "")
        refusal = self._held.refuse(len(data))
        if refusal is not None:
            self._refuse(refusal)
            return
        super().data_received(data)

    def _refuse(self, refusal: Refusal) -> None:
        log.info("WebSocket closed for %s: %s=%s", self.client, refusal.limit, refusal.value)
        reason = f"{refusal.limit}={refusal.value}: retry later"
        try:
            if self.handshake_complete and not self.close_sent:
                self.conn.send_close(TRY_AGAIN_LATER, reason)
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.close_sent = True
        finally:
            self.transport.close()

    def send_receive_event_to_app(self) -> None:
        # the bytes of this message stay held until the app asks for the next one
        if self._held is not None:
            self._delivered.append(self._held)
            self._held = None
        super().send_receive_event_to_app()

    async def receive(self) -> Any:
        while self._delivered:
            self._delivered.pop().release()
        return await super().receive()

    def connection_lost(self, exc: Exception | None) -> None:
        for held in (*self._delivered, *([self._held] if self._held else [])):
            held.release()
        self._delivered.clear()
        self._held = None
        if self._counted_address is not None:
            self.gate.close(self._counted_address)
            self._counted_address = None
        super().connection_lost(exc)


def config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's Config for `app` with the node's guarded protocols and its limits."""
    gate: Gate = app.state.gate
    http = type("NodeHttp", (GuardedHttp,), {"gate": gate})
    ws = type("NodeWs", (GuardedWs,), {"gate": gate})
    return uvicorn.Config(
        app, http=http, ws=ws, ws_max_size=settings.max_ws_message_bytes,
        ws_per_message_deflate=False, timeout_keep_alive=settings.limits.keep_alive_s,
        **options)


def run(app: Any, settings: Settings, **options: Any) -> None:
    """Serve `app` until stopped (the `fedstats node` command)."""
    uvicorn.Server(config(app, settings, host=settings.host, port=settings.port,
                          **options)).run()
