"""Request signing as the reference system does it, for REST and for WebSocket messages.

REST: `Authorization` = Base64(HMAC-SHA256(decoded secret, StringToSign)) where
StringToSign is, each followed by `\\n`: verb, Content-MD5, the secret's Base64 text,
sym-date, customer id, the body (left out with its newline when empty), the path, the
query string (left out when empty). WebSocket (spec 003): the same fields without the verb
and the query, then the service path and each extra key, joined by `\\n`.

The resource signed may be the path alone (what fedstats' client and the reference's
client `sym-rest-rc` sign for REST) or the full URL the client addressed — scheme, host
and port, then the path (the reference's security page: "from the protocol name up to
the query string"; `sym-rest-rc` signs `ws://host:port/symetry/ws/learn` for WebSocket):
the verifier is given the alternatives the request allows and accepts any of them.
`sym-rest-rc` also ends its WebSocket string to sign with a `\\n` after the last extra
key, as the REST layout does; both that and the page's joined form are accepted.

Errors start with the reference's error text (symetryml-rest-api-security.md, e.g.
"Invalid Signature", "Invalid User") followed by what to fix; a bad signature carries
the expected string to sign with the secret replaced by `SECRETKEY`
(`SignatureMismatch.string_to_sign`, answered as `values.stringToSign`).

Pure functions build and sign; `Verifier` holds the only state, the signatures seen
within the date window, so a captured request cannot be replayed. Its memory is bounded:
an entry can be dropped once its date is too old to be accepted anyway, and while
`max_seen` live entries are held new requests are refused (`Overloaded`), never a live
entry evicted.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from .customers import Customer
from .errors import AuthError, MessageFormatError, Overloaded
from .keys import decode_key

AUTH_HEADER = "Authorization"
DATE_HEADER = "sym-date"
MD5_HEADER = "Content-MD5"
# The reference puts the customer id in the REST path; surfaces without it (JSON-RPC,
# Flow) read it from this header, so the client always sends it.
CUSTOMER_HEADER = "sym-customer-id"
_SYM_DATE_FMT = "%Y-%m-%d %H:%M:%S"
_ELIDE_BODY_OVER = 256

ExtraKeys = Mapping[str, Any] | Sequence[Any] | None


class SignatureMismatch(AuthError):
    """A well-formed request whose signature is not the expected one (401).

    `string_to_sign` is what this node signed, the secret shown as `SECRETKEY`: the
    envelope answers it as `values.stringToSign`, as the reference does."""

    def __init__(self, string_to_sign: str) -> None:
        super().__init__("Invalid Signature: signature does not match; expected string to "
                         f"sign: {string_to_sign!r}")
        self.string_to_sign = string_to_sign

    @property
    def envelope_values(self) -> dict[str, str]:
        return {"stringToSign": self.string_to_sign}


# -- sym-date --------------------------------------------------------------------------

def format_sym_date(dt: datetime | None = None) -> str:
    """UTC `yyyy-MM-dd HH:mm:ss;nanos` (nanos: 9 digits); now, to the nanosecond, by default."""
    if dt is None:
        ns = time.time_ns()
        dt, nanos = datetime.fromtimestamp(ns // 1_000_000_000, UTC), ns % 1_000_000_000
    else:
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
        nanos = dt.microsecond * 1000
    return f"{dt.strftime(_SYM_DATE_FMT)};{nanos:09d}"


def parse_sym_date(s: str) -> datetime:
    """An aware UTC datetime from a sym-date (`;nanos` optional, as in the spec's samples)."""
    text = s.strip() if isinstance(s, str) else ""
    base, _, nanos = text.partition(";")
    try:
        dt = datetime.strptime(base, _SYM_DATE_FMT).replace(tzinfo=UTC)
        if nanos:
            if not nanos.isdigit() or len(nanos) > 9:
                raise ValueError(nanos)
            dt = dt.replace(microsecond=int(nanos) // 1000)
    except ValueError as e:
        raise AuthError(f"Invalid Date Format: malformed sym-date {s!r}: expected UTC "
                        "'yyyy-MM-dd HH:mm:ss;nanos'") from e
    return dt


# -- REST ------------------------------------------------------------------------------

def content_md5(body: bytes) -> str:
    """Base64 of the MD5 of `body`; "" for an empty body."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii") if body else ""


def _body_text(body: bytes | str | None) -> str | None:
    if not body:
        return None
    # surrogateescape keeps arbitrary bytes round-tripping through the UTF-8 string.
    return body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body


def string_to_sign(verb: str, content_md5: str, secret_b64: str, sym_date: str,
                   customer_id: str, body: bytes | None, path: str, query: str | None) -> str:
    """The exact text the REST signature covers (see the module docstring)."""
    fields = [verb.upper(), content_md5, secret_b64, sym_date, customer_id]
    text = _body_text(body)
    if text is not None:
        fields.append(text)
    fields.append(path)
    if query:
        fields.append(query)
    return "".join(f + "\n" for f in fields)


def rest_signature(verb: str, content_md5: str, secret_b64: str, sym_date: str,
                   customer_id: str, body: bytes | None, path: str, query: str | None) -> str:
    """`sign(secret, string_to_sign(...))`, fed to the HMAC piece by piece.

    Equal to signing the string, since the body's text round-trips to its bytes
    (surrogateescape), but without decoding, joining and re-encoding a body of many
    megabytes three times on every learn.
    """
    head = [verb.upper(), content_md5, secret_b64, sym_date, customer_id]
    tail = [path] + ([query] if query else [])
    mac = hmac.new(decode_key(secret_b64), _utf8("".join(f + "\n" for f in head)),
                   hashlib.sha256)
    if body:
        mac.update(body if isinstance(body, bytes) else _utf8(body))
        mac.update(b"\n")
    mac.update(_utf8("".join(f + "\n" for f in tail)))
    return base64.b64encode(mac.digest()).decode("ascii")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def sign(secret_b64: str, sts: str) -> str:
    """Base64(HMAC-SHA256(decoded secret, UTF-8 of `sts`))."""
    mac = hmac.new(decode_key(secret_b64), sts.encode("utf-8", "surrogateescape"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def signed_headers(customer_id: str, secret_b64: str, verb: str, path: str,
                   query: str | None = None, body: bytes = b"",
                   sym_date: str | None = None) -> dict[str, str]:
    """Authorization, sym-date, Content-MD5 and the customer id header for one request."""
    date = sym_date or format_sym_date()
    md5 = content_md5(body)
    signature = rest_signature(verb, md5, secret_b64, date, customer_id, body, path, query)
    return {AUTH_HEADER: signature, DATE_HEADER: date, MD5_HEADER: md5,
            CUSTOMER_HEADER: customer_id}


def signed_headers_streamed(customer_id: str, secret_b64: str, verb: str, path: str,
                            chunks: Callable[[], Iterable[bytes]], query: str | None = None,
                            sym_date: str | None = None) -> dict[str, str]:
    """`signed_headers` for a body too large to hold (a model upload): `chunks()` yields the
    body and is called twice, once for its Content-MD5 and once for the HMAC that covers it."""
    md5, size = hashlib.md5(), 0
    for chunk in chunks():
        md5.update(chunk)
        size += len(chunk)
    md5_b64 = base64.b64encode(md5.digest()).decode("ascii") if size else ""
    date = sym_date or format_sym_date()
    head = [verb.upper(), md5_b64, secret_b64, date, customer_id]
    mac = hmac.new(decode_key(secret_b64), _utf8("".join(f + "\n" for f in head)),
                   hashlib.sha256)
    if size:
        for chunk in chunks():
            mac.update(chunk)
        mac.update(b"\n")
    mac.update(_utf8("".join(f + "\n" for f in [path] + ([query] if query else []))))
    return {AUTH_HEADER: base64.b64encode(mac.digest()).decode("ascii"), DATE_HEADER: date,
            MD5_HEADER: md5_b64, CUSTOMER_HEADER: customer_id}


OUT_OF_SYNC = "Please update your server time, it is likely out of sync with UTC"
SECRET_PLACEHOLDER = "SECRETKEY"  # as the reference shows it (security page)


def _masked_sts(sts: str, secret_b64: str, body: str | None) -> str:
    """The string to sign as a client may see it: no character of the secret (a prefix
    would be a free head start to anyone probing with bad signatures), a long body elided."""
    shown = sts.replace(secret_b64, SECRET_PLACEHOLDER, 1)
    if body is not None and len(body) > _ELIDE_BODY_OVER:
        shown = shown.replace(body, f"{body[:64]}...<{len(body)} chars>", 1)
    return shown


# -- WebSocket -------------------------------------------------------------------------

def _extra_values(extra_keys: ExtraKeys) -> list[str]:
    if not extra_keys:
        return []
    values = extra_keys.values() if isinstance(extra_keys, Mapping) else extra_keys
    if isinstance(values, str):
        raise MessageFormatError("extraKeys must be a list or an object, not a string")
    return [str(v) for v in values]


def ws_string_to_sign(content_md5: str, secret_b64: str, sym_date: str, customer_id: str,
                      payload: str, service_path: str, extra_keys: ExtraKeys = None,
                      trailing_newline: bool = False) -> str:
    """Spec 003: md5, secret, date, customer, payload, service path, each extra key;
    `\\n`-joined (with `trailing_newline`, each followed by `\\n`, as sym-rest-rc signs)."""
    fields = [content_md5, secret_b64, sym_date, customer_id, payload, service_path]
    text = "\n".join(fields + _extra_values(extra_keys))
    return text + "\n" if trailing_newline else text


def ws_sign(secret_b64: str, sym_date: str, customer_id: str, payload: str,
            service_path: str, extra_keys: ExtraKeys = None) -> str:
    """The Authorization value of one WebSocket message."""
    md5 = content_md5(payload.encode("utf-8"))
    return sign(secret_b64, ws_string_to_sign(
        md5, secret_b64, sym_date, customer_id, payload, service_path, extra_keys))


def ws_signed_header(customer_id: str, secret_b64: str, payload: str, service_path: str,
                     extra_keys: ExtraKeys = None, sym_date: str | None = None) -> dict[str, Any]:
    """`{"headers": [date, md5, authorization, customer id], "extraKeys": ...}`."""
    date = sym_date or format_sym_date()
    md5 = content_md5(payload.encode("utf-8"))
    auth = ws_sign(secret_b64, date, customer_id, payload, service_path, extra_keys)
    keys: Any = dict(extra_keys) if isinstance(extra_keys, Mapping) else list(extra_keys or [])
    return {"headers": [date, md5, auth, customer_id], "extraKeys": keys}


def build_ws_message(header: Mapping[str, Any], payload: str) -> str:
    """`<len>,<header JSON><payload>`; the length counts the header's characters."""
    head = orjson.dumps(dict(header)).decode("utf-8")
    return f"{len(head)},{head}{payload}"


_BETWEEN = re.compile(r"-?[0-9]*")


def parse_ws_message(text: str) -> tuple[dict[str, Any], str]:
    """The header object and the payload of a framed message; MessageFormatError if broken.

    `<header length>,<header JSON><payload>` (the page's protocol); the length may count
    the header's characters (spec 003) or its UTF-8 bytes (sym-rest-rc's `String::len`),
    which differ only for non-ASCII ids. The page's samples also show a message without
    the length, `<header JSON><digits><payload>`: accepted too.
    """
    if not isinstance(text, str):
        raise MessageFormatError("a WebSocket message must be text")
    if text.startswith("{"):
        return _parse_unprefixed(text)
    size, comma, rest = text.partition(",")
    if not comma or not size.isdigit() or len(size) > 9:
        raise MessageFormatError("message must start with '<header length>,'")
    n = int(size)
    if n > len(rest) and n > len(rest.encode("utf-8")):
        raise MessageFormatError(f"header length {n} exceeds the {len(rest)} characters sent")
    header = _header_object(rest[:n])
    if header is not None:
        return header, rest[n:]
    raw = rest.encode("utf-8")
    try:
        head = raw[:n].decode("utf-8")
    except UnicodeDecodeError:
        head = None
    header = _header_object(head) if head is not None else None
    if header is None:
        raise MessageFormatError(f"the first {n} characters after ',' are not a JSON header")
    return header, raw[n:].decode("utf-8")


def _header_object(text: str) -> dict[str, Any] | None:
    try:
        header = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(header, dict):
        raise MessageFormatError("the header must be a JSON object")
    return header


def _parse_unprefixed(text: str) -> tuple[dict[str, Any], str]:
    try:
        header, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise MessageFormatError(f"the message does not start with a JSON header: {e}") from e
    if not isinstance(header, dict):
        raise MessageFormatError("the header must be a JSON object")
    gap = _BETWEEN.match(text, end)
    start = gap.end() if gap else end
    return header, text[start:]


# -- verification ----------------------------------------------------------------------

class Verifier:
    """Checks signed requests against known customers, inside a date window, once each."""

    def __init__(self, customers: Mapping[str, Customer], past_s: float = 300,
                 future_s: float = 60, clock: Callable[[], float] = time.time,
                 max_seen: int = 1_000_000) -> None:
        self.customers = customers
        self.past_s, self.future_s = past_s, future_s
        self.clock = clock
        self.max_seen = max_seen
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def verify(self, verb: str, path: str, query: str | None, headers: Mapping[str, str],
               body: bytes, customer_id: str) -> Customer:
        """The customer who signed this REST request; AuthError with a reason otherwise."""
        check = self.begin(verb, path, query, headers, customer_id)
        check.update(body)
        return check.finish(body)

    def begin(self, verb: str, path: str, query: str | None, headers: Mapping[str, str],
              customer_id: str, alternatives: Sequence[str] = ()) -> SignedRequest:
        """Start checking a REST request before its body has arrived.

        Customer, headers and date are checked at once (a bad request is refused before
        its body is read); the body's MD5 and HMAC are then fed chunk by chunk as it
        streams in (`update`), and `finish` compares them and records the signature.
        `alternatives` are other resources the client may have signed instead of `path`
        (the full URL it addressed); any of them is accepted.
        """
        customer = self._customer(customer_id)
        auth, date = _header(headers, AUTH_HEADER), _header(headers, DATE_HEADER)
        if not auth:
            raise AuthError("Authentication header is null: missing Authorization header")
        if not date:
            raise AuthError("sym-date header is null: missing sym-date header")
        when = self._check_date(date)
        return SignedRequest(self, customer, auth.strip(), date, when,
                             _header(headers, MD5_HEADER), verb, path, query, alternatives)

    def verify_ws(self, header: Mapping[str, Any], payload: str, service_path: str,
                  alternatives: Sequence[str] = ()) -> Customer:
        """The customer who signed this WebSocket message; AuthError otherwise.

        The service path may be signed as `service_path` or any of `alternatives` (the
        full `ws://host:port/...` URL), in the page's joined layout or with a trailing
        newline; the page's form with the path is tried first (the hot path)."""
        fields = header.get("headers") if isinstance(header, Mapping) else None
        if not isinstance(fields, list) or len(fields) != 4 or not all(
                isinstance(f, str) for f in fields):
            raise AuthError("Authentication header is null: header 'headers' must be "
                            "[date, md5, authorization, customer id]")
        date, sent_md5, auth, customer_id = fields
        customer = self._customer(customer_id)
        when = self._check_date(date)
        md5 = content_md5(payload.encode("utf-8"))
        if sent_md5 != md5:
            raise AuthError("Md5 do not match: Content-MD5 does not match the payload")
        extra = header.get("extraKeys")
        if extra is not None and not isinstance(extra, list | dict):
            raise AuthError("extraKeys must be a list or an object")
        sent = auth.strip()
        first = ""
        for resource in (service_path, *alternatives):
            for trailing in (False, True):
                sts = ws_string_to_sign(md5, customer.secret_key, date, customer_id, payload,
                                        resource, extra, trailing)
                first = first or sts
                if hmac.compare_digest(sign(customer.secret_key, sts), sent):
                    self._remember(customer_id, sent, when)
                    return customer
        raise SignatureMismatch(_masked_sts(first, customer.secret_key, payload or None))
        return customer

    def _customer(self, customer_id: str) -> Customer:
        customer = self.customers.get(customer_id) if isinstance(customer_id, str) else None
        if customer is None:
            raise AuthError(f"Invalid User: unknown customer {customer_id!r}")
        return customer

    def _check_date(self, date: str) -> float:
        when = parse_sym_date(date).timestamp()
        now = self.clock()
        if when < now - self.past_s:
            raise AuthError(f"{OUT_OF_SYNC}: stale sym-date: {now - when:.0f} s old, at most {self.past_s:g} "
                            "accepted; check the client's clock (UTC)")
        if when > now + self.future_s:
            raise AuthError(f"{OUT_OF_SYNC}: sym-date {when - now:.0f} s in the future, at most "
                            f"{self.future_s:g} accepted; check the client's clock (UTC)")
        return when

    def record(self, customer_id: str, signature: str, when: float) -> None:
        """Record a signature another checker of this node's scheme verified (the model
        store's fast path), in the same replay window: AuthError if it was seen."""
        self._remember(customer_id, signature, when)

    def _remember(self, customer_id: str, signature: str, when: float) -> None:
        """Record a signature; AuthError if it was seen inside the window.

        Only entries too old to be accepted anyway are dropped. When `max_seen` live
        signatures are held, the request is refused (`Overloaded`, 503) rather than
        evicting a live one, which would make it replayable.
        """
        key = (customer_id, signature)
        with self._lock:
            now = self.clock()
            while self._expiry and self._expiry[0][0] < now - self.past_s:
                _, old = heapq.heappop(self._expiry)
                self._seen.pop(old, None)
            if key in self._seen:
                raise AuthError("replayed request: this signature was already used")
            if len(self._seen) >= self.max_seen:
                wait = self._expiry[0][0] + self.past_s - now if self._expiry else 1
                raise Overloaded("too many requests in the replay window: retry shortly",
                                 retry_after=math.ceil(wait))
            self._seen[key] = when
            heapq.heappush(self._expiry, (when, key))


class SignedRequest:
    """A REST request whose body is being hashed as it arrives (see `Verifier.begin`).

    The string to sign has the Content-MD5 before the body, so the HMAC starts from the
    MD5 the client sent; `finish` then checks that MD5 against the body's own.
    """

    def __init__(self, verifier: Verifier, customer: Customer, auth: str, date: str,
                 when: float, sent_md5: str | None, verb: str, path: str,
                 query: str | None, alternatives: Sequence[str] = ()) -> None:
        self._verifier, self.customer, self._auth = verifier, customer, auth
        self._date, self._when, self._sent_md5 = date, when, sent_md5
        self._verb, self._path, self._query = verb, path, query
        self._alternatives = [a for a in alternatives if a != path]
        head = [verb.upper(), sent_md5 or "", customer.secret_key, date, customer.id]
        self._mac = hmac.new(decode_key(customer.secret_key),
                             _utf8("".join(f + "\n" for f in head)), hashlib.sha256)
        self._md5 = hashlib.md5()
        self._size = 0

    def update(self, chunk: bytes) -> None:
        if chunk:
            self._md5.update(chunk)
            self._mac.update(chunk)
            self._size += len(chunk)

    def finish(self, body: bytes | None = None) -> Customer:
        """The signer, once the whole body went through `update`; AuthError otherwise.

        `body` (the same bytes) is used only to show the expected string to sign."""
        if self._size:
            md5 = base64.b64encode(self._md5.digest()).decode("ascii")
            if self._sent_md5 is None:
                raise AuthError("Md5 do not match: missing Content-MD5 header for a request "
                                "with a body")
            if self._sent_md5 != md5:
                raise AuthError("Md5 do not match: Content-MD5 does not match the body")
            self._mac.update(b"\n")
        query = [self._query] if self._query else []
        matched = False
        for resource in (self._path, *self._alternatives):
            mac = self._mac.copy()
            mac.update(_utf8("".join(f + "\n" for f in [resource, *query])))
            expected = base64.b64encode(mac.digest()).decode("ascii")
            if hmac.compare_digest(expected, self._auth):
                matched = True
                break
        if not matched:
            key = self.customer.secret_key
            md5 = content_md5(body or b"")
            sts = string_to_sign(self._verb, md5, key, self._date, self.customer.id, body,
                                 self._path, self._query)
            raise SignatureMismatch(_masked_sts(sts, key, _body_text(body)))
        self._verifier._remember(self.customer.id, self._auth, self._when)
        return self.customer


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value
