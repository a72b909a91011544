"""Secret keys: 32 random bytes written as Base64 (customer keys and federation keys alike).

Decoding is strict (no stray characters, exactly 32 bytes) so that a truncated or
mistyped key fails where it is loaded, not later as a baffling signature mismatch.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from .errors import CryptoError

KEY_BYTES = 32


def new_secret_key() -> str:
    """A fresh key: Base64 of 32 bytes from the OS's CSPRNG."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def b64decode_strict(text: str | bytes, what: str = "value") -> bytes:
    """Standard Base64 with padding; anything else is a CryptoError naming `what`."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CryptoError(f"{what} is not valid Base64") from e


def decode_key(b64: str) -> bytes:
    """The 32 raw bytes of a Base64 key; CryptoError (never echoing the key) otherwise."""
    if not isinstance(b64, str | bytes):
        raise CryptoError("secret key must be a Base64 string")
    raw = b64decode_strict(b64.strip(), "secret key")
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"secret key must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def mask(secret: str) -> str:
    """A form of `secret` safe for logs: its first 4 characters, then stars."""
    if not secret:
        return ""
    # Four characters of Base64 are 24 bits of a 256-bit key: enough to tell keys apart
    # in a log, far too little to help guess one. Short secrets show nothing.
    shown = secret[:4] if len(secret) >= 16 else ""
    return f"{shown}****"
