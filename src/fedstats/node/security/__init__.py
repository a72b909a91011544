"""Security primitives of a node: keys, AEAD, invitations, request signing, customers.

Pure functions and small stateful objects (`Verifier`, `TokenBook`), no I/O beyond the
token store's SQLite file: the REST/WS facades, the federation agent and the client all
build on these, so a scheme is defined in exactly one place.
"""

from .aead import (
    decrypt,
    decrypt_json,
    decrypt_legacy,
    encrypt,
    encrypt_json,
    encrypt_legacy,
    open_,
    seal,
)
from .customers import Customer, load_customers, parse_customers
from .errors import AuthError, CryptoError, MessageFormatError, SecurityError
from .invites import (
    MemoryTokenStore,
    SqliteTokenStore,
    TokenBook,
    TokenStore,
    open_invite,
    seal_invite,
)
from .keys import decode_key, mask, new_secret_key
from .signing import (
    Verifier,
    build_ws_message,
    content_md5,
    format_sym_date,
    parse_sym_date,
    parse_ws_message,
    sign,
    signed_headers,
    string_to_sign,
    ws_sign,
    ws_signed_header,
    ws_string_to_sign,
)

__all__ = [
    "AuthError", "CryptoError", "Customer", "MemoryTokenStore", "MessageFormatError",
    "SecurityError", "SqliteTokenStore", "TokenBook", "TokenStore", "Verifier",
    "build_ws_message", "content_md5", "decode_key", "decrypt", "decrypt_json",
    "decrypt_legacy", "encrypt", "encrypt_json", "encrypt_legacy", "format_sym_date",
    "load_customers", "mask", "new_secret_key", "open_", "open_invite", "parse_customers",
    "parse_sym_date", "parse_ws_message", "seal", "seal_invite", "sign", "signed_headers",
    "string_to_sign", "ws_sign", "ws_signed_header", "ws_string_to_sign",
]
