"""FATE-Flow's client signature (fateflow-v1.md §1.3), with a replay cache FATE lacks.

The client sends TIMESTAMP (ms), NONCE, APP_KEY (or APP-KEY from FATE's in-server
client) and SIGNATURE = Base64(HMAC-SHA1(secret, TIMESTAMP\\nNONCE\\nAPP_KEY\\npath?query
\\nJSON body\\nsorted form)). The app key and secret are a node customer's id and key.
A timestamp more than 60 s away is refused; a (app key, nonce) seen within the window is
refused too, so a captured request cannot be replayed. Failures are FlowErrors with
retcode 109, FATE's AUTHENTICATION_ERROR, answered with HTTP 200 as FATE does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from ...security.customers import Customer
from .envelope import AUTHENTICATION_ERROR, FlowError

MAX_SKEW_S = 60.0
HEADERS = ("TIMESTAMP", "NONCE", "APP_KEY", "SIGNATURE")


def signature(secret: str, timestamp: str, nonce: str, app_key: str, path_url: str,
              body: bytes = b"", form: Mapping[str, str] | None = None) -> str:
    """SIGNATURE exactly as fate-client 1.11.3 computes it."""
    form_part = (urlencode(sorted(form.items()), quote_via=quote, safe="-._~").encode("ascii")
                 if form else b"")
    msg = b"\n".join([timestamp.encode("ascii"), nonce.encode("ascii"),
                      app_key.encode("ascii"), path_url.encode("ascii"), body, form_part])
    digest = hmac.new(secret.encode("ascii"), msg, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class NonceCache:
    """(app key, nonce) pairs seen within twice the timestamp window."""

    def __init__(self, keep_s: float = 2 * MAX_SKEW_S, max_entries: int = 1_000_000) -> None:
        self.keep_s = keep_s
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def remember(self, app_key: str, nonce: str, now: float) -> bool:
        """False when the pair was seen already (a replay)."""
        with self._lock:
            if len(self._seen) >= self.max_entries or len(self._seen) % 1024 == 0:
                cutoff = now - self.keep_s
                self._seen = {k: t for k, t in self._seen.items() if t > cutoff}
            if len(self._seen) >= self.max_entries:
                raise FlowError(AUTHENTICATION_ERROR, "too many signed requests in the last "
                                "two minutes: retry later")
            key = (app_key, nonce)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and "_" in name:
        value = headers.get(name.replace("_", "-"))
    return value


def verify(headers: Mapping[str, str], path_url: str, body: bytes,
           customers: Mapping[str, Customer], nonces: NonceCache,
           now: float | None = None, form: Mapping[str, str] | None = None) -> Customer:
    """The customer a signed request comes from, or FlowError(109) saying what is wrong."""
    values = {h: header(headers, h) for h in HEADERS}
    missing = [h for h, v in values.items() if v is None]
    if missing:
        raise FlowError(AUTHENTICATION_ERROR,
                        f"requirement headers parameters: {list(HEADERS)} (missing {missing})")
    ts, nonce, app_key, sig = (str(values[h]) for h in HEADERS)
    try:
        sent = int(ts) / 1000
    except ValueError:
        raise FlowError(AUTHENTICATION_ERROR, "Invalid TIMESTAMP") from None
    now = time.time() if now is None else now
    if abs(now - sent) > MAX_SKEW_S:
        raise FlowError(AUTHENTICATION_ERROR,
                        "TIMESTAMP is more than 60 seconds away from the server time")
    if not nonce:
        raise FlowError(AUTHENTICATION_ERROR, "Invalid NONCE")
    customer = customers.get(app_key)
    if customer is None:
        raise FlowError(AUTHENTICATION_ERROR, "Unknown APP_KEY")
    try:
        want = signature(customer.secret_key, ts, nonce, app_key, path_url, body, form)
    except UnicodeEncodeError:
        raise FlowError(AUTHENTICATION_ERROR, "signature authentication failed") from None
    if not hmac.compare_digest(want, sig):
        raise FlowError(AUTHENTICATION_ERROR, "signature authentication failed")
    if not nonces.remember(app_key, nonce, now):
        raise FlowError(AUTHENTICATION_ERROR, "NONCE already used: a replayed request is refused")
    return customer
