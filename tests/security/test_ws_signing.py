"""WebSocket message framing and signing (spec 003)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from fedstats.node.security import (
    AuthError,
    Customer,
    MessageFormatError,
    Verifier,
    build_ws_message,
    content_md5,
    parse_ws_message,
    sign,
    ws_signed_header,
    ws_string_to_sign,
)

KEY = base64.b64encode(bytes(range(32))).decode()
DATE = "2024-01-02 03:04:05;000000006"
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
PAYLOAD = '{"attributeNames":["a"],"attributeTypes":["C"],"data":[["4.3"]]}'
SERVICE = "/symetry/ws/predict"


def verifier(now: float = T0) -> Verifier:
    return Verifier({"c1": Customer("c1", KEY)}, clock=lambda: now)


def test_ws_string_to_sign_follows_the_spec_example_layout() -> None:
    md5 = content_md5(PAYLOAD.encode())
    sts = ws_string_to_sign(md5, KEY, DATE, "c1", PAYLOAD, SERVICE, ["irisTest", "testLDA"])
    assert sts == f"{md5}\n{KEY}\n{DATE}\nc1\n{PAYLOAD}\n{SERVICE}\nirisTest\ntestLDA"
    # An object of extra keys signs its values in order.
    assert ws_string_to_sign(md5, KEY, DATE, "c1", PAYLOAD, SERVICE,
                             {"pid": "irisTest", "modelid": "testLDA"}) == sts


def test_signed_header_has_date_md5_authorization_customer_in_that_order() -> None:
    header = ws_signed_header("c1", KEY, PAYLOAD, SERVICE, ["irisTest"], sym_date=DATE)
    date, md5, auth, cid = header["headers"]
    assert (date, md5, cid) == (DATE, content_md5(PAYLOAD.encode()), "c1")
    assert auth == sign(KEY, ws_string_to_sign(md5, KEY, DATE, "c1", PAYLOAD, SERVICE,
                                               ["irisTest"]))
    assert header["extraKeys"] == ["irisTest"]


def test_message_framing_round_trips() -> None:
    header = {"headers": [DATE, "m", "a", "c1"], "extraKeys": ["p"]}
    text = build_ws_message(header, PAYLOAD)
    size, _, rest = text.partition(",")
    assert rest[int(size):] == PAYLOAD
    assert parse_ws_message(text) == (header, PAYLOAD)


def test_framing_counts_characters_not_bytes() -> None:
    header = {"headers": ["é", "m", "a", "c1"], "extraKeys": ["ü"]}
    assert parse_ws_message(build_ws_message(header, "ß")) == (header, "ß")


@pytest.mark.parametrize("text,reason", [
    # without a length the header must be whole JSON (the form of the page's samples)
    pytest.param('{"headers":[]', "does not start with a JSON header", id="no-length-cut"),
    pytest.param("x1,{}", "must start with", id="non-digit-length"),
    pytest.param("500,{}", "exceeds", id="length-too-long"),
    pytest.param("3,{}x{}", "not a JSON header", id="header-cut"),
    pytest.param("2,[]{}", "JSON object", id="header-not-object"),
])
def test_malformed_messages_raise_a_clear_value_error(text: str, reason: str) -> None:
    with pytest.raises(MessageFormatError, match=reason) as e:
        parse_ws_message(text)
    assert isinstance(e.value, ValueError)


def test_signed_message_verifies_and_replay_is_refused() -> None:
    v = verifier()
    header, payload = parse_ws_message(build_ws_message(
        ws_signed_header("c1", KEY, PAYLOAD, SERVICE, ["irisTest", "testLDA"], sym_date=DATE),
        PAYLOAD))
    assert v.verify_ws(header, payload, SERVICE).id == "c1"
    with pytest.raises(AuthError, match="replayed"):
        v.verify_ws(header, payload, SERVICE)


def _signed() -> dict:
    return ws_signed_header("c1", KEY, PAYLOAD, SERVICE, ["irisTest", "testLDA"], sym_date=DATE)


@pytest.mark.parametrize("tamper,reason", [
    pytest.param(lambda h: (h | {"extraKeys": ["irisTest", "other"]}, PAYLOAD, SERVICE),
                 "signature", id="extra-key"),
    pytest.param(lambda h: (h | {"extraKeys": ["irisTest"]}, PAYLOAD, SERVICE),
                 "signature", id="extra-key-dropped"),
    pytest.param(lambda h: (h, PAYLOAD, "/symetry/ws/learn"), "signature", id="service"),
    pytest.param(lambda h: (h, PAYLOAD.replace("4.3", "4.4"), SERVICE), "Content-MD5",
                 id="payload"),
    pytest.param(lambda h: ({"headers": [*h["headers"][:3], "c2"], "extraKeys": h["extraKeys"]},
                            PAYLOAD, SERVICE), "unknown customer", id="customer"),
    pytest.param(lambda h: ({"headers": h["headers"][:3]}, PAYLOAD, SERVICE), "headers",
                 id="short-headers"),
    pytest.param(lambda h: ({"headers": ["2024-01-02 03:04:07;0", *h["headers"][1:]],
                             "extraKeys": h["extraKeys"]}, PAYLOAD, SERVICE), "signature",
                 id="date"),
])
def test_tampered_ws_message_is_refused(tamper, reason: str) -> None:
    header, payload, service = tamper(_signed())
    with pytest.raises(AuthError, match=reason):
        verifier().verify_ws(header, payload, service)


@pytest.mark.parametrize("now", [pytest.param(T0 + 301, id="stale"),
                                 pytest.param(T0 - 61, id="future")])
def test_ws_date_window_applies(now: float) -> None:
    with pytest.raises(AuthError, match=r"stale|future"):
        verifier(now).verify_ws(_signed(), PAYLOAD, SERVICE)
