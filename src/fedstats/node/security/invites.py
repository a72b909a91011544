"""Password-sealed invitations and the one-time `fed_req_token`s inside them.

An invitation travels through people (mail, chat), so it is sealed with a password
rather than a key: AES-256-GCM under scrypt(password, salt, n=2^15, r=8, p=1), laid out
as Base64(salt(16) ‖ nonce(12) ‖ ciphertext ‖ tag(16)). scrypt's cost makes guessing a
password expensive; the random salt makes every invitation's key distinct.

A program that makes the password itself (the operator: 32 random bytes, never typed)
gains nothing from scrypt's work factor, which is there for passwords people choose, and
pays ~0.15 s of CPU and 32 MiB to seal and again to open, per invitation. For it
`kdf="hkdf"` derives the key with HKDF-SHA256 instead, only from a password of at least
`MIN_KEY_PASSWORD` characters, and marks the token `k1.` + Base64(salt ‖ nonce ‖
ciphertext ‖ tag) ('.' is outside Base64's alphabet, so the two layouts never mix up;
the mark is also the AEAD's associated data). `open_invite` reads either.

A token is worth something only once: `TokenBook.redeem` claims it atomically in its
`TokenStore`. The SQLite store claims with a single conditional UPDATE inside an
immediate transaction, so two joiners racing with one invitation (threads or processes,
before or after a restart) see exactly one success.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import CryptoError
from .keys import b64decode_strict

SALT_BYTES = 16
NONCE_BYTES = 12
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
KDFS = ("scrypt", "hkdf")
# 32 characters: 192 bits as Base64 of random bytes, beyond guessing without a work factor
MIN_KEY_PASSWORD = 32
KEY_MARK = "k1."
_HKDF_INFO = b"fedstats invitation key v1"
_WRONG = "wrong password or corrupted invitation"


def _derive(password: str, salt: bytes) -> bytes:
    # 128 * r * n = 32 MiB of work memory: just over hashlib's default cap, so raise it.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
        maxmem=64 * 1024 * 1024, dklen=32,
    )


def _derive_key(password: str, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, _HKDF_INFO).derive(password.encode("utf-8"))


def check_kdf(password: str, kdf: str) -> None:
    """CryptoError unless `kdf` may seal with `password`: scrypt for any, hkdf only for a
    machine-made password of at least `MIN_KEY_PASSWORD` characters."""
    if kdf not in KDFS:
        raise CryptoError(f"an invitation's key derivation is scrypt or hkdf, not {kdf!r}")
    if kdf == "hkdf" and len(password) < MIN_KEY_PASSWORD:
        raise CryptoError(f"an invitation sealed with hkdf needs a random password of at "
                          f"least {MIN_KEY_PASSWORD} characters (a chosen one needs scrypt)")


def _key(password: str, salt: bytes, keyed: bool) -> tuple[AESGCM, bytes | None]:
    """The AEAD and its associated data for a token's layout (`k1.`-marked or not)."""
    if keyed:
        return AESGCM(_derive_key(password, salt)), KEY_MARK.encode()
    return AESGCM(_derive(password, salt)), None


def seal_invite(password: str, payload: dict[str, Any], kdf: str = "scrypt") -> str:
    """Base64(salt ‖ nonce ‖ AES-256-GCM(JSON payload)) under a key derived from `password`:
    by scrypt, or (`kdf="hkdf"`, see `check_kdf`) by HKDF-SHA256, the token then marked
    `k1.`. CryptoError otherwise."""
    if not password:
        raise CryptoError("an invitation needs a non-empty password")
    check_kdf(password, kdf)
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    aead, aad = _key(password, salt, kdf == "hkdf")
    sealed = base64.b64encode(salt + nonce + aead.encrypt(nonce, orjson.dumps(payload), aad))
    return (KEY_MARK if aad else "") + sealed.decode("ascii")


def open_invite(password: str, token: str) -> dict[str, Any]:
    """The payload of `seal_invite` (either layout); CryptoError "wrong password or
    corrupted invitation"."""
    try:
        text = token.strip()
        keyed = text.startswith(KEY_MARK)
        blob = b64decode_strict(text[len(KEY_MARK):] if keyed else text, "invitation")
    except (CryptoError, AttributeError) as e:
        raise CryptoError(_WRONG) from e
    if len(blob) < SALT_BYTES + NONCE_BYTES + 16 or not isinstance(password, str):
        raise CryptoError(_WRONG)
    salt, nonce = blob[:SALT_BYTES], blob[SALT_BYTES:SALT_BYTES + NONCE_BYTES]
    try:
        aead, aad = _key(password, salt, keyed)
        plain = aead.decrypt(nonce, blob[SALT_BYTES + NONCE_BYTES:], aad)
        payload = orjson.loads(plain)
    except (InvalidTag, orjson.JSONDecodeError) as e:
        raise CryptoError(_WRONG) from e
    if not isinstance(payload, dict):
        raise CryptoError(_WRONG)
    return payload


