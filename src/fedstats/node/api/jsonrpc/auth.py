"""Who is calling the model store: the `APIKey` header names the customer, and the request
is signed exactly as the node's REST requests are (`security.signing`), over the path it
was sent to (`/jsonrpc`, `/jsonrpc/upload/fl.put_model`, ...) and its raw body, replays
refused. The reference's plain `Secret` header (the customer's key itself) is accepted
instead of a signature only where the configuration enables it, and then only over TLS.

An upload (a model of up to gigabytes) is checked by the signature's HMAC alone
(`UploadSignature`): the string to sign is the REST one, with the `Content-MD5` the client
sent (or "" when it sent none) as the text it covers, and the MD5 is not recomputed. Its
body is the multipart body with the file part's content replaced by the file's SHA-256
when the client declares it (`X-Model-Sha256`: the file must then hash to it, and is
hashed once, for its content address), else the whole body (docs/modelstore.md,
"Signing uploads"). Small calls are checked exactly as the
node's REST verifier checks them, Content-MD5 included, with the customer's HMAC keyed
once (`Signatures`); the verifier itself words every refusal. A request that signed
right marks its address verified for the node's transport (`api.auth.note_verified`).

Failures raise `AuthError`, which the node's one error mapping answers (401): they are
HTTP-level refusals, before any JSON-RPC is read.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from ...security.customers import Customer
from ...security.errors import AuthError
from ...security.signing import AUTH_HEADER, CUSTOMER_HEADER, SignedRequest, Verifier
from ..auth import note_verified, read_body
from ..errors import BadRequest, PayloadTooLarge
from .signatures import UploadSignature
from .state import ModelStoreState

APIKEY_HEADER = "APIKey"
SECRET_HEADER = "Secret"
_APIKEY, _CUSTOMER, _SECRET, _AUTH = (APIKEY_HEADER.lower(), CUSTOMER_HEADER.lower(),
                                      SECRET_HEADER.lower(), AUTH_HEADER.lower())


def headers_of(request: Request) -> dict[str, str]:
    """The request's headers by lower-case name (the first of a repeated one), read once:
    a small call looks a dozen up, and each lookup of Starlette's Headers scans them all."""
    found: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def customer_id(request: Request, headers: dict[str, str] | None = None) -> str:
    """The customer the request names (`APIKey`, or the REST client's customer header)."""
    if headers is None:
        headers = headers_of(request)
    apikey = headers.get(_APIKEY)
    other = headers.get(_CUSTOMER)
    if apikey and other and apikey != other:
        raise AuthError(f"APIKey {apikey!r} and {CUSTOMER_HEADER} {other!r} name different "
                        "customers")
    cid = apikey or other
    if not cid:
        raise AuthError("missing APIKey header (the customer id)")
    return cid


def _signed_path(request: Request) -> tuple[str, str | None]:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1") or None
    return path, query


def begin(request: Request, state: ModelStoreState) -> tuple[Customer, SignedRequest | None]:
    """Check everything but the body: (customer, the check to feed the body to, or None
    when the plain Secret header was accepted)."""
    cid = customer_id(request)
    secret = request.headers.get(SECRET_HEADER)
    if secret is not None and request.headers.get(AUTH_HEADER) is None:
        return _by_secret(request, state, cid, secret), None
    verifier: Verifier = state.verifier
    path, query = _signed_path(request)
    check = verifier.begin(request.method, path, query, request.headers, cid)
    return check.customer, check


def begin_upload(request: Request, state: ModelStoreState
                 ) -> tuple[Customer, UploadSignature | None]:
    """`begin` for an upload: (customer, the HMAC-only check to feed the body to, or None
    when the plain Secret header was accepted)."""
    customer, check = begin(request, state)
    if check is None:
        return customer, None
    path, query = _signed_path(request)
    return customer, UploadSignature(state.signatures, check, request.method,
                                     request.headers, path, query)


def _by_secret(request: Request, state: ModelStoreState, cid: str, secret: str) -> Customer:
    if not state.config.allow_secret_header:
        raise AuthError("the Secret header is not accepted by this node: sign the request "
                        "(Authorization, sym-date, Content-MD5)")
    if request.url.scheme != "https":
        raise AuthError("the Secret header is accepted over TLS (https) only")
    customer = state.verifier.customers.get(cid)
    if customer is None or not hmac.compare_digest(secret.strip(), customer.secret_key):
        raise AuthError(f"unknown customer {cid!r} or wrong Secret")
    return customer


async def authenticated_body(request: Request, state: ModelStoreState,
                             limit: int) -> tuple[Customer, bytes]:
    """The caller and the body (at most `limit` bytes), the signature checked over it.

    The body is small (a JSON-RPC request): it is read whole, then checked (`Signatures`);
    what can be refused from the headers alone is refused before it is read. The headers
    are read once (`headers_of`), Content-Length included, and the sym-date parsed once."""
    headers = headers_of(request)
    length = headers.get("content-length")
    if length is not None:  # as api.auth.check_declared_length, from the mapping at hand
        if not length.isdigit():
            raise BadRequest(f"Content-Length {length!r} is not a number")
        if int(length) > limit:
            raise PayloadTooLarge(f"body of {int(length)} bytes exceeds the limit of {limit}")
    cid = customer_id(request, headers)
    secret = headers.get(_SECRET)
    if secret is not None and headers.get(_AUTH) is None:
        customer = _by_secret(request, state, cid, secret)
        return customer, await read_body(request, limit)
    when = state.signatures.headers_pass(headers, cid)
    if when is None:
        begin(request, state)  # the node's refusal, before the body is read
    body = await read_body(request, limit)
    path, query = _signed_path(request)
    customer = state.signatures.small(request.method, path, query, headers, body, cid, when)
    note_verified(request)
    return customer, body
