"""Answer a `/jsonrpc` body: each request bound, run in a worker thread, answered or not.

Methods marked `inline` (one indexed read of the metadata: get_model_info, exists_*) run
on the event loop: a thread hop costs more than the read, and small calls per second are
what a client polling a store sees. Their reads use the model store's own connection,
which never waits for the node's write lock (`modelstore.service._Reader`), so a commit
in another thread never stalls the loop. The protocol's rules are `protocol`'s; which exception is which error is `codes`'. A batch
runs its requests in order (the specification allows any order; in order, a batch that
creates a store and then puts into it means what it says). Notifications run and are
never answered, errors included. An exception outside the table is an internal error:
logged here with its traceback and answered -32603 without internals.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread

from . import codes, protocol
from .methods import METHODS, Ctx, Method, route_of

log = logging.getLogger(__name__)


async def answer(raw: bytes, ctx: Ctx) -> bytes | None:
    """The response body, or None when nothing is to be answered."""
    parsed = protocol.parse(raw)
    if parsed.error is not None:
        return protocol.encode([parsed.error], False)
    responses = []
    for item in parsed.items:
        response = await _one(item, ctx)
        if response is not None:
            responses.append(response)
    return protocol.encode(responses, parsed.batch)


async def _one(item: protocol.Call | protocol.Invalid, ctx: Ctx) -> dict[str, Any] | None:
    if isinstance(item, protocol.Invalid):
        return protocol.fail(item.id, protocol.INVALID_REQUEST, data={"reason": item.reason})
    response = await call(item.method, item.params, item.id, ctx)
    return None if item.notification else response


async def call(name: str, params: Any, rid: Any, ctx: Ctx) -> dict[str, Any]:
    """One method call's response object."""
    method: Method | None = METHODS.get(name)
    if method is None:
        return protocol.fail(rid, protocol.METHOD_NOT_FOUND, data={"method": name})
    route = route_of(method)
    if route is not None:
        return protocol.fail(rid, protocol.METHOD_NOT_FOUND,
                             f"{name} carries model bytes: call it on {route}",
                             {"method": name, "route": route})
    try:
        kwargs = protocol.bind(params, method.params)
        if method.heavy:
            log.info("model store: %s by %s", name, ctx.cid)
        if method.inline:
            result = method.fn(ctx, **kwargs)
        else:
            result = await anyio.to_thread.run_sync(lambda: method.fn(ctx, **kwargs))
    except Exception as exc:
        return error_response(rid, exc, name)
    return protocol.ok(rid, result)


def error_response(rid: Any, exc: BaseException, method: str) -> dict[str, Any]:
    found = codes.lookup(exc)
    if found is None:
        log.error("model store: internal error in %s", method, exc_info=exc)
        return protocol.fail(rid, protocol.INTERNAL_ERROR, data={"method": method})
    code, message, data = found
    return protocol.fail(rid, code.code, message, data or None)
