"""JSON-RPC 2.0 as pure functions: parse a body, bind params, shape responses.

No I/O and no methods here, so the specification's edge cases (section 7's examples:
batches, notifications, invalid JSON, invalid requests, the empty batch) are tested on
these functions alone. The rules followed, from the specification:

* a body that is not JSON answers one -32700 with id null, even when it looked like a batch;
* `[]` answers one -32600; a non-empty array answers an array, one response per request
  that is not a notification, and nothing at all when every member was a notification;
* a request is an object with `jsonrpc` exactly "2.0", a string `method`, `params` absent
  or an array or object, and `id` absent (a notification: never answered, not even with
  an error), a string, a number or null (`id: null` is a request, answered with null);
* an id of the wrong type makes the request invalid (-32600, id null); otherwise the id
  is echoed with its type (1 is not "1").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

MESSAGES = {PARSE_ERROR: "Parse error", INVALID_REQUEST: "Invalid Request",
            METHOD_NOT_FOUND: "Method not found", INVALID_PARAMS: "Invalid params",
            INTERNAL_ERROR: "Internal error"}
_NO_ID = object()


@dataclass(frozen=True)
class Call:
    """A valid request; `notification` when it had no id (then `id` is None)."""

    method: str
    params: list[Any] | dict[str, Any] | None
    id: Any
    notification: bool


@dataclass(frozen=True)
class Invalid:
    """A member that is not a valid request: answered -32600 (with its id if readable)."""

    id: Any
    reason: str


@dataclass(frozen=True)
class Parsed:
    """A body's requests; `error` set (and nothing else) when the body as a whole fails."""

    items: list[Call | Invalid]
    batch: bool
    error: dict[str, Any] | None = None


def error_object(code: int, message: str | None = None, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message or MESSAGES.get(code, "Server error")}
    if data is not None:
        err["data"] = data
    return err


def ok(id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": id}


def fail(id: Any, code: int, message: str | None = None, data: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error_object(code, message, data), "id": id}


def parse(raw: bytes, max_batch: int = 1000) -> Parsed:
    """The requests of a body (see the module docstring)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Parsed([], False, fail(None, PARSE_ERROR))
    if isinstance(doc, list):
        if not doc:
            return Parsed([], True, fail(None, INVALID_REQUEST, data={"reason": "empty batch"}))
        if len(doc) > max_batch:
            return Parsed([], True, fail(None, INVALID_REQUEST, data={
                "reason": f"a batch of {len(doc)} requests; at most {max_batch}"}))
        return Parsed([parse_request(m) for m in doc], True)
    return Parsed([parse_request(doc)], False)


def parse_request(obj: Any) -> Call | Invalid:
    """One request object, or why it is invalid."""
    if not isinstance(obj, dict):
        return Invalid(None, "a request must be a JSON object")
    rid = obj.get("id", _NO_ID)
    if rid is not _NO_ID and not _valid_id(rid):
        return Invalid(None, "id must be a string, a number or null")
    shown = None if rid is _NO_ID else rid
    if obj.get("jsonrpc") != "2.0":
        return Invalid(shown, 'jsonrpc must be exactly "2.0"')
    method = obj.get("method")
    if not isinstance(method, str):
        return Invalid(shown, "method must be a string")
    params = obj.get("params")
    if "params" in obj and not isinstance(params, list | dict):
        return Invalid(shown, "params must be an array or an object")
    unknown = set(obj) - {"jsonrpc", "method", "params", "id"}
    if unknown:
        return Invalid(shown, f"unknown members {sorted(unknown)}")
    return Call(method, params, shown, rid is _NO_ID)


def _valid_id(v: Any) -> bool:
    return v is None or isinstance(v, str) or (isinstance(v, int | float)
                                               and not isinstance(v, bool))


def encode(responses: Sequence[dict[str, Any]], batch: bool) -> bytes | None:
    """The answer body; None when there is nothing to answer (notifications only)."""
    if not responses:
        return None
    return orjson.dumps(list(responses) if batch else responses[0])


# -- params ------------------------------------------------------------------------------
REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """A parameter: its name, accepted Python types, default (REQUIRED if none)."""

    name: str
    types: tuple[type, ...]
    default: Any = REQUIRED


class ParamsError(Exception):
    """Params that do not fit the method: -32602 with `data` naming the parameter."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message, self.data = message, data


def bind(params: list[Any] | dict[str, Any] | None, spec: Sequence[Param]) -> dict[str, Any]:
    """Keyword arguments from by-position or by-name params, every value type-checked."""
    names = [p.name for p in spec]
    if params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):
        if len(params) > len(spec):
            raise ParamsError(f"at most {len(spec)} params ({', '.join(names) or 'none'}), "
                              f"{len(params)} given", expected=names)
        given = dict(zip(names, params, strict=False))
    else:
        unknown = [k for k in params if k not in names]
        if unknown:
            raise ParamsError(f"unknown param(s) {', '.join(map(repr, unknown))}; this "
                              f"method takes {', '.join(names) or 'none'}", param=unknown[0],
                              expected=names)
        given = params
    out: dict[str, Any] = {}
    for p in spec:
        if p.name not in given:
            if p.default is REQUIRED:
                raise ParamsError(f"missing required param {p.name!r}", param=p.name)
            out[p.name] = dict(p.default) if isinstance(p.default, dict) else p.default
            continue
        value = given[p.name]
        if not _is(value, p.types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in p.types)
            raise ParamsError(f"param {p.name!r} must be {want}, not {_kind(value)}",
                              param=p.name)
        out[p.name] = value
    return out


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")
