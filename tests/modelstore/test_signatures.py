"""The model store's check of small calls accepts exactly what the node's REST verifier
accepts and refuses with the verifier's own words; pure, on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.datastructures import Headers

from fedstats.node.api.jsonrpc.signatures import Signatures
from fedstats.node.security.customers import parse_customers
from fedstats.node.security.errors import AuthError
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import Verifier, format_sym_date, signed_headers

KEYS = {"c1": new_secret_key(), "c2": new_secret_key()}
NOW = datetime(2026, 12, 2, 1, 2, 3, 456789, UTC)
BODY = b'{"jsonrpc":"2.0","method":"fl.get_model_info","id":1}'
PATH = "/jsonrpc"


def _verifier() -> Verifier:
    return Verifier(parse_customers(KEYS), clock=NOW.timestamp)


def _signed(body: bytes = BODY, cid: str = "c1", key: str | None = None,
            date: str | None = None, query: str | None = None, **changes: str | None
            ) -> dict[str, str]:
    """The headers of a request signed so; `changes` set (None: drop) headers after."""
    h = signed_headers(cid, key or KEYS[cid], "POST", PATH, query, body,
                       sym_date=date or format_sym_date(NOW))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            h.pop(name, None)
        else:
            h[name] = value
    return {k.lower(): v for k, v in h.items()}  # as the server sees them


# name: (how the client signs: _signed's arguments, the body sent, the query sent)
CASES: dict[str, tuple[dict, bytes, str | None]] = {
    "good": ({}, BODY, None),
    "empty body": ({"body": b""}, b"", None),
    "query": ({"query": "a=1&b=2"}, BODY, "a=1&b=2"),
    "date without nanos": ({"date": "2026-12-02 01:02:00"}, BODY, None),
    "date with an empty ;": ({"date": "2026-12-02 01:02:00;"}, BODY, None),
    "date with 3 digits of nanos": ({"date": "2026-12-02 01:02:00;123"}, BODY, None),
    "nanos in other digits": ({"date": "2026-12-02 01:02:00;\u00b2"}, BODY, None),
    "stale date": ({"date": "2026-12-02 00:50:00;0"}, BODY, None),
    "future date": ({"date": "2026-12-02 01:05:00;0"}, BODY, None),
    "malformed date": ({"date": "yesterday"}, BODY, None),
    "impossible date": ({"date": "2026-02-30 01:02:03;0"}, BODY, None),
    "no date": ({"sym_date": None}, BODY, None),
    "no Authorization": ({"Authorization": None}, BODY, None),
    "empty Authorization": ({"Authorization": ""}, BODY, None),
    "Authorization padded": ({"pad": True}, BODY, None),
    "no Content-MD5": ({"Content_MD5": None}, BODY, None),
    "another Content-MD5": ({"Content_MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}, BODY, None),
    "body changed": ({}, BODY.replace(b"info", b"infx"), None),
    "another key": ({"key": KEYS["c2"]}, BODY, None),
    "unknown customer": ({"cid": "c3", "key": KEYS["c1"]}, BODY, None),
    "query left out of the signature": ({}, BODY, "a=1"),
}


def _outcome(fn):
    try:
        return "accepted", fn().id
    except AuthError as e:
        return type(e).__name__, str(e)


@pytest.mark.parametrize("case", list(CASES))
def test_small_calls_are_judged_as_the_node_verifier_judges_them(case):
    how, body, query = CASES[case]
    how = dict(how)
    cid, pad = how.get("cid", "c1"), how.pop("pad", False)
    headers = _signed(**how)
    if pad:
        headers["authorization"] = f"  {headers['authorization']} "
    ours, theirs = Signatures(_verifier()), _verifier()
    got = _outcome(lambda: ours.small("POST", PATH, query, Headers(headers), body, cid))
    expected = _outcome(lambda: theirs.verify("POST", PATH, query, Headers(headers), body, cid))
    assert got == expected
    if got[0] == "accepted":  # and the replay window is the verifier's own
        again = _outcome(lambda: ours.small("POST", PATH, query, Headers(headers), body, cid))
        assert again[0] == "AuthError" and "replayed" in again[1]


def test_a_changed_key_is_keyed_afresh():
    verifier = _verifier()
    sigs = Signatures(verifier)
    sigs.small("POST", PATH, None, Headers(_signed()), BODY, "c1")
    new_key = new_secret_key()
    verifier.customers = parse_customers({**KEYS, "c1": new_key})
    headers = _signed(key=new_key, date=format_sym_date(NOW.replace(microsecond=1)))
    assert sigs.small("POST", PATH, None, Headers(headers), BODY, "c1").id == "c1"
