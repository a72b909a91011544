"""Authenticated encryption of bodies, responses and NATS payloads, plus the legacy scheme.

AES-256-GCM with a random 96-bit nonce carried in front of the ciphertext, so a token
is self-contained: `nonce(12) ‖ ciphertext ‖ tag(16)`. The text form is that in Base64
(REST bodies and `*Encrypted` response fields); `seal` / `open_` skip Base64 for binary
NATS payloads. `aad` binds a ciphertext to its context (a subject, a project id) so it
cannot be replayed elsewhere.

The legacy scheme exists only because the reference system uses it: AES-128-CBC keyed by
the first 16 bytes of the decoded key, a fixed all-zero IV, PKCS#7. Equal plaintexts give
equal ciphertexts and nothing is authenticated, so the node uses it only for a customer
explicitly configured with `legacy_cbc`.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CryptoError
from .keys import b64decode_strict, decode_key

NONCE_BYTES = 12
TAG_BYTES = 16
_LEGACY_IV = bytes(16)


def seal(key_b64: str, data: bytes, aad: bytes = b"") -> bytes:
    """`nonce ‖ ciphertext ‖ tag` of `data` under the decoded key."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(decode_key(key_b64)).encrypt(nonce, data, aad or None)


def open_(key_b64: str, blob: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of a `seal`ed blob; CryptoError if anything was changed or the key is wrong."""
    key = decode_key(key_b64)
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise CryptoError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad or None)
    except InvalidTag as e:
        raise CryptoError("cannot decrypt: wrong key or corrupted ciphertext") from e


def encrypt(key_b64: str, plaintext: bytes, aad: bytes = b"") -> str:
    """Base64 of `seal(key_b64, plaintext, aad)`."""
    return base64.b64encode(seal(key_b64, plaintext, aad)).decode("ascii")


def decrypt(key_b64: str, token: str, aad: bytes = b"") -> bytes:
    """Inverse of `encrypt`."""
    return open_(key_b64, b64decode_strict(_text(token).strip(), "ciphertext"), aad)


def encrypt_json(key_b64: str, obj: Any) -> str:
    """`encrypt` of the UTF-8 JSON text of `obj`."""
    return encrypt(key_b64, orjson.dumps(obj))


def decrypt_json(key_b64: str, token: str) -> Any:
    """Inverse of `encrypt_json`; CryptoError also when the plaintext is not JSON."""
    return _loads(decrypt(key_b64, token))


def encrypt_legacy(key_b64: str, plaintext: bytes) -> str:
    """The reference system's AES-128-CBC, zero IV, PKCS#7, in Base64 (see module docstring)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = _legacy_cipher(key_b64).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode("ascii")


def decrypt_legacy(key_b64: str, token: str) -> bytes:
    """Inverse of `encrypt_legacy`; a wrong key shows up (most of the time) as bad padding."""
    blob = b64decode_strict(_text(token).strip(), "ciphertext")
    if not blob or len(blob) % 16:
        raise CryptoError("legacy ciphertext must be a non-empty multiple of 16 bytes")
    dec = _legacy_cipher(key_b64).decryptor()
    padded = dec.update(blob) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as e:
        raise CryptoError("cannot decrypt: wrong key or corrupted ciphertext") from e


def _legacy_cipher(key_b64: str) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(decode_key(key_b64)[:16]), modes.CBC(_LEGACY_IV))


def _text(token: str | bytes) -> str | bytes:
    if not isinstance(token, str | bytes):
        raise CryptoError("ciphertext must be a Base64 string")
    return token


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CryptoError("decrypted text is not UTF-8 JSON") from e
