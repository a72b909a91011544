"""Every /symetry request is signed: what the node refuses (401 with a reason) and what is open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fedstats.node.security.signing import format_sym_date, signed_headers
from fedstats_harness.inprocess import Node

PATH = "/symetry/rest/c1/projects/list"


def _get(node: Node, headers: dict[str, str], path: str = PATH) -> httpx.Response:
    return httpx.get(node.url + path, headers=headers)


def _signed(node: Node, cid: str = "c1", path: str = PATH, **kw: object) -> dict[str, str]:
    return signed_headers(cid, node.keys[cid], "GET", path, **kw)  # type: ignore[arg-type]


def test_a_correctly_signed_request_is_answered(node: Node) -> None:
    assert _get(node, _signed(node)).status_code == 200


def _reason(resp: httpx.Response) -> str:
    body = resp.json()
    assert resp.status_code == 401, body
    assert body["statusCode"] == "UNAUTHORIZED"
    return str(body["values"]["error"])


def test_a_replayed_request_is_refused(node: Node) -> None:
    headers = _signed(node)
    assert _get(node, headers).status_code == 200
    assert "replayed" in _reason(_get(node, headers))


@pytest.mark.parametrize("shift,word", [(timedelta(minutes=-6), "stale"),
                                        (timedelta(minutes=2), "future")],
                         ids=["stale-6-min", "future-2-min"])
def test_a_date_outside_the_window_is_refused(node: Node, shift: timedelta, word: str) -> None:
    date = format_sym_date(datetime.now(UTC) + shift)
    assert word in _reason(_get(node, _signed(node, sym_date=date)))


def test_a_bad_signature_is_refused_with_the_masked_string_to_sign(node: Node) -> None:
    headers = _signed(node)
    headers["Authorization"] = "AAAA" + headers["Authorization"][4:]
    reason = _reason(_get(node, headers))
    assert "signature does not match" in reason
    assert node.keys["c1"] not in reason
    assert node.keys["c1"][:4] + "****" not in reason and "\\nSECRETKEY\\n" in reason


def test_a_request_signed_by_another_customer_for_this_path_is_refused(node: Node) -> None:
    headers = _signed(node, cid="c2")  # c2's valid signature, c1's path
    assert "c2" in _reason(_get(node, headers))


def test_a_key_of_another_customer_does_not_sign_for_this_one(node: Node) -> None:
    headers = signed_headers("c1", node.keys["c2"], "GET", PATH)
    assert "signature" in _reason(_get(node, headers))


def test_an_unknown_customer_is_refused(node: Node) -> None:
    path = "/symetry/rest/nobody/projects/list"
    headers = signed_headers("nobody", node.keys["c1"], "GET", path)
    assert "unknown customer" in _reason(_get(node, headers, path))


@pytest.mark.parametrize("drop", ["Authorization", "sym-date"], ids=["no-auth", "no-date"])
def test_a_missing_header_is_refused(node: Node, drop: str) -> None:
    headers = _signed(node)
    del headers[drop]
    assert "missing" in _reason(_get(node, headers))


def test_a_body_changed_after_signing_is_refused(node: Node) -> None:
    path = "/symetry/rest/c1/projects"
    headers = signed_headers("c1", node.keys["c1"], "POST", path, "pid=x", b"")
    resp = httpx.post(node.url + path + "?pid=y", headers=headers)
    assert "signature" in _reason(resp)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_probes_metrics_and_docs_need_no_signature(node: Node, path: str) -> None:
    assert httpx.get(node.url + path).status_code == 200


def test_metrics_count_requests_by_route_template(node: Node) -> None:
    _get(node, _signed(node))
    text = httpx.get(node.url + "/metrics").text
    assert 'route="/symetry/rest/{cid}/projects/list"' in text
    assert "fedstats_http_request_seconds_bucket" in text
    assert 'fedstats_errors_total{kind="auth"}' in text or "fedstats_errors" in text


def test_an_unknown_route_is_an_envelope_not_a_bare_error(node: Node) -> None:
    resp = httpx.get(node.url + "/symetry/rest/c1/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["statusCode"] == "NOT_FOUND"
