"""Every exception the node API can meet, mapped to an HTTP status and the envelope — here only.

    client mistakes (400 BAD_REQUEST)
        EngineError (FrameError, SchemaMismatch, SnapshotError, ModelError), BadRequest,
        NotFound (unknown project / model / job: the spec answers "Cannot Find ..." with 400),
        CryptoError and MessageFormatError (a body or message that does not open or parse),
        RequestValidationError (a missing or ill-typed query parameter)
    AuthError            401 UNAUTHORIZED, with the verifier's reason
    Overloaded           503 with Retry-After (body budget or replay cache full: retry later)
    Conflict             409 CONFLICT
    Unavailable          503 (a project quarantined at start: its statistics do not load)
    PayloadTooLarge      413
    UnsupportedMedia     415
    HTTPException        its own status (404 for an unknown route, 405, ...)
    anything else        500, logged with its traceback, answered without internals

`classify(exc) -> (status, message, kind)` is shared with the WebSocket endpoints, which
answer on the socket instead of with an HTTP status.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.errors import EngineError
from ..security.errors import (
    AuthError,
    CryptoError,
    MessageFormatError,
    Overloaded,
    SecurityError,
)
from ..service import BadRequest, Conflict, NotFound, ServiceError, Unavailable
from .envelope import error

log = logging.getLogger(__name__)


class PayloadTooLarge(Exception):
    """A body over `Settings.max_body_bytes`."""


class UnsupportedMedia(Exception):
    """A body of a Content-Type the endpoint does not read."""


def classify(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, message safe to show, kind) for any exception."""
    if isinstance(exc, AuthError):
        return 401, exc.reason, "auth"
    if isinstance(exc, Overloaded):
        return 503, exc.reason, "overloaded"
    if isinstance(exc, Conflict):
        return 409, str(exc), "conflict"
    if isinstance(exc, NotFound):
        return 400, str(exc), "not_found"
    if isinstance(exc, Unavailable):
        return 503, str(exc), "unavailable"
    if isinstance(exc, EngineError | BadRequest | MessageFormatError):
        return 400, str(exc), "bad_request"
    if isinstance(exc, CryptoError):
        return 400, f"cannot decrypt the body: {exc}", "crypto"
    if isinstance(exc, PayloadTooLarge):
        return 413, str(exc), "too_large"
    if isinstance(exc, UnsupportedMedia):
        return 415, str(exc), "media_type"
    if isinstance(exc, RequestValidationError):
        return 400, _validation_message(exc), "bad_request"
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), "http"
    log.error("internal error", exc_info=exc)
    return 500, "internal server error (logged on the node)", "internal"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


async def _handle(request: Request, exc: Exception) -> Response:
    status, message, kind = classify(exc)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(kind).inc()
    response = error(status, message, kind)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def install(app: FastAPI) -> None:
    """Route every exception through `classify`.

    The known types are registered one by one: Starlette sends a handler for bare
    `Exception` to its outermost middleware, which re-raises after answering, so only true
    internal errors should take that path.
    """
    known = (EngineError, ServiceError, SecurityError, PayloadTooLarge, UnsupportedMedia,
             RequestValidationError, HTTPException)
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
