"""Keys, AES-256-GCM tokens and the legacy CBC scheme."""

from __future__ import annotations

import base64
import contextlib

import pytest

from fedstats.node.security import (
    CryptoError,
    decode_key,
    decrypt,
    decrypt_json,
    decrypt_legacy,
    encrypt,
    encrypt_json,
    encrypt_legacy,
    mask,
    new_secret_key,
    open_,
    seal,
)

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER = base64.b64encode(bytes(range(1, 33))).decode()


def test_new_secret_keys_are_32_random_bytes_in_base64() -> None:
    a, b = new_secret_key(), new_secret_key()
    assert len(decode_key(a)) == 32 and a != b


@pytest.mark.parametrize("bad", [
    pytest.param(base64.b64encode(bytes(16)).decode(), id="16-bytes"),
    pytest.param(base64.b64encode(bytes(33)).decode(), id="33-bytes"),
    pytest.param(KEY[:-1], id="bad-padding"),
    pytest.param(KEY[:10] + "*" + KEY[11:], id="non-base64-char"),
    pytest.param("", id="empty"),
])
def test_decode_key_refuses_anything_but_32_bytes_of_strict_base64(bad: str) -> None:
    with pytest.raises(CryptoError) as e:
        decode_key(bad)
    assert bad[:8] not in str(e.value) or not bad


def test_mask_hides_all_but_a_short_prefix() -> None:
    assert mask(KEY) == KEY[:4] + "****"
    assert KEY[4:] not in mask(KEY)
    assert mask("short") == "****"


def test_gcm_round_trip_with_aad_and_token_layout() -> None:
    token = encrypt(KEY, b"hello", aad=b"subject.a")
    assert decrypt(KEY, token, aad=b"subject.a") == b"hello"
    assert len(base64.b64decode(token)) == 12 + 5 + 16
    assert encrypt(KEY, b"hello") != encrypt(KEY, b"hello"), "nonce must be random"


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.b64decode(token))
    raw[index] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda t: (KEY, _flip(t, 0), b"ctx"), id="nonce"),
    pytest.param(lambda t: (KEY, _flip(t, 14), b"ctx"), id="ciphertext"),
    pytest.param(lambda t: (KEY, _flip(t, -1), b"ctx"), id="tag"),
    pytest.param(lambda t: (KEY, t, b"other"), id="wrong-aad"),
    pytest.param(lambda t: (KEY, t, b""), id="missing-aad"),
    pytest.param(lambda t: (OTHER, t, b"ctx"), id="wrong-key"),
    pytest.param(lambda t: (KEY, base64.b64encode(base64.b64decode(t)[:20]).decode(), b"ctx"),
                 id="truncated"),
    pytest.param(lambda t: (KEY, t + "!", b"ctx"), id="not-base64"),
])
def test_gcm_detects_tampering(tamper) -> None:
    key, token, aad = tamper(encrypt(KEY, b"some statistics", aad=b"ctx"))
    with pytest.raises(CryptoError):
        decrypt(key, token, aad=aad)


def test_seal_and_open_work_on_raw_bytes() -> None:
    blob = seal(KEY, b"\x00\x01binary", aad=b"fed.x")
    assert isinstance(blob, bytes) and open_(KEY, blob, aad=b"fed.x") == b"\x00\x01binary"
    with pytest.raises(CryptoError):
        open_(KEY, blob[:-1] + bytes([blob[-1] ^ 1]), aad=b"fed.x")


def test_json_round_trip_and_non_json_plaintext_is_a_crypto_error() -> None:
    obj = {"fed_name": "f1", "n": [1, 2.5], "ok": True}
    assert decrypt_json(KEY, encrypt_json(KEY, obj)) == obj
    with pytest.raises(CryptoError, match="JSON"):
        decrypt_json(KEY, encrypt(KEY, b"\xff not json"))


@pytest.mark.parametrize("plaintext", [
    pytest.param(b"", id="empty"),
    pytest.param(b"x" * 16, id="one-block"),
    pytest.param(b'{"passwd":"passwd","fed_rest_host":"http://charm:8080"}', id="json"),
])
def test_legacy_cbc_round_trip(plaintext: bytes) -> None:
    assert decrypt_legacy(KEY, encrypt_legacy(KEY, plaintext)) == plaintext


def test_legacy_cbc_is_aes128_zero_iv_keyed_by_the_first_16_bytes() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(bytes(range(16))), modes.CBC(bytes(16))).encryptor()
    expected = enc.update(b"abc" + bytes([13]) * 13) + enc.finalize()
    assert base64.b64decode(encrypt_legacy(KEY, b"abc")) == expected
    # Deterministic: the very weakness that keeps it opt-in.
    assert encrypt_legacy(KEY, b"abc") == encrypt_legacy(KEY, b"abc")


@pytest.mark.parametrize("token", [
    pytest.param("", id="empty"),
    pytest.param(base64.b64encode(b"x" * 15).decode(), id="not-block-multiple"),
])
def test_legacy_cbc_refuses_malformed_ciphertext(token: str) -> None:
    with pytest.raises(CryptoError):
        decrypt_legacy(KEY, token)


def test_legacy_cbc_with_wrong_key_fails_or_garbles() -> None:
    token = encrypt_legacy(KEY, b"secret federation info")
    # CBC without a MAC cannot always tell: bad padding, or garbage that is not the plaintext.
    with contextlib.suppress(CryptoError):
        assert decrypt_legacy(OTHER, token) != b"secret federation info"
