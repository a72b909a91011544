"""Every exception the node can meet, mapped to an HTTP status and the envelope — here only.

    Temporary (fedstats.node.errors: Overloaded, NotConnected, Unreachable, ...)
                         503 SERVICE_UNAVAILABLE + Retry-After: the condition passes
    AuthError            401 UNAUTHORIZED, with the verifier's reason
    NotAdmin             403 FORBIDDEN (an admin-only federation operation asked of a peer)
    Conflict             409 CONFLICT
    Unavailable          503 (a project quarantined at start: its statistics do not load)
    client mistakes      400 BAD_REQUEST
        NotFound (unknown project / model / job: the spec answers "Cannot Find ..." with 400),
        EngineError (FrameError, SchemaMismatch, SnapshotError, ModelError), BadRequest,
        FederationError (ContractError, ScheduleError, WireError, InviteError, NotFederated,
        BootstrapError), CryptoError and MessageFormatError (a body or message that does not
        open or parse), RequestValidationError (a missing or ill-typed query parameter)
    PayloadTooLarge      413
    LimitExceeded        413 (a data limit of `Settings.limits`: the message names it and its value)
    UnsupportedMedia     415
    HTTPException        its own status (404 for an unknown route, 405, ...)
    anything else        500, logged with its traceback, answered without internals

`classify(exc) -> Classified(status, message, kind, retry_after)` reads `RULES` top down
(the first matching type wins, so subclasses come before their bases). It is shared with
the WebSocket endpoints, which answer on the socket instead of with an HTTP status, and is
the only place a facade's exception becomes a status: a facade package never registers
handlers of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.errors import EngineError
from ..errors import Temporary
from ..federation.errors import FederationError, NotAdmin
from ..limits import LimitExceeded
from ..security.errors import (
    AuthError,
    CryptoError,
    MessageFormatError,
    SecurityError,
)
from ..service import BadRequest, Conflict, NotFound, ServiceError, Unavailable
from .envelope import error

log = logging.getLogger(__name__)


class PayloadTooLarge(Exception):
    """A body over `Settings.max_body_bytes`."""


class ClientGone(Exception):
    """The client closed its connection mid-request: nothing can answer it, nothing failed."""


class UnsupportedMedia(Exception):
    """A body of a Content-Type the endpoint does not read."""


class Classified(NamedTuple):
    status: int
    message: str
    kind: str
    retry_after: int | None = None


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc)


def _decrypt(exc: BaseException) -> str:
    return f"cannot decrypt the body: {exc}"


def _detail(exc: BaseException) -> str:
    return str(getattr(exc, "detail", exc))


def _validation(exc: BaseException) -> str:
    if isinstance(exc, RequestValidationError):
        return _validation_message(exc)
    return str(exc)


# (exception type, HTTP status, kind, message): read top down, the first match wins.
RULES: tuple[tuple[type[BaseException], int, str, Callable[[BaseException], str]], ...] = (
    (AuthError, 401, "auth", _reason),
    (NotAdmin, 403, "not_admin", str),
    (Conflict, 409, "conflict", str),
    (NotFound, 400, "not_found", str),
    (Unavailable, 503, "unavailable", str),
    (FederationError, 400, "federation", str),
    (EngineError, 400, "bad_request", str),
    (BadRequest, 400, "bad_request", str),
    (MessageFormatError, 400, "bad_request", str),
    (CryptoError, 400, "crypto", _decrypt),
    (PayloadTooLarge, 413, "too_large", str),
    (LimitExceeded, 413, "limit", str),  # a data limit of Settings.limits, named
    (UnsupportedMedia, 415, "media_type", str),
    (ClientGone, 400, "client_gone", str),  # counted, never delivered, not an internal error
    (RequestValidationError, 400, "bad_request", _validation),
    (HTTPException, 0, "http", _detail),  # the status is the exception's own
)


def classify(exc: BaseException) -> Classified:
    """The status, a message safe to show, the kind and any Retry-After, for any exception."""
    if isinstance(exc, Temporary):
        kind = "overloaded" if isinstance(exc, SecurityError) else "temporary"
        return Classified(503, _reason(exc), kind, exc.retry_after)
    for exc_type, status, kind, message in RULES:
        if isinstance(exc, exc_type):
            if isinstance(exc, HTTPException):
                status = exc.status_code
            return Classified(status, message(exc), kind)
    log.error("internal error", exc_info=exc)
    return Classified(500, "internal server error (logged on the node)", "internal")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


async def _handle(request: Request, exc: Exception) -> Response:
    found = classify(exc)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(found.kind).inc()
    response = error(found.status, found.message, found.kind,
                     getattr(exc, "envelope_values", None))  # e.g. a 401's stringToSign
    if found.retry_after is not None:
        response.headers["Retry-After"] = str(found.retry_after)
    return response


def install(app: FastAPI) -> None:
    """Route every exception through `classify`.

    The known types are registered one by one: Starlette sends a handler for bare
    `Exception` to its outermost middleware, which re-raises after answering, so only true
    internal errors should take that path.
    """
    known = (Temporary, EngineError, ServiceError, SecurityError, FederationError,
             PayloadTooLarge, LimitExceeded, UnsupportedMedia, ClientGone,
             RequestValidationError,
             HTTPException)
    for exc_type in (*known, Exception):
        app.add_exception_handler(exc_type, _handle)


class CatchAll:
    """Outermost pure-ASGI middleware: no exception leaves the app.

    Starlette's ServerErrorMiddleware answers a 500 (through `_handle`) and then re-raises,
    so uvicorn logs it again and closes the connection: a client's next keep-alive
    request on it fails. Here the exception stops: if nothing was answered yet, the 500
    envelope is sent; either way it is logged (type and message of our own code's
    exception, never a request's headers or body) and the connection stays usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept",
                                   "websocket.close", "websocket.http.response.start"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # already answered (and logged by `classify`)
                log.debug("internal error after the answer was sent: %s", type(exc).__name__)
                return
            log.error("internal error in %s %s", scope.get("method", "WS"),
                      scope.get("path", ""), exc_info=exc)
            if scope["type"] == "http":
                await error(500, "internal server error (logged on the node)",
                            "internal")(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1011})
