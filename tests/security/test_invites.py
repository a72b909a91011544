"""Password-sealed invitations and one-time expiring tokens."""

from __future__ import annotations

import base64
import threading

import pytest

from fedstats.node.security import (
    CryptoError,
    MemoryTokenStore,
    SqliteTokenStore,
    TokenBook,
    open_invite,
    seal_invite,
)
from fedstats.node.security.invites import KEY_MARK, MIN_KEY_PASSWORD

PAYLOAD = {"fed_name": "f1", "fed_secret_key": "k", "fed_req_token": "FEDTOKENabc"}


def test_invite_round_trip_and_layout() -> None:
    token = seal_invite("correct horse", PAYLOAD)
    assert open_invite("correct horse", token) == PAYLOAD
    assert len(base64.b64decode(token)) > 16 + 12 + 16
    assert seal_invite("correct horse", PAYLOAD) != token, "salt and nonce are random"


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda t: ("wrong horse", t), id="wrong-password"),
    pytest.param(lambda t: ("correct horse", t[:-8] + "AAAAAAA="), id="corrupted-tag"),
    pytest.param(lambda t: ("correct horse", t[:20]), id="truncated"),
    pytest.param(lambda t: ("correct horse", "%%%"), id="not-base64"),
])
def test_open_invite_refuses_wrong_password_or_corruption(mutate) -> None:
    password, token = mutate(seal_invite("correct horse", PAYLOAD))
    with pytest.raises(CryptoError, match="wrong password or corrupted invitation"):
        open_invite(password, token)


KEY = "k" * MIN_KEY_PASSWORD  # as long as a program's random password must be


def test_a_program_password_seals_with_hkdf_in_its_own_marked_layout() -> None:
    token = seal_invite(KEY, PAYLOAD, kdf="hkdf")
    assert token.startswith(KEY_MARK)
    assert open_invite(KEY, token) == PAYLOAD
    assert len(base64.b64decode(token[len(KEY_MARK):])) > 16 + 12 + 16
    assert seal_invite(KEY, PAYLOAD, kdf="hkdf") != token, "salt and nonce are random"
    assert not seal_invite(KEY, PAYLOAD).startswith(KEY_MARK), "scrypt stays the default"


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda t: ("l" * MIN_KEY_PASSWORD, t), id="wrong-password"),
    pytest.param(lambda t: (KEY, t[:-8] + "AAAAAAA="), id="corrupted-tag"),
    pytest.param(lambda t: (KEY, t[:24]), id="truncated"),
    pytest.param(lambda t: (KEY, t[len(KEY_MARK):]), id="mark-removed: read as scrypt"),
    pytest.param(lambda t: (KEY, KEY_MARK + "%%%"), id="not-base64"),
])
def test_a_hkdf_invitation_refuses_wrong_password_or_corruption(mutate) -> None:
    password, token = mutate(seal_invite(KEY, PAYLOAD, kdf="hkdf"))
    with pytest.raises(CryptoError, match="wrong password or corrupted invitation"):
        open_invite(password, token)


def test_a_scrypt_invitation_marked_as_hkdf_does_not_open() -> None:
    with pytest.raises(CryptoError, match="wrong password or corrupted invitation"):
        open_invite(KEY, KEY_MARK + seal_invite(KEY, PAYLOAD))


def test_hkdf_needs_a_long_password_and_a_known_kdf() -> None:
    with pytest.raises(CryptoError, match=f"at least {MIN_KEY_PASSWORD} characters"):
        seal_invite("correct horse battery staple", PAYLOAD, kdf="hkdf")
    with pytest.raises(CryptoError, match="scrypt or hkdf"):
        seal_invite(KEY, PAYLOAD, kdf="md5")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def book(request, tmp_path) -> TokenBook:
    store = MemoryTokenStore() if request.param == "memory" else SqliteTokenStore(
        str(tmp_path / "tokens.db"))
    return TokenBook(store, clock=Clock())


def test_token_redeems_once_with_its_meta(book: TokenBook) -> None:
    token = book.issue(60, "join", peer="p2", project="nh")
    assert token.startswith("FEDTOKEN")
    assert book.redeem(token, "join") == {"peer": "p2", "project": "nh"}
    with pytest.raises(CryptoError, match="already used"):
        book.redeem(token, "join")


def test_token_expires(book: TokenBook) -> None:
    token = book.issue(60, "join")
    book.clock.now += 61
    with pytest.raises(CryptoError, match="expired"):
        book.redeem(token, "join")


@pytest.mark.parametrize("token,purpose", [
    pytest.param("FEDTOKENnope", "join", id="never-issued"),
    pytest.param(None, "other", id="other-purpose"),
])
def test_unknown_or_other_purpose_token_is_unknown(book: TokenBook, token, purpose) -> None:
    token = token or book.issue(60, "join")
    with pytest.raises(CryptoError, match="unknown"):
        book.redeem(token, purpose)


def test_two_threads_redeeming_one_token_exactly_one_wins(book: TokenBook) -> None:
    for _ in range(5):
        token = book.issue(60, "join", n=1)
        barrier = threading.Barrier(2)
        results: list[object] = []

        def go(token: str = token, barrier: threading.Barrier = barrier,
               results: list[object] = results) -> None:
            barrier.wait()
            try:
                results.append(book.redeem(token, "join"))
            except CryptoError as e:
                results.append(e)

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(type(r).__name__ for r in results) == ["CryptoError", "dict"]


def test_sqlite_store_remembers_issued_and_used_tokens_across_reopen(tmp_path) -> None:
    path = str(tmp_path / "tokens.db")
    first = TokenBook(SqliteTokenStore(path))
    used, fresh = first.issue(60, "join", a=1), first.issue(60, "join", b=2)
    first.redeem(used, "join")

    reopened = TokenBook(SqliteTokenStore(path))
    with pytest.raises(CryptoError, match="already used"):
        reopened.redeem(used, "join")
    assert reopened.redeem(fresh, "join") == {"b": 2}


def test_issue_refuses_non_positive_ttl() -> None:
    with pytest.raises(ValueError):
        TokenBook().issue(0, "join")
