"""REST request signing and verification: string to sign, window, tampering, replay."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedstats.node.security import (
    AuthError,
    Customer,
    Verifier,
    content_md5,
    format_sym_date,
    parse_sym_date,
    sign,
    signed_headers,
    string_to_sign,
)
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import rest_signature

KEY = base64.b64encode(bytes(range(32))).decode()
PATH = "/symetry/rest/c1/projects"
BODY = b'{"a":1}'
DATE = "2024-01-02 03:04:05;000000006"
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock | None = None) -> Verifier:
    return Verifier({"c1": Customer("c1", KEY)}, clock=clock or Clock())


def test_sym_date_format_is_utc_with_nine_digit_nanos() -> None:
    dt = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert format_sym_date(dt) == "2024-01-02 03:04:05;123456000"
    assert parse_sym_date("2024-01-02 03:04:05;123456000") == dt
    assert parse_sym_date("2014-10-24 17:24:04") == datetime(2014, 10, 24, 17, 24, 4, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["2024-01-02T03:04:05", "2024-01-02 03:04:05;12x", "", "yesterday"])
def test_malformed_sym_date_is_an_auth_error_naming_the_format(bad: str) -> None:
    with pytest.raises(AuthError, match="yyyy-MM-dd HH:mm:ss;nanos"):
        parse_sym_date(bad)


def test_content_md5_is_base64_md5_and_empty_for_no_body() -> None:
    assert content_md5(b"") == ""
    assert content_md5(b"abc") == "kAFQmDzST7DWlj99KOF/cg=="


def test_string_to_sign_matches_the_hand_written_example() -> None:
    md5 = content_md5(BODY)
    sts = string_to_sign("post", md5, KEY, DATE, "c1", BODY, PATH, "pid=p1&type=cpu")
    assert sts == f"POST\n{md5}\n{KEY}\n{DATE}\nc1\n{{\"a\":1}}\n{PATH}\npid=p1&type=cpu\n"
    # Without body or query, both are left out together with their newline.
    assert string_to_sign("GET", "", KEY, DATE, "c1", None, PATH, None) == \
        f"GET\n\n{KEY}\n{DATE}\nc1\n{PATH}\n"


def test_signature_is_base64_hmac_sha256_keyed_by_the_decoded_secret() -> None:
    # The pinned value was computed with `openssl dgst -sha256 -mac HMAC`, not this code.
    sts = f"GET\n\n{KEY}\n{DATE}\nc1\n{PATH}\n"
    expected = base64.b64encode(
        hmac.new(bytes(range(32)), sts.encode(), hashlib.sha256).digest()).decode()
    assert sign(KEY, sts) == expected == "i3TEhvoFPL4+Cs2vDaxORa9leu9SfyPYbCqzelvmZQg="


def test_signed_request_verifies() -> None:
    headers = signed_headers("c1", KEY, "POST", PATH, "pid=p1", BODY, sym_date=DATE)
    assert set(headers) == {"Authorization", "sym-date", "Content-MD5", "sym-customer-id"}
    assert verifier().verify("POST", PATH, "pid=p1", headers, BODY, "c1").id == "c1"


def test_header_names_are_matched_case_insensitively() -> None:
    headers = signed_headers("c1", KEY, "GET", PATH, sym_date=DATE)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verifier().verify("GET", PATH, None, lowered, b"", "c1").id == "c1"


@pytest.mark.parametrize("field,change", [
    pytest.param("verb", {"verb": "PUT"}, id="verb"),
    pytest.param("path", {"path": "/symetry/rest/c1/projectz"}, id="path"),
    pytest.param("query", {"query": "pid=p2"}, id="query"),
    pytest.param("query", {"query": None}, id="query-dropped"),
    pytest.param("body", {"body": b'{"a":2}'}, id="body-with-matching-md5"),
    pytest.param("customer", {"customer_id": "c2"}, id="other-customer"),
    pytest.param("date", {"date": "2024-01-02 03:04:06;000000006"}, id="date"),
])
def test_tampering_with_any_signed_field_fails(field: str, change: dict) -> None:
    headers = signed_headers("c1", KEY, "POST", PATH, "pid=p1", BODY, sym_date=DATE)
    call = {"verb": "POST", "path": PATH, "query": "pid=p1", "body": BODY, "customer_id": "c1"}
    call.update(change)
    if "date" in call:
        headers["sym-date"] = call.pop("date")
    if field == "body":
        headers["Content-MD5"] = content_md5(call["body"])
    v = Verifier({"c1": Customer("c1", KEY), "c2": Customer("c2", KEY)}, clock=Clock())
    with pytest.raises(AuthError, match="signature does not match"):
        v.verify(call["verb"], call["path"], call["query"], headers, call["body"],
                 call["customer_id"])


def test_body_not_matching_content_md5_is_refused_before_the_signature() -> None:
    headers = signed_headers("c1", KEY, "POST", PATH, None, BODY, sym_date=DATE)
    with pytest.raises(AuthError, match="Content-MD5 does not match"):
        verifier().verify("POST", PATH, None, headers, b'{"a":2}', "c1")


@pytest.mark.parametrize("missing,reason", [
    ("Authorization", "missing Authorization"),
    ("sym-date", "missing sym-date"),
    ("Content-MD5", "missing Content-MD5"),
])
def test_missing_headers_are_named(missing: str, reason: str) -> None:
    headers = signed_headers("c1", KEY, "POST", PATH, None, BODY, sym_date=DATE)
    del headers[missing]
    with pytest.raises(AuthError, match=reason):
        verifier().verify("POST", PATH, None, headers, BODY, "c1")


def test_unknown_customer_is_refused() -> None:
    headers = signed_headers("c9", KEY, "GET", PATH, sym_date=DATE)
    with pytest.raises(AuthError, match="unknown customer 'c9'"):
        verifier().verify("GET", PATH, None, headers, b"", "c9")


def test_bad_signature_echoes_the_string_to_sign_with_secret_masked_and_long_body_elided() -> None:
    body = b'{"data":"' + b"x" * 1000 + b'"}'
    headers = signed_headers("c1", KEY, "POST", PATH, None, body, sym_date=DATE)
    headers["Authorization"] = sign(KEY, "something else")
    with pytest.raises(AuthError) as e:
        verifier().verify("POST", PATH, None, headers, body, "c1")
    reason = e.value.reason
    assert KEY not in reason and KEY[:4] not in reason  # not even a prefix of the key
    assert f"\\nSECRETKEY\\n{DATE}" in reason
    assert DATE in reason and PATH in reason
    assert "x" * 200 not in reason and "<1011 chars>" in reason


@pytest.mark.parametrize("offset,ok", [
    pytest.param(-299, True, id="299s-old"),
    pytest.param(-301, False, id="301s-old"),
    pytest.param(59, True, id="59s-ahead"),
    pytest.param(61, False, id="61s-ahead"),
])
def test_date_window_is_five_minutes_back_one_minute_ahead(offset: int, ok: bool) -> None:
    headers = signed_headers("c1", KEY, "GET", PATH, sym_date=DATE)
    v = verifier(Clock(T0 - offset))
    if ok:
        v.verify("GET", PATH, None, headers, b"", "c1")
    else:
        with pytest.raises(AuthError, match=r"stale|future"):
            v.verify("GET", PATH, None, headers, b"", "c1")


def test_replayed_request_is_refused_but_a_fresh_one_passes() -> None:
    v = verifier()
    headers = signed_headers("c1", KEY, "GET", PATH, sym_date=DATE)
    v.verify("GET", PATH, None, headers, b"", "c1")
    with pytest.raises(AuthError, match="replayed"):
        v.verify("GET", PATH, None, dict(headers), b"", "c1")
    again = signed_headers("c1", KEY, "GET", PATH, sym_date="2024-01-02 03:04:05;000000007")
    v.verify("GET", PATH, None, again, b"", "c1")


def test_replay_memory_forgets_entries_once_their_date_is_out_of_the_window() -> None:
    clock = Clock()
    v = verifier(clock)
    for i in range(50):
        date = f"2024-01-02 03:04:05;{i:09d}"
        v.verify("GET", PATH, None, signed_headers("c1", KEY, "GET", PATH, sym_date=date),
                 b"", "c1")
    assert len(v._seen) == 50
    clock.now += 301
    late = format_sym_date(datetime.fromtimestamp(clock.now, UTC))
    v.verify("GET", PATH, None, signed_headers("c1", KEY, "GET", PATH, sym_date=late), b"", "c1")
    assert len(v._seen) == 1


def test_default_date_is_now_and_two_requests_sign_differently() -> None:
    a = signed_headers("c1", KEY, "GET", PATH)
    b = signed_headers("c1", KEY, "GET", PATH)
    v = Verifier({"c1": Customer("c1", KEY)})
    v.verify("GET", PATH, None, a, b"", "c1")
    v.verify("GET", PATH, None, b, b"", "c1")


@given(body=st.binary(max_size=300), query=st.none() | st.text(min_size=1, max_size=20))
@settings(max_examples=60, deadline=None)
def test_the_streamed_signature_equals_signing_the_string(body: bytes, query: str | None) -> None:
    # verify() feeds the HMAC piece by piece (no copies of a large body): it must sign
    # exactly the string the reference defines, for any bytes, not only valid UTF-8
    key = new_secret_key()
    sts = string_to_sign("POST", "md5", key, "2026-01-01 00:00:00;0", "c1", body, "/p", query)
    assert rest_signature("POST", "md5", key, "2026-01-01 00:00:00;0", "c1", body, "/p",
                          query) == sign(key, sts)


def test_a_full_replay_cache_refuses_new_requests_instead_of_forgetting_live_ones() -> None:
    from fedstats.node.security.errors import Overloaded

    clock = Clock()
    v = Verifier({"c1": Customer("c1", KEY)}, clock=clock, max_seen=3)

    def headers(i: int, at: float) -> dict[str, str]:
        date = format_sym_date(datetime.fromtimestamp(at, UTC))
        return signed_headers("c1", KEY, "GET", PATH, f"i={i}", b"", sym_date=date)

    sent = [headers(i, T0 + i) for i in range(3)]
    for i, h in enumerate(sent):
        v.verify("GET", PATH, f"i={i}", h, b"", "c1")
    with pytest.raises(Overloaded, match="too many requests in the replay window") as e:
        v.verify("GET", PATH, "i=3", headers(3, T0), b"", "c1")
    assert e.value.retry_after == 300  # until the oldest signature leaves the window
    for i, h in enumerate(sent):  # every live signature is still refused as a replay
        with pytest.raises(AuthError, match="replayed"):
            v.verify("GET", PATH, f"i={i}", h, b"", "c1")
    clock.now = T0 + 300.5  # the first one is now too old to be accepted: its slot frees
    v.verify("GET", PATH, "i=4", headers(4, clock.now), b"", "c1")
    with pytest.raises(AuthError, match="replayed"):
        v.verify("GET", PATH, "i=1", sent[1], b"", "c1")
