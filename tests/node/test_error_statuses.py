"""Every federation error reaches the client with the status its type says (the one mapping).

The table pins `classify` for each type of the federation's tree (and the retry-typed ones
of the other layers); the HTTP tests show the same statuses on a served node: a project
outside any federation (400), NATS unreachable at create (503 + Retry-After), and a
federation whose agent cannot reconnect after a restart, "not connected yet" (503 +
Retry-After) — never a 400 that reads as the client's mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fedstats.node.api.errors import classify
from fedstats.node.client import ApiError, Client
from fedstats.node.errors import Temporary
from fedstats.node.federation.errors import (
    BootstrapError,
    ContractError,
    FederationError,
    InviteError,
    NotAdmin,
    NotConnected,
    NotFederated,
    ScheduleError,
    Unreachable,
    WireError,
)
from fedstats.node.security import aead
from fedstats.node.security.errors import Overloaded
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import signed_headers
from fedstats_harness.localnet import NodeProcess
from fedstats_harness.natsproc import NatsServer

STATUSES = [
    (FederationError("no"), 400, None),
    (ContractError("bad rule", 1, 2), 400, None),
    (ScheduleError("bad schedule"), 400, None),
    (WireError("not ours"), 400, None),
    (InviteError("reused"), 400, None),
    (NotFederated("not federated"), 400, None),
    (BootstrapError("bad env"), 400, None),
    (NotAdmin("peer"), 403, None),
    (NotConnected("connecting"), 503, NotConnected.retry_after),
    (Unreachable("nats down"), 503, Unreachable.retry_after),
    (Overloaded("busy", retry_after=7), 503, 7),
]


@pytest.mark.parametrize(("exc", "status", "retry_after"), STATUSES,
                         ids=[type(e).__name__ for e, _, _ in STATUSES])
def test_each_federation_error_type_has_its_status(exc: Exception, status: int,
                                                   retry_after: int | None) -> None:
    found = classify(exc)
    assert (found.status, found.retry_after) == (status, retry_after)
    assert found.message == str(exc)


def test_temporary_errors_carry_their_retry_policy_in_the_type() -> None:
    assert issubclass(NotConnected, Temporary) and issubclass(Unreachable, Temporary)
    assert not issubclass(NotAdmin, Temporary) and not issubclass(InviteError, Temporary)
    assert NotConnected("x", retry_after=30).retry_after == 30


def _signed(node: Any, method: str, path: str, query: str | None = None,
            body: bytes = b"") -> httpx.Response:
    """A raw signed request as customer c1, so the test sees the answer's headers."""
    key = node.keys["c1"] if hasattr(node, "keys") else _key_of(node)
    headers = signed_headers("c1", key, method, path, query, body)
    url = node.url + path + (f"?{query}" if query else "")
    return httpx.request(method, url, content=body or None, headers=headers, timeout=30)


def _key_of(proc: NodeProcess) -> str:
    return str(orjson.loads(proc.customers_file.read_bytes())["c1"])


def test_a_project_outside_any_federation_is_a_client_mistake(
        node_factory: Callable[..., Any]) -> None:
    client = node_factory().client("c1")
    client.create_project("alone")
    with pytest.raises(ApiError) as e:
        client.fed_info("alone")
    assert e.value.http_status == 400
    assert "not part of a federation" in e.value.message
    assert e.value.values["errorKind"] == "federation"


def test_nats_unreachable_at_create_is_503_with_retry_after(
        node_factory: Callable[..., Any], unreachable_port: int) -> None:
    node = node_factory()
    options = {"fed_name": "f", "fed_type": "decentralized",
               "nats_hosts": f"nats://127.0.0.1:{unreachable_port}", "nats_req_timeout": 1}
    body = aead.encrypt(node.keys["c1"], orjson.dumps(options)).encode()
    resp = _signed(node, "POST", "/symetry/rest/c1/fedml/create", "pid=fed", body)
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) == Unreachable.retry_after
    assert resp.json()["statusCode"] == "SERVICE_UNAVAILABLE"
    assert "cannot reach NATS" in resp.json()["statusString"]


def test_not_connected_yet_is_503_with_retry_after(tmp_path: Path) -> None:
    keys = {"c1": new_secret_key()}
    admin = NodeProcess("admin", tmp_path, keys)
    try:
        with NatsServer(tmp_path / "nats") as nats:
            admin.start()
            with Client(admin.url, "c1", keys["c1"]) as client:
                client.fed_create("fed", {"fed_name": "f", "fed_type": "decentralized",
                                          "nats_hosts": nats.url, "nats_req_timeout": 2})
            admin.stop()
        # NATS is gone: the restarted node keeps the federation, its agent cannot reconnect
        admin.start()
        resp = _signed(admin, "GET", "/symetry/rest/c1/fedml/fed/info")
    finally:
        admin.stop()
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) == NotConnected.retry_after
    assert "not connected yet" in resp.json()["statusString"]
    assert resp.json()["values"]["errorKind"] == "temporary"
