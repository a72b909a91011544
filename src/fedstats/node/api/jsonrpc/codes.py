"""Which exception becomes which JSON-RPC error (and HTTP status off `/jsonrpc`): one table.

Application errors use the server range -32001…-32014, with `data.type` naming the
condition and the store, model or upstream concerned beside it. On `/jsonrpc` every
answer is HTTP 200 (the error is in the envelope: that is JSON-RPC's protocol); the
upload and download routes, which are not JSON-RPC responses for the client library,
also carry the HTTP status of this table. Anything not in it is an internal error: -32603
without internals (logged), or, for what the node's one error mapping owns (AuthError,
Overloaded, ...), left to propagate to it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ...engine.errors import EngineError
from ...modelstore import errors as ms
from ...modelstore.multipart import MultipartError
from .protocol import INVALID_PARAMS, ParamsError


class Code(NamedTuple):
    code: int
    http: int


TABLE: tuple[tuple[type[BaseException], Code], ...] = (
    (ParamsError, Code(INVALID_PARAMS, 400)),
    (ms.InvalidParams, Code(INVALID_PARAMS, 400)),
    (MultipartError, Code(INVALID_PARAMS, 400)),
    (ms.StoreNotFound, Code(-32001, 404)),
    (ms.StoreAlreadyExists, Code(-32002, 409)),
    (ms.ModelNotFound, Code(-32003, 404)),
    (ms.UpstreamNotConfigured, Code(-32004, 409)),
    (ms.UpstreamError, Code(-32005, 502)),
    (ms.NoAggregatedModel, Code(-32006, 404)),
    (ms.PartyNotFound, Code(-32007, 404)),
    (ms.IntegrityError, Code(-32008, 500)),
    (ms.ModelTooLarge, Code(-32009, 413)),
    (ms.ConfigError, Code(-32010, 500)),
    (ms.QuotaExceeded, Code(-32011, 507)),
    (ms.Forbidden, Code(-32012, 403)),
    (ms.AggregationError, Code(-32013, 400)),
    (EngineError, Code(-32013, 400)),
    (ms.DigestMismatch, Code(-32014, 400)),
)


def lookup(exc: BaseException) -> tuple[Code, str, dict[str, Any]] | None:
    """(code, message, data) for an exception of the table, else None."""
    for kind, code in TABLE:
        if isinstance(exc, kind):
            data = dict(getattr(exc, "data", None) or {})
            if not isinstance(exc, ParamsError | MultipartError):
                data["type"] = type(exc).__name__
            message = getattr(exc, "message", None) or str(exc)
            return code, message, data
    return None
