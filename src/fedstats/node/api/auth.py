"""Authentication of REST requests: a FastAPI dependency that reads the body and verifies it.

The signature covers the raw body, so the dependency reads it — bounded by
`Settings.max_body_bytes`: a Content-Length over the limit is refused before a byte is
read, and a streamed body is counted as it arrives (413 either way) — and leaves it on
`request.state.body` for the handler, which parses it itself (no pydantic on the hot path).

Bodies are read before their signature can be checked, so the bytes being read at once,
over the whole node, are bounded too (`Settings.max_body_bytes_reading`, a `BodyBudget`
on `app.state.body_budget`): a request whose declared length (or, streamed, whose bytes
so far) would go over it is refused with 503 and `Retry-After`, without buffering it.

For other routers (the federation's): `Depends(signed_customer)` on any route under
`/symetry/rest/{cid}/...` gives the verified `Customer`, whose id must equal `{cid}`;
`body_of(request)` is the raw body it read.

The signed resource may be the path or the full URL the client addressed
(`addressed_url`: scheme, host and port from the request, or the forwarded ones behind an
ingress); both are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request

from ..security.customers import Customer
from ..security.errors import AuthError, Overloaded
from ..security.signing import CUSTOMER_HEADER, SignedRequest, Verifier
from .errors import BadRequest, PayloadTooLarge


class BodyBudget:
    """Bytes of request bodies being read right now, node-wide, at most `limit`.

    Used from the event loop only (no await between a check and its update): no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise Overloaded(
                f"the node is reading {self.used} bytes of request bodies, at most "
                f"{self.limit} at once: retry shortly", retry_after=1)
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n


async def read_body(request: Request, limit: int, check: SignedRequest | None = None) -> bytes:
    """The whole body, refusing (413) one over `limit` bytes without buffering it all.

    With `check`, every chunk is hashed as it arrives (MD5 and the signature's HMAC),
    so verifying a large learn costs no extra pass over its bytes afterwards. The bytes
    count against the node's `BodyBudget` while they are read (503 when it is spent).
    """
    declared = check_declared_length(request, limit)
    budget: BodyBudget | None = getattr(request.app.state, "body_budget", None)
    reserved = 0
    try:
        if budget is not None and declared:
            budget.take(declared)
            reserved = declared
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
            if budget is not None and size > reserved:
                budget.take(size - reserved)
                reserved = size
            if check is not None:
                check.update(chunk)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        if budget is not None:
            budget.give(reserved)


def check_declared_length(request: Request, limit: int) -> int | None:
    """413 from Content-Length alone, before anything else is looked at; the length."""
    length = request.headers.get("content-length")
    if length is None:
        return None
    if not length.isdigit():
        raise BadRequest(f"Content-Length {length!r} is not a number")
    if int(length) > limit:
        raise PayloadTooLarge(f"body of {int(length)} bytes exceeds the limit of {limit}")
    return int(length)


def addressed_url(headers: Mapping[str, str], scheme: str, path: str) -> str:
    """The URL the client addressed: scheme and host as it sent them (behind an ingress,
    the forwarded ones), then `path` — the reference's "from the protocol name" resource.

    Taking the forwarded headers on trust is safe here: they only choose which text the
    signature must cover, and the signature still needs the customer's secret."""
    proto = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    if proto and scheme in ("ws", "wss"):
        proto = {"http": "ws", "https": "wss"}.get(proto, proto)
    host = (headers.get("x-forwarded-host") or "").split(",")[0].strip() \
        or headers.get("host", "")
    return f"{proto or scheme}://{host}{path}"


def body_of(request: Request) -> bytes:
    """The raw body `signed_customer` read and verified."""
    return request.state.body


async def signed_customer(request: Request, cid: str) -> Customer:
    """The customer who signed this request; 401 (AuthError) otherwise, 401 too when `{cid}`
    names another customer than the signer."""
    settings = request.app.state.settings
    check_declared_length(request, settings.max_body_bytes)
    verifier: Verifier = request.app.state.verifier
    # What the client signed: the path as sent (still percent-encoded) and the raw query.
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1") or None
    signer = request.headers.get(CUSTOMER_HEADER)
    if signer is not None and signer != cid:
        raise AuthError(f"request signed by customer {signer!r} for the path of customer {cid!r}")
    # headers, customer and date are checked before a byte of the body is read
    check = verifier.begin(request.method, path, query, request.headers, cid,
                           [addressed_url(request.headers, request.url.scheme, path)])
    body = await read_body(request, settings.max_body_bytes, check)
    request.state.body = body
    customer = check.finish(body)
    request.state.customer = customer
    return customer
