"""The node's REST signature as the model store checks it: `Signatures` for small calls
(the customer's HMAC keyed once, the node's verifier wording every refusal) and
`UploadSignature` for uploads (the HMAC alone, Content-MD5 as sent; over the body with
its file replaced by the file's declared SHA-256 when `X-Model-Sha256` declares it:
docs/modelstore.md, "Signing uploads"). Pure of HTTP: `small` reads a request's headers mapping only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...modelstore.multipart import DIGEST_HEADER
from ...security.customers import Customer
from ...security.errors import AuthError
from ...security.keys import decode_key
from ...security.signing import (
    AUTH_HEADER,
    DATE_HEADER,
    MD5_HEADER,
    SECRET_PLACEHOLDER,
    SignatureMismatch,
    SignedRequest,
    Verifier,
    content_md5,
    parse_sym_date,
    string_to_sign,
)

# header names as the server's mappings hold them (HTTP names are case-insensitive)
_AUTH, _DATE, _MD5 = AUTH_HEADER.lower(), DATE_HEADER.lower(), MD5_HEADER.lower()
_DIGEST = DIGEST_HEADER.lower()
_SHA256_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SYM_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:;(\d{1,9}))?", re.ASCII)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Signatures:
    """The node's REST signature checked on the model store's routes, its HMAC keyed once
    per customer (a copy of the keyed HMAC per request, not a key decoded and derived).

    `small` accepts a request only when the node's verifier would (customer known,
    Authorization and sym-date present, the date inside the verifier's window, Content-MD5
    present and right for a body, the HMAC over the REST string to sign equal) and records
    it in the verifier's replay window; anything else it hands to the verifier itself,
    which decides and words the refusal (the security page's texts, `stringToSign`). So
    the refusals are the node's, and the common case skips what a small call does not
    need: the key decoded and the date parsed by `strptime` on every call.
    """

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self._keyed: dict[str, tuple[str, Any]] = {}

    def keyed(self, customer: Customer) -> Any:
        """A fresh HMAC-SHA256 keyed with the customer's secret (nothing fed yet)."""
        hit = self._keyed.get(customer.id)
        if hit is None or hit[0] != customer.secret_key:
            hit = (customer.secret_key,
                   hmac.new(decode_key(customer.secret_key), digestmod=hashlib.sha256))
            self._keyed[customer.id] = hit
        return hit[1].copy()

    def _when(self, date: str) -> float | None:
        """The sym-date's time when it is well-formed and inside the verifier's window."""
        m = _SYM_DATE.fullmatch(date)
        if m is None:
            return None
        y, mo, d, h, mi, sec, nanos = m.groups()
        try:
            when = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec),
                            int(nanos) // 1000 if nanos else 0, UTC).timestamp()
        except ValueError:
            return None
        v = self.verifier
        now = v.clock()
        return when if now - v.past_s <= when <= now + v.future_s else None

    def headers_pass(self, headers: Mapping[str, str], cid: str) -> float | None:
        """The sym-date's time when what can be checked before the body (customer,
        Authorization, a sym-date inside the window) passes, else None; then
        `Verifier.begin` is asked, to refuse."""
        date = headers.get(_DATE)
        if cid in self.verifier.customers and headers.get(_AUTH) and date is not None:
            return self._when(date)
        return None

    def small(self, verb: str, path: str, query: str | None, headers: Mapping[str, str],
              body: bytes, cid: str, when: float | None = None) -> Customer:
        """The signer of a request whose whole body is `body`; AuthError otherwise
        (`Verifier.verify`'s arguments; `headers` holds, or finds, lower-case names;
        `when`, what `headers_pass` answered for the same headers, saves parsing the
        sym-date again)."""
        v = self.verifier
        customer = v.customers.get(cid)
        auth, date, md5 = headers.get(_AUTH), headers.get(_DATE), headers.get(_MD5)
        if when is None:
            when = self._when(date) if customer is not None and auth and date else None
        if when is not None and (not body or md5 == content_md5(body)):
            assert customer is not None and auth is not None and date is not None
            mac = self.keyed(customer)
            mac.update(_utf8("".join(f + "\n" for f in (
                verb.upper(), md5 or "", customer.secret_key, date, customer.id))))
            if body:
                mac.update(body)
                mac.update(b"\n")
            mac.update(_utf8(path + "\n" + (query + "\n" if query else "")))
            sent = auth.strip()
            if hmac.compare_digest(base64.b64encode(mac.digest()).decode("ascii"), sent):
                v.record(customer.id, sent, when)  # the node's replay window
                return customer
        return v.verify(verb, path, query, headers, body, cid)


class UploadSignature:
    """An upload's REST signature, checked by its HMAC alone: over the body as it streams
    in, or, when the client declared its file's SHA-256 (`X-Model-Sha256`, `declared`),
    over the body with the file part's content replaced by that digest (the parser's
    `signed_body`, fed to `update` once the body is in; the route then refuses a file that
    does not hash to it, `DigestMismatch`). The digest is the one the file is hashed for
    anyway (its content address), so the model's bytes are hashed once, not twice.

    The same string to sign as `security.signing` (verb, Content-MD5 as sent, secret,
    sym-date, customer, body, path, query), so a client that signs for the REST API signs
    an upload the same way, and one that leaves Content-MD5 out (fedstats' clients, which
    so save a pass over the model) signs "" in its place. Customer, headers and date were
    checked by the node's verifier (`Verifier.begin`) before a byte of the body was read;
    `finish` compares the HMAC and records the signature in the verifier's replay window.
    """

    def __init__(self, signatures: Signatures, check: SignedRequest, verb: str,
                 headers: Mapping[str, str], path: str, query: str | None) -> None:
        self._verifier, self.customer = signatures.verifier, check.customer
        self._auth = (headers.get(_AUTH) or "").strip()
        self._date = headers.get(_DATE) or ""
        self._md5 = headers.get(_MD5) or ""
        declared = headers.get(_DIGEST)
        if declared is not None and not _SHA256_HEX.fullmatch(declared.strip()):
            raise AuthError(f"{DIGEST_HEADER} {declared[:80]!r} is not a SHA-256 digest "
                            "(64 lower-case hex digits) of the file part")
        self.declared: str | None = None if declared is None else declared.strip()
        self._verb, self._path, self._query = verb, path, query
        head = [self._verb.upper(), self._md5, self.customer.secret_key, self._date,
                self.customer.id]
        self._mac = signatures.keyed(self.customer)
        self._mac.update(_utf8("".join(f + "\n" for f in head)))
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
        self._mac.update(_utf8("".join(f + "\n" for f in tail)))
        expected = base64.b64encode(self._mac.digest()).decode("ascii")
        if not hmac.compare_digest(expected, self._auth):
            # what this node signed, the secret masked and the body (a model) elided
            shown = string_to_sign(self._verb, self._md5, SECRET_PLACEHOLDER, self._date,
                                   self.customer.id, self._shown_body(), self._path,
                                   self._query)
            raise SignatureMismatch(shown)
        # The replay window is the verifier's, shared with every other signed request.
        self._verifier.record(self.customer.id, self._auth,
                                 parse_sym_date(self._date).timestamp())
        return self.customer

    def _shown_body(self) -> bytes | None:
        if self.declared is not None:
            return (f"<the multipart body, its file part's content replaced by "
                    f"{self.declared}>").encode()
        return f"<{self._size} bytes of body>".encode() if self._size else None
