"""The pure pieces of the node-facing steps: what is read from fedInfo and syncStats, what
is sent as a contract, where a node is called, and what the pods are told."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import yaml

from fedstats.operator import builders, contracts, federations, nodeapi, peers
from fedstats.operator.errors import WaitingFor
from fedstats_harness.controlplane import REPO


def example(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text())
    obj["metadata"].update(namespace="ns", uid="u-1")
    return obj


INFO = {"fed_name": "demo", "fed_is_admin": True, "fed_type": "decentralized",
        "fed_peer_id": "admin", "peersInfo": {"admin": {}, "hospital-b": {}, "hospital-a": {}}}


@pytest.mark.parametrize(("change", "complaint"), [
    ({}, None),
    ({"fed_name": "other"}, "belongs to federation 'other'"),
    ({"fed_is_admin": False}, "is a peer"),
    ({"fed_type": "centralized"}, "spec asks decentralized"),
], ids=["matches", "other-federation", "a-peer", "other-topology"])
def test_the_admins_fed_info_is_checked_against_the_federation(change, complaint):
    found = federations.check_info(example("federation.yaml"), INFO | change)
    assert found is None if complaint is None else complaint in found


def test_joined_peers_are_the_admins_peers_without_itself():
    assert federations.joined_peers(INFO) == ["hospital-a", "hospital-b"]


def test_the_last_sync_time_is_the_newest_snapshot_sent_or_received():
    log = ["2026-01-02 03:04:05Z sent snapshot v1: 10 rows, 900 bytes",
           "2026-01-02 03:04:07Z received snapshot v3 from admin: 5 rows",
           "2026-01-02 03:04:09Z reconnected to NATS; republishing"]
    assert peers.last_sync({"syncLog": log}) == "2026-01-02T03:04:07Z"
    assert peers.last_sync({"syncLog": log[2:]}) is None


def test_a_contract_is_sent_with_its_actions_as_grammar_lines():
    spec = example("psrcontract.yaml")["spec"]
    lines = contracts.contract_lines(spec)
    assert lines[:2] == ["@send block", "@receive allow"]
    assert "COUNT(age) >= 150" in lines
    assert contracts.check_rules("\n".join(lines))[0].status == "True"


def test_a_service_is_called_at_its_dns_name_unless_the_operator_maps_it(monkeypatch):
    monkeypatch.delenv(nodeapi.URLS_SETTING, raising=False)
    assert nodeapi.node_url("ns", "demo-admin") == "http://demo-admin.ns.svc:8080"
    monkeypatch.setenv(nodeapi.URLS_SETTING, '{"ns/demo-admin": "http://127.0.0.1:9"}')
    assert nodeapi.node_url("ns", "demo-admin") == "http://127.0.0.1:9"
    assert nodeapi.node_url("other", "demo-admin") == "http://demo-admin.other.svc:8080"


def test_the_operator_signs_as_the_customer_of_the_spec():
    fed = example("federation.yaml")
    secret = {"metadata": {"name": "demo-admin-customers"}, "data": {
        "customers.json": base64.b64encode(orjson.dumps({"operator": "k1", "x": "k2"})).decode()}}
    assert nodeapi.customer_of(fed, secret) == ("operator", "k1")
    fed["spec"]["admin"]["customerId"] = "nobody"
    with pytest.raises(WaitingFor):
        nodeapi.customer_of(fed, secret)


def test_the_admin_pod_is_told_whose_federation_it_makes():
    fed = example("federation.yaml")
    env = {e["name"]: e for e in builders.desired_admin_deployment(fed)["spec"]["template"][
        "spec"]["containers"][0]["env"]}
    assert env["FEDSTATS_CUSTOMER"]["value"] == "operator"
    assert env["FEDSTATS_PROJECT"]["value"] == "demo"
    assert env["FEDSTATS_STREAM_MAX_MEMORY"]["value"] == str(64 * 2**20)
    assert env["FEDSTATS_FEDERATION_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "demo-federation-key")


@pytest.mark.parametrize("ref", [None, {"name": "elsewhere", "invitationKey": "inv"}],
                         ids=["federationRef", "inviteSecretRef"])
def test_a_peer_pod_joins_with_the_invitation_of_its_secret(ref):
    peer = example("peer-cpu.yaml")
    fed = example("federation.yaml")
    if ref:
        peer["spec"].pop("federationRef")
        peer["spec"]["inviteSecretRef"] = ref
    dep = builders.desired_peer_deployment(peer, None if ref else fed)
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    invitation = env["FEDSTATS_INVITATION"]["valueFrom"]["secretKeyRef"]
    password = env["FEDSTATS_INVITATION_PASSWORD"]["valueFrom"]["secretKeyRef"]
    if ref:
        assert invitation == {"name": "elsewhere", "key": "inv"}
        assert "FEDSTATS_PROJECT" not in env  # the node takes the invitation's federation
    else:
        assert invitation == {"name": "hospital-a-peer-invitation", "key": "invitation"}
        assert env["FEDSTATS_PROJECT"]["value"] == "demo"
    assert password["key"] == "password"
    assert env["FEDSTATS_ROLE"]["value"] == "peer"


def test_the_invitation_secret_is_owned_by_its_peer():
    secret = builders.desired_invitation_secret(example("peer-cpu.yaml"), "sealed", "pw")
    assert secret["metadata"]["name"] == "hospital-a-peer-invitation"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Peer"
    assert secret["stringData"] == {"invitation": "sealed", "password": "pw"}


def test_importing_the_operator_loads_neither_numpy_nor_pyarrow():
    # the operator parses contracts with the grammar alone and reaches nodes by the client
    code = ("import sys, fedstats.operator.handlers; "
            "print(sorted(m for m in ('numpy', 'pyarrow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"


@contextlib.contextmanager
def _node(answer: Callable[[BaseHTTPRequestHandler], tuple[int, bytes]],
          ) -> Iterator[nodeapi.NodeApi]:  # fmt: skip
    """A stand-in node over real HTTP/1.1 (keep-alive) whose every GET `answer` answers,
    and the operator's API of it."""

    class Node(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = answer(self)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield nodeapi.NodeApi(f"http://127.0.0.1:{server.server_port}", "operator",
                              base64.b64encode(b"k" * 32).decode())
    finally:
        server.shutdown()
        server.server_close()


def _projects(names: list[str]) -> bytes:
    return orjson.dumps({"statusCode": "OK", "statusString": "", "values": {"stringList": names}})


def test_node_calls_are_not_queued_behind_a_few_threads():
    # 50 Peers reconciling at once each wait on a node (an invitation, a join): on asyncio's
    # default executor (6 threads on 2 cores) they queued six at a time. This node answers
    # only once 20 calls are in at once, so it passes only if 20 run together.
    together = threading.Barrier(20, timeout=20)

    def answer(_: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return 503, b'{"statusCode": "ERROR", "statusString": "not 20 at once"}'
        return 200, _projects(["p1"])

    async def twenty(api: nodeapi.NodeApi) -> list[list[str]]:
        return await asyncio.gather(*(api.projects() for _ in range(20)))

    with _node(answer) as api:
        assert asyncio.run(twenty(api)) == [["p1"]] * 20


def test_node_calls_share_one_connection_pool():
    # a client made per call built its own TLS context (~45 ms of CPU) and connection: the
    # membership poll alone, five calls a second, cost the operator a quarter of a core
    ports: list[int] = []

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        ports.append(request.client_address[1])
        return 200, _projects([])

    async def three(api: nodeapi.NodeApi) -> None:
        for _ in range(3):
            assert await api.projects() == []

    with _node(answer) as api:
        asyncio.run(three(api))
    assert len(ports) == 3 and len(set(ports)) == 1, ports
