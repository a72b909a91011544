"""Who is calling the model store: the `APIKey` header names the customer, and the request
is signed exactly as the node's REST requests are (`security.signing`), over the path it
was sent to (`/jsonrpc`, `/jsonrpc/upload/fl.put_model`, ...) and its raw body, replays
refused. The reference's plain `Secret` header (the customer's key itself) is accepted
instead of a signature only where the configuration enables it, and then only over TLS.

An upload (a model of up to gigabytes) is checked by the signature's HMAC alone
(`UploadSignature`): the string to sign is the REST one, with the `Content-MD5` the client
sent (or "" when it sent none) as the text it covers, and the MD5 is not recomputed. The
HMAC-SHA256 keyed with the customer's secret already covers every byte of the body, so an
MD5 of the same bytes adds no integrity and no authenticity, only a third pass over the
model (docs/modelstore.md, "Signing uploads"). Small calls keep the node's REST verifier
unchanged, Content-MD5 checked.

Failures raise `AuthError`, which the node's one error mapping answers (401): they are
HTTP-level refusals, before any JSON-RPC is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from fastapi import Request

from ...security.customers import Customer
from ...security.errors import AuthError
from ...security.keys import decode_key
from ...security.signing import (
    AUTH_HEADER,
    CUSTOMER_HEADER,
    DATE_HEADER,
    MD5_HEADER,
    SECRET_PLACEHOLDER,
    SignatureMismatch,
    SignedRequest,
    Verifier,
    parse_sym_date,
    string_to_sign,
)
from ..auth import check_declared_length, read_body
from .state import ModelStoreState

APIKEY_HEADER = "APIKey"
SECRET_HEADER = "Secret"


def customer_id(request: Request) -> str:
    """The customer the request names (`APIKey`, or the REST client's customer header)."""
    apikey = request.headers.get(APIKEY_HEADER)
    other = request.headers.get(CUSTOMER_HEADER)
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


class UploadSignature:
    """An upload's REST signature, checked over the body as it streams in by its HMAC alone.

    The same string to sign as `security.signing` (verb, Content-MD5 as sent, secret,
    sym-date, customer, body, path, query), so a client that signs for the REST API signs
    an upload the same way, and one that leaves Content-MD5 out (fedstats' clients, which
    so save a pass over the model) signs "" in its place. Customer, headers and date were
    checked by the node's verifier (`Verifier.begin`) before a byte of the body was read;
    `finish` compares the HMAC and records the signature in the verifier's replay window.
    """

    def __init__(self, verifier: Verifier, check: SignedRequest, request: Request,
                 path: str, query: str | None) -> None:
        self._verifier, self.customer = verifier, check.customer
        headers = request.headers
        self._auth = (headers.get(AUTH_HEADER) or "").strip()
        self._date = headers.get(DATE_HEADER) or ""
        self._md5 = headers.get(MD5_HEADER) or ""
        self._verb, self._path, self._query = request.method, path, query
        head = [self._verb.upper(), self._md5, self.customer.secret_key, self._date,
                self.customer.id]
        self._mac = hmac.new(decode_key(self.customer.secret_key),
                             "".join(f + "\n" for f in head).encode("utf-8", "surrogateescape"),
                             hashlib.sha256)
        self._size = 0

    def update(self, chunk: bytes) -> None:
        if chunk:
            self._mac.update(chunk)
            self._size += len(chunk)

    def finish(self, body: bytes | None = None) -> Customer:
        """The signer, once the whole body went through `update`; AuthError otherwise."""
        if self._size:
            self._mac.update(b"\n")
        tail = [self._path] + ([self._query] if self._query else [])
        self._mac.update("".join(f + "\n" for f in tail).encode("utf-8", "surrogateescape"))
        expected = base64.b64encode(self._mac.digest()).decode("ascii")
        if not hmac.compare_digest(expected, self._auth):
            # what this node signed, the secret masked and the body (a model) elided
            shown = string_to_sign(self._verb, self._md5, SECRET_PLACEHOLDER, self._date,
                                   self.customer.id, f"<{self._size} bytes of body>"
                                   .encode() if self._size else None, self._path, self._query)
            raise SignatureMismatch(shown)
        # The replay window is the verifier's, shared with every other signed request.
        # (security.signing has no public way to record a signature checked elsewhere.)
        self._verifier._remember(self.customer.id, self._auth,
                                 parse_sym_date(self._date).timestamp())
        return self.customer


def begin_upload(request: Request, state: ModelStoreState
                 ) -> tuple[Customer, UploadSignature | None]:
    """`begin` for an upload: (customer, the HMAC-only check to feed the body to, or None
    when the plain Secret header was accepted)."""
    customer, check = begin(request, state)
    if check is None:
        return customer, None
    path, query = _signed_path(request)
    return customer, UploadSignature(state.verifier, check, request, path, query)


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
    """The caller and the body (at most `limit` bytes), the signature checked over it."""
    check_declared_length(request, limit)
    customer, check = begin(request, state)
    body = await read_body(request, limit, check)
    if check is not None:
        customer = check.finish(body)
    return customer, body
