"""The operator's pods, run: a Federation and two Peers become a federation that syncs.

kwok makes pods Running without running them, so here `LocalKubelet` runs what the
Deployments the operator made say (command, env resolved from the API server's Secrets,
volumes) as local processes, on a real control plane and a real nats-server. The operator
reaches those processes through its node-URL setting, as it would reach Services. What
is checked is what users see: conditions and Events, the invitation Secret, and the
federated model beside the pooled scikit-learn one.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kopf.testing import KopfRunner

from fedstats.node.client import ApiError, Client
from fedstats.node.security.invites import KEY_MARK, open_invite
from fedstats.operator.nodeapi import URLS_SETTING
from fedstats_harness.controlplane import ControlPlane
from fedstats_harness.e2e import driver
from fedstats_harness.k8s import apply, condition, get, manifest, stream, wait
from fedstats_harness.kubelet import LocalKubelet
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.waiting import eventually

PEERS = ("hospital-a", "hospital-b")
NODES = ("demo-admin", *(f"{p}-peer" for p in PEERS))


@contextmanager
def operator_in(cp: ControlPlane, ns: str) -> Iterator[KopfRunner]:
    """The operator watching `ns` only, so a test may stop and start its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(cp.kubeconfig))
        args = ["run", "--standalone", "--namespace", ns, "-m", "fedstats.operator.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    assert runner.exception is None, runner.output


def peer(name: str) -> dict[str, Any]:
    obj = manifest("peer-cpu.yaml")  # CPU peers: this machine has no GPU for CuPy
    obj["metadata"]["name"] = name
    return obj


def make_namespace(cp: ControlPlane, name: str) -> Iterator[str]:
    cp.kubectl("create", "namespace", name)
    yield name
    cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


def customer(cp: ControlPlane, ns: str, node: str) -> tuple[str, str]:
    data = get(cp, ns, "secret", f"{node}-customers")["data"]["customers.json"]
    [(cid, key)] = orjson.loads(base64.b64decode(data)).items()
    return cid, key


def secret_data(cp: ControlPlane, ns: str, name: str) -> dict[str, str]:
    data = get(cp, ns, "secret", name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def invitations_issued(kubelet: LocalKubelet) -> int:
    db = kubelet.dir / "demo-admin" / "volumes" / "data" / "federation.sqlite"
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM fed_tokens").fetchone()[0])


class Running:
    """A Federation with its Peers, their pods run by a LocalKubelet, the operator watching."""

    def __init__(self, cp: ControlPlane, ns: str, nats_url: str, kubelet: LocalKubelet) -> None:
        self.cp, self.ns, self.nats_url, self.kubelet = cp, ns, nats_url, kubelet

    def client(self, node: str) -> Client:
        return Client(self.kubelet.url(node), *customer(self.cp, self.ns, node))


@pytest.fixture(scope="module")
def running(cluster: ControlPlane, nats_server: NatsServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from _running(cluster, nats_server, tmp_path_factory)


def _running(cp: ControlPlane, nats_server: NatsServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    for ns in make_namespace(cp, "t-federation-pods"):
        with pytest.MonkeyPatch.context() as mp, \
                LocalKubelet(cp, ns, tmp_path_factory.mktemp("pods")) as kubelet:
            mp.setenv(URLS_SETTING, orjson.dumps(kubelet.url_map(*NODES)).decode())
            with operator_in(cp, ns):
                apply(cp, ns, manifest("federation.yaml", nats_server.url, syncSchedule="s1"))
                for name in PEERS:
                    apply(cp, ns, peer(name))
                for node in NODES:  # each peer's pod waits for its invitation Secret
                    kubelet.start(node)
                wait(cp, ns, "federation/demo")
                for name in PEERS:
                    wait(cp, ns, f"peer/{name}")
                yield Running(cp, ns, nats_server.url, kubelet)
                cp.kubectl("delete", "-n", ns, "federation", "demo", "--timeout=60s")


def test_the_rendered_pods_form_a_federation_equal_to_the_pooled_model(running: Running):
    clients = {node: running.client(node) for node in NODES}
    try:
        result = driver().learn_and_compare(clients, "demo-admin",
                                            dict.fromkeys(NODES, running.ns), timeout=60)
    finally:
        for c in clients.values():
            c.close()
    assert result["rows"] == 442  # the admin merged every peer's rows
    assert result["worst_relative_error"] < 1e-9


def test_conditions_are_ready_with_the_observed_generation(running: Running):
    cp, ns = running.cp, running.ns
    fed = get(cp, ns, "federation", "demo")
    gen = fed["metadata"]["generation"]
    assert fed["status"]["observedGeneration"] == gen
    assert {c["type"]: (c["status"], c["observedGeneration"]) for c in
            fed["status"]["conditions"]} == {
        t: ("True", gen) for t in ("AdminAvailable", "AdminDeployed", "FederationConfigured",
                                   "Ready", "StreamReady")}
    assert fed["status"]["peers"] == list(PEERS)
    for name in PEERS:
        obj = get(cp, ns, "peer", name)
        assert condition(obj, "Joined")["status"] == "True"
        assert condition(obj, "Ready")["observedGeneration"] == obj["metadata"]["generation"]
        assert obj["status"]["peerId"] == name
    synced = eventually(lambda: get(cp, ns, "peer", "hospital-a")["status"].get("lastSyncTime"))
    assert synced.endswith("Z")
    events = cp.kubectl("get", "events", "-n", ns, "--field-selector",
                        "involvedObject.name=hospital-a,reason=Invited").stdout
    assert "Secret hospital-a-peer-invitation" in events
    ready = cp.kubectl("get", "events", "-n", ns, "--field-selector",
                       "involvedObject.name=demo,reason=Ready").stdout
    assert "FederationConfigured" in ready


def test_the_invitation_secret_opens_with_its_password_and_works_once(running: Running):
    cp, ns = running.cp, running.ns
    secret = get(cp, ns, "secret", "hospital-a-peer-invitation")
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Peer"
    data = secret_data(cp, ns, "hospital-a-peer-invitation")
    # the operator's password is random and long: sealed with HKDF, no scrypt work factor
    assert data["invitation"].startswith(KEY_MARK) and len(data["password"]) >= 32
    opened = open_invite(data["password"], data["invitation"])
    assert (opened["fed_name"], opened["fed_peer_id"]) == (ns, "hospital-a")
    with running.client("hospital-a-peer") as again, pytest.raises(ApiError) as refused:
        again.fed_join("second-join", data["invitation"], data["password"])
    assert refused.value.http_status == 400


def test_a_contract_is_validated_and_applied_by_the_admin_node(running: Running):
    cp, ns = running.cp, running.ns
    apply(cp, ns, manifest("psrcontract.yaml", sendAction="allow"))
    wait(cp, ns, "psrcontract/demo-privacy")
    status = get(cp, ns, "psrcontract", "demo-privacy")["status"]
    assert condition({"status": status}, "Applied")["status"] == "True"
    with running.client("demo-admin") as admin:
        contract = admin.fed_info(ns)["contract"]
    assert contract[:2] == ["@send allow", "@receive allow"]
    assert "COUNT(age) >= 150" in contract


def test_deleting_a_peer_takes_its_rows_out_of_the_admins_merge(running: Running):
    cp, ns = running.cp, running.ns
    names = [f"x{i}" for i in range(10)] + ["y"]
    rows = np.random.default_rng(8).normal(size=(30, len(names)))
    with running.client("demo-admin") as admin, running.client("hospital-b-peer") as b:
        def merged() -> int:
            return int(admin.project_info(ns)["rows"])

        before = merged()
        b.learn(ns, {"attributeNames": names, "attributeTypes": ["C"] * len(names),
                     "data": [[repr(float(v)) for v in r] for r in rows]})
        theirs = int(b.project_info(ns)["localRows"])
        eventually(lambda: merged() == before + 30)
        cp.kubectl("delete", "-n", ns, "peer", "hospital-b", "--timeout=60s")
        # the Peer's finalizer had the admin node remove it: its rows leave the merge
        assert eventually(lambda: merged() == before + 30 - theirs or None) is True
    events = cp.kubectl("get", "events", "-n", ns, "--field-selector",
                        "involvedObject.name=hospital-b,reason=PeerRemoved").stdout
    assert "removed peer hospital-b" in events


def test_restarting_the_operator_mid_reconcile_issues_no_second_invitation(
        cluster: ControlPlane, nats_server: NatsServer, tmp_path: Path):
    for ns in make_namespace(cluster, "t-operator-restart"):
        with pytest.MonkeyPatch.context() as mp, LocalKubelet(cluster, ns, tmp_path) as kubelet:
            # added to the map, not in its place: the module's operator, still running,
            # reads the setting at each call and must keep reaching its own pods
            mp.setenv(URLS_SETTING, orjson.dumps(
                {**orjson.loads(os.environ.get(URLS_SETTING) or "{}"),
                 **kubelet.url_map(*NODES[:2])}).decode())
            with operator_in(cluster, ns):
                apply(cluster, ns, manifest("federation.yaml", nats_server.url))
                apply(cluster, ns, peer("hospital-a"))
                kubelet.start("demo-admin")
                # The invitation is issued; the peer has not joined: stop the operator here.
                wait(cluster, ns, "secret/hospital-a-peer-invitation", "create")
                wait(cluster, ns, "peer/hospital-a", "condition=Joined=False")
            issued = secret_data(cluster, ns, "hospital-a-peer-invitation")
            with operator_in(cluster, ns):
                kubelet.start("hospital-a-peer")
                wait(cluster, ns, "peer/hospital-a")
                wait(cluster, ns, "federation/demo")
                assert secret_data(cluster, ns, "hospital-a-peer-invitation") == issued
                assert invitations_issued(kubelet) == 1
                cluster.kubectl("delete", "-n", ns, "federation", "demo", "--timeout=60s")
            assert stream(nats_server.url, ns) is None
