"""The operator (kopf, in-process through KopfRunner) against a real control plane and NATS.

The control plane runs controller-manager, scheduler and kwok, so Deployments really roll
out onto (fake) nodes. No node process runs here (test_federation_pods runs them), so
the steps that need a node's REST API stay False/NodeUnreachable and `Ready` False: these
tests wait on the conditions of the steps they check. What is checked is what a user
sees: kubectl's view of the resources and their conditions, and the streams on NATS.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kopf.testing import KopfRunner

from fedstats_harness.controlplane import ControlPlane
from fedstats_harness.k8s import WAIT, apply, condition, get, manifest, stream, wait
from fedstats_harness.natsproc import NatsServer


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, nats_server: NatsServer) -> Iterator[KopfRunner]:
    # NATS is set up before the operator and so torn down after it: finalizers still
    # deleting streams at the operator's exit must find the server there
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(cluster.kubeconfig))
        args = ["run", "--standalone", "--all-namespaces", "-m", "fedstats.operator.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    assert runner.exception is None, runner.output


def test_federation_gets_its_streams_and_admin_node_and_waits_for_the_node(
        cluster, operator, nats_server: NatsServer, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url, streamMaxMemory="8Mi"))
    wait(cluster, namespace, "federation/demo", "condition=AdminAvailable")
    wait(cluster, namespace, "federation/demo", "condition=StreamReady")

    for which in ("STATS", "CTL"):
        info = stream(nats_server.url, namespace, which)
        assert info is not None and info["max_bytes"] == 8 * 2**20
    fed = get(cluster, namespace, "federation", "demo")
    assert fed["status"]["observedGeneration"] == fed["metadata"]["generation"]
    assert {c["observedGeneration"] for c in fed["status"]["conditions"]} == {
        fed["metadata"]["generation"]}
    assert fed["status"]["streams"] == [f"FEDSTATS_{namespace}_STATS", f"FEDSTATS_{namespace}_CTL"]
    configured = condition(fed, "FederationConfigured")
    assert (configured["status"], configured["reason"]) == ("False", "NodeUnreachable")
    assert f"demo-admin.{namespace}.svc:8080" in configured["message"]
    assert condition(fed, "Ready")["status"] == "False"

    dep = get(cluster, namespace, "deployment", "demo-admin")
    assert dep["metadata"]["ownerReferences"][0]["uid"] == fed["metadata"]["uid"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["fedstats", "node"]
    assert get(cluster, namespace, "service", "demo-admin")["spec"]["ports"][0]["port"] == 8080
    assert get(cluster, namespace, "ingress", "demo-admin")["spec"]["rules"][0]["host"]
    key = get(cluster, namespace, "secret", "demo-federation-key")["data"]["federationKey"]
    assert len(key) == 60  # Base64 of Base64 of 32 bytes
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "involvedObject.name=demo,reason=NodeUnreachable").stdout
    assert "Warning" in events


def test_an_update_is_applied_and_observed_generation_follows(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "federation/demo", "condition=StreamReady")
    key = get(cluster, namespace, "secret", "demo-federation-key")["data"]
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url, syncSchedule="h3",
                                       streamMaxMemory="16Mi"))
    wait(cluster, namespace, "federation/demo", "jsonpath={.status.observedGeneration}=2")
    wait(cluster, namespace, "federation/demo", "condition=StreamReady")
    stats = stream(nats_server.url, namespace)
    assert stats is not None and stats["max_bytes"] == 16 * 2**20
    env = get(cluster, namespace, "deployment", "demo-admin")["spec"]["template"]["spec"][
        "containers"][0]["env"]
    assert {"name": "FEDSTATS_SYNC_SCHEDULE", "value": "h3"} in env
    assert get(cluster, namespace, "secret", "demo-federation-key")["data"] == key


def test_drift_in_owned_objects_is_undone(cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "federation/demo", "condition=AdminDeployed")
    cluster.kubectl("set", "image", "-n", namespace, "deployment/demo-admin", "node=evil:latest")
    cluster.kubectl("delete", "-n", namespace, "service", "demo-admin")
    image = manifest("federation.yaml")["spec"]["admin"]["image"]
    wait(cluster, namespace, "deployment/demo-admin",
         f"jsonpath={{.spec.template.spec.containers[0].image}}={image}")
    wait(cluster, namespace, "service/demo-admin", "create")


def test_peers_get_their_node_and_a_gpu_peer_lands_on_a_gpu_node(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    apply(cluster, namespace, manifest("peer-cpu.yaml"))
    apply(cluster, namespace, manifest("peer-gpu.yaml"))
    wait(cluster, namespace, "peer/hospital-a", "condition=Available")
    wait(cluster, namespace, "peer/hospital-b", "condition=Available")

    gpu = get(cluster, namespace, "deployment", "hospital-b-peer")["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    pods = get(cluster, namespace, "pods", "-l", "app.kubernetes.io/instance=hospital-b")
    assert [p["spec"]["nodeName"] for p in pods["items"]] == ["kwok-gpu-0"]
    cpu_pods = get(cluster, namespace, "pods", "-l", "app.kubernetes.io/instance=hospital-a")
    assert [p["spec"]["nodeName"] for p in cpu_pods["items"]] == ["kwok-cpu-0"]
    assert get(cluster, namespace, "secret", "hospital-b-peer-customers")["data"]
    peer = get(cluster, namespace, "peer", "hospital-b")
    assert condition(peer, "Joined")["reason"] == "NodeUnreachable"  # no admin node runs
    env = {e["name"]: e for e in gpu["containers"][0]["env"]}
    assert env["FEDSTATS_ENGINE"]["value"] == "cupy"
    assert env["FEDSTATS_INVITATION"]["valueFrom"]["secretKeyRef"] == {
        "name": "hospital-b-peer-invitation", "key": "invitation"}


def test_a_peer_waits_for_its_federation_then_becomes_ready(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("peer-cpu.yaml"))
    wait(cluster, namespace, "peer/hospital-a", "condition=FederationFound=False")
    peer = get(cluster, namespace, "peer", "hospital-a")
    assert condition(peer, "Ready")["reason"] == "FederationMissing"
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "peer/hospital-a", "condition=FederationFound")
    wait(cluster, namespace, "peer/hospital-a", "condition=Available")


def test_contract_rules_are_checked_with_the_nodes_parser(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    apply(cluster, namespace, manifest("psrcontract.yaml"))
    wait(cluster, namespace, "psrcontract/demo-privacy", "condition=Valid")
    status = get(cluster, namespace, "psrcontract", "demo-privacy")["status"]
    assert status["ruleCount"] == 2
    assert condition({"status": status}, "Applied")["reason"] == "NodeUnreachable"

    bad = manifest("psrcontract.yaml", rules="COUNT(age >= 150\n")
    bad["metadata"]["name"] = "broken"
    apply(cluster, namespace, bad)
    wait(cluster, namespace, "psrcontract/broken", "condition=Valid=False")
    status = get(cluster, namespace, "psrcontract", "broken")["status"]
    assert status["errors"] and "line 1" in status["errors"][0]
    assert condition({"status": status}, "Ready")["status"] == "False"


def test_an_unreachable_nats_is_reported_and_the_rest_still_deployed(
        cluster, operator, namespace, unreachable_port):
    url = f"nats://127.0.0.1:{unreachable_port}"
    apply(cluster, namespace, manifest("federation.yaml", url))
    wait(cluster, namespace, "federation/demo", "condition=StreamReady=False")
    fed = get(cluster, namespace, "federation", "demo")
    assert condition(fed, "StreamReady")["reason"] == "NatsUnavailable"
    assert condition(fed, "Ready")["status"] == "False"
    wait(cluster, namespace, "federation/demo", "condition=AdminDeployed")
    # Deleting it cannot delete the streams: after a bounded number of tries the finalizer
    # lets go (a namespace must not hang Terminating) and says what it left behind.
    cluster.kubectl("delete", "-n", namespace, "federation", "demo", f"--timeout={WAIT}")
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "reason=StreamsLeft", "-o", "jsonpath={.items[*].message}").stdout
    assert "gave up deleting the JetStream streams after 2 tries" in events


def test_deleting_the_federation_deletes_its_streams_and_owned_objects(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "federation/demo", "condition=AdminAvailable")
    wait(cluster, namespace, "federation/demo", "condition=StreamReady")
    assert stream(nats_server.url, namespace) is not None
    cluster.kubectl("delete", "-n", namespace, "federation", "demo", f"--timeout={WAIT}")
    assert stream(nats_server.url, namespace) is None
    assert stream(nats_server.url, namespace, "CTL") is None
    for owned in ("deployment/demo-admin", "service/demo-admin", "secret/demo-federation-key",
                  "secret/demo-admin-customers"):
        wait(cluster, namespace, owned, "delete")
