"""Authentication of REST requests: a FastAPI dependency that reads the body and verifies it.

The signature covers the raw body, so the dependency reads it — bounded by
`Settings.max_body_bytes`: a Content-Length over the limit is refused before a byte is
read, and a streamed body is counted as it arrives (413 either way) — and leaves it on
`request.state.body` for the handler, which parses it itself (no pydantic on the hot path).

Bodies are read before their signature can be checked, so the bytes received and not yet
handled, over the whole node, are bounded too (`Settings.max_body_bytes_reading`, on the
`Gate` at `app.state.gate`, api/transport.py), and an address that has not signed a request
lately holds at most a small share of them: over either, 503 and `Retry-After`, naming the
limit. Only bytes that arrived count: a body declared and never sent holds nothing (the
transport closes it after `body_timeout_s`, api/server.py). A signed request marks its
address as verified (`note_verified`).

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
from starlette.requests import ClientDisconnect

from ..security.customers import Customer
from ..security.errors import AuthError
from ..security.signing import CUSTOMER_HEADER, SignedRequest, Verifier
from .errors import BadRequest, ClientGone, PayloadTooLarge
from .transport import Gate, Held


async def read_body(request: Request, limit: int, check: SignedRequest | None = None) -> bytes:
    """The whole body, refusing (413) one over `limit` bytes without buffering it all.

    With `check`, every chunk is hashed as it arrives (MD5 and the signature's HMAC),
    so verifying a large learn costs no extra pass over its bytes afterwards. The bytes
    *received* are held on the node's `Gate` while they are read (503 naming the limit
    when the node's budget, or an unverified address's share of it, is spent); a body that
    is declared and never sent holds nothing. A client that goes away mid-body raises
    `ClientGone` (no answer can reach it; not an internal error).
    """
    check_declared_length(request, limit)
    gate: Gate | None = getattr(request.app.state, "gate", None)
    held = Held(gate, _address(request)) if gate is not None else None
    try:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
                if held is not None and chunk:
                    held.take(len(chunk))
                if check is not None:
                    check.update(chunk)
                chunks.append(chunk)
        except ClientDisconnect:
            raise ClientGone("the client closed the connection before its body was read") \
                from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        if held is not None:
            held.release()


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def note_verified(request: Request) -> None:
    """Tell the transport that this request's address signed successfully (api/transport)."""
    gate: Gate | None = getattr(request.app.state, "gate", None)
    if gate is not None:
        gate.verified(_address(request))


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
    note_verified(request)
    request.state.customer = customer
    return customer