@dataclass(frozen=True)
class TokenRecord:
    purpose: str
    expires_at: float
    meta: dict[str, Any]


class TokenStore(Protocol):
    """Where tokens live. `claim` must be atomic: one caller ever gets a given token."""

    def put(self, token: str, record: TokenRecord) -> None: ...

    def claim(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        """The token's meta, marking it used; CryptoError used / expired / unknown."""
        ...

    def peek(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        """The meta of a token that `claim` would give now, without marking it used."""
        ...


class MemoryTokenStore:
    """Tokens in a dict; claims serialised by a lock. Lost on restart."""

    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def put(self, token: str, record: TokenRecord) -> None:
        with self._lock:
            self._records[token] = record

    def claim(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        with self._lock:
            meta = self._live(token, purpose, now)
            self._used[token] = now
            return meta

    def peek(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        with self._lock:
            return self._live(token, purpose, now)

    def _live(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        self._forget_expired(now)
        record = self._records.get(token)
        if record is None or record.purpose != purpose:
            raise CryptoError("unknown invitation token")
        if token in self._used:
            raise CryptoError("invitation token already used")
        if record.expires_at <= now:
            raise CryptoError("invitation token expired")
        return dict(record.meta)

    def _forget_expired(self, now: float) -> None:
        # Keep memory bounded; an expired token is kept a day so it reads "expired", not "unknown".
        stale = [t for t, r in self._records.items() if r.expires_at + 86400 < now]
        for t in stale:
            del self._records[t]
            self._used.pop(t, None)


class SqliteTokenStore:
    """Tokens in a SQLite file (WAL); a connection per operation so threads never share one."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS fed_tokens (token TEXT PRIMARY KEY, "
                "purpose TEXT NOT NULL, expires_at REAL NOT NULL, meta BLOB NOT NULL, "
                "used_at REAL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30.0, isolation_level=None)

    def put(self, token: str, record: TokenRecord) -> None:
        db = self._connect()
        try:
            db.execute(
                "INSERT INTO fed_tokens (token, purpose, expires_at, meta) VALUES (?, ?, ?, ?)",
                (token, record.purpose, record.expires_at, orjson.dumps(record.meta)),
            )
        finally:
            db.close()

    def claim(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "UPDATE fed_tokens SET used_at = ? WHERE token = ? AND purpose = ? "
                    "AND used_at IS NULL AND expires_at > ?",
                    (now, token, purpose, now),
                )
                row = db.execute(
                    "SELECT meta, used_at, expires_at FROM fed_tokens "
                    "WHERE token = ? AND purpose = ?", (token, purpose),
                ).fetchone()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()
        if cur.rowcount == 1:
            return dict(orjson.loads(row[0]))
        return _refused(row)

    def peek(self, token: str, purpose: str, now: float) -> dict[str, Any]:
        db = self._connect()
        try:
            row = db.execute(
                "SELECT meta, used_at, expires_at FROM fed_tokens "
                "WHERE token = ? AND purpose = ?", (token, purpose),
            ).fetchone()
        finally:
            db.close()
        if row is not None and row[1] is None and row[2] > now:
            return dict(orjson.loads(row[0]))
        return _refused(row)


def _refused(row: Any) -> dict[str, Any]:
    """The CryptoError of a token row that cannot be claimed (None: no such token)."""
    if row is None:
        raise CryptoError("unknown invitation token")
    if row[1] is not None:
        raise CryptoError("invitation token already used")
    raise CryptoError("invitation token expired")


class TokenBook:
    """Issues and redeems one-time, expiring tokens (the invitations' `fed_req_token`)."""

    def __init__(self, store: TokenStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.clock = clock

    def issue(self, ttl_s: float, purpose: str, **meta: Any) -> str:
        """A fresh token for `purpose`, valid `ttl_s` seconds, redeemable once for `meta`."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        token = "FEDTOKEN" + secrets.token_hex(16)
        self.store.put(token, TokenRecord(purpose, self.clock() + ttl_s, dict(meta)))
        return token

    def redeem(self, token: str, purpose: str) -> dict[str, Any]:
        """`meta` of the token, once; CryptoError "already used" / "expired" / "unknown"."""
        if not isinstance(token, str) or not token:
            raise CryptoError("unknown invitation token")
        return self.store.claim(token, purpose, self.clock())

    def inspect(self, token: str, purpose: str) -> dict[str, Any]:
        """`meta` of a token `redeem` would accept now, leaving it unused (a request is
        checked against it before it is spent); the same CryptoErrors."""
        if not isinstance(token, str) or not token:
            raise CryptoError("unknown invitation token")
        return self.store.peek(token, purpose, self.clock())
