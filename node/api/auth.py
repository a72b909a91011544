"""Authentication of REST requests: a FastAPI dependency that reads the body and verifies it.

The signature covers the raw body, so the dependency reads it — bounded by
`Settings.max_body_bytes`: a Content-Length over the limit is refused before a byte is
read, and a streamed body is counted as it arrives (413 either way) — and leaves it on
`request.state.body` for the handler, which parses it itself (no pydantic on the hot path).

For other routers (the federation's): `Depends(signed_customer)` on any route under
`/symetry/rest/{cid}/...` gives the verified `Customer`, whose id must equal `{cid}`;
`body_of(request)` is the raw body it read.
"""

from __future__ import annotations

from fastapi import Request

from ..security.customers import Customer
from ..security.errors import AuthError
from ..security.signing import CUSTOMER_HEADER, SignedRequest, Verifier
from .errors import BadRequest, PayloadTooLarge


async def read_body(request: Request, limit: int, check: SignedRequest | None = None) -> bytes:
    """The whole body, refusing (413) one over `limit` bytes without buffering it all.

    With `check`, every chunk is hashed as it arrives (MD5 and the signature's HMAC),
    so verifying a large learn costs no extra pass over its bytes afterwards.
    """
    check_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        if check is not None:
            check.update(chunk)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def check_declared_length(request: Request, limit: int) -> None:
    """413 from Content-Length alone, before anything else is looked at."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadRequest(f"Content-Length {length!r} is not a number")
        if int(length) > limit:
            raise PayloadTooLarge(f"body of {int(length)} bytes exceeds the limit of {limit}")


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
    check = verifier.begin(request.method, path, query, request.headers, cid)
    body = await read_body(request, settings.max_body_bytes, check)
    request.state.body = body
    customer = check.finish(body)
    request.state.customer = customer
    return customer
