"""The operator (kopf, in-process through KopfRunner) against a real control plane and NATS.

The control plane runs controller-manager, scheduler and kwok, so Deployments really roll
out onto (fake) nodes and `Ready` means what it will mean in a cluster. What is checked is
what a user sees: kubectl's view of the resources and their conditions, and the streams
on the NATS server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import nats
import orjson
import pytest
import yaml
from fedstats.node.federation.natsproc import NatsServer, free_port
from fedstats.operator.testing import REPO, ControlPlane
from kopf.testing import KopfRunner
from nats.js.errors import NotFoundError

EXAMPLES = REPO / "examples"
WAIT = "90s"


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane) -> Iterator[KopfRunner]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(cluster.kubeconfig))
        args = ["run", "--standalone", "--all-namespaces", "-m", "fedstats.operator.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    assert runner.exception is None, runner.output


def manifest(name: str, nats_url: str | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    obj["spec"].pop("storage", None)  # no volume provisioner here: PVCs would never bind
    obj["spec"].get("admin", {}).pop("storage", None)
    if nats_url:
        obj["spec"]["nats"]["url"] = nats_url
    obj["spec"].update(spec)
    return obj


def apply(cp: ControlPlane, ns: str, obj: dict[str, Any]) -> None:
    if obj["kind"] == "Federation":
        # Tests share one nats-server: each federation gets streams of its own.
        obj["spec"].setdefault("federationName", ns)
    cp.kubectl("apply", "-n", ns, "-f", "-", input=orjson.dumps(obj).decode())


def get(cp: ControlPlane, ns: str, *what: str) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(cp.kubectl("get", "-n", ns, *what, "-o", "json").stdout)
    return result


def wait(cp: ControlPlane, ns: str, what: str, condition: str = "condition=Ready") -> None:
    done = cp.kubectl("wait", "-n", ns, f"--for={condition}", f"--timeout={WAIT}", what,
                      check=False)
    if done.returncode != 0:
        status = cp.kubectl("get", "-n", ns, what, "-o", "jsonpath={.status}", check=False)
        raise AssertionError(f"{what} never reached {condition}: {status.stdout}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


async def _stream(url: str, name: str) -> dict[str, Any] | None:
    nc = await nats.connect(url)
    try:
        info = await nc.jsm().stream_info(name)
        return {"max_bytes": info.config.max_bytes, "subjects": info.config.subjects,
                "storage": info.config.storage}
    except NotFoundError:
        return None
    finally:
        await nc.close()


def stream(url: str, ns: str, which: str = "STATS") -> dict[str, Any] | None:
    """The stream of the federation made in namespace `ns` (see `apply`)."""
    return asyncio.run(_stream(url, f"FEDSTATS_{ns}_{which}"))


def test_federation_becomes_ready_with_its_streams_and_admin_node(
        cluster, operator, nats_server: NatsServer, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url, streamMaxMemory="8Mi"))
    wait(cluster, namespace, "federation/demo")

    for which in ("STATS", "CTL"):
        info = stream(nats_server.url, namespace, which)
        assert info is not None and info["max_bytes"] == 8 * 2**20
    fed = get(cluster, namespace, "federation", "demo")
    assert fed["status"]["observedGeneration"] == fed["metadata"]["generation"]
    assert {c["observedGeneration"] for c in fed["status"]["conditions"]} == {
        fed["metadata"]["generation"]}
    assert fed["status"]["streams"] == [f"FEDSTATS_{namespace}_STATS", f"FEDSTATS_{namespace}_CTL"]
    assert condition(fed, "FederationConfigured")["reason"] == "AwaitingNodeApi"

    dep = get(cluster, namespace, "deployment", "demo-admin")
    assert dep["metadata"]["ownerReferences"][0]["uid"] == fed["metadata"]["uid"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["fedstats", "node"]
    assert get(cluster, namespace, "service", "demo-admin")["spec"]["ports"][0]["port"] == 8080
    assert get(cluster, namespace, "ingress", "demo-admin")["spec"]["rules"][0]["host"]
    key = get(cluster, namespace, "secret", "demo-federation-key")["data"]["federationKey"]
    assert len(key) == 60  # Base64 of Base64 of 32 bytes
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "involvedObject.name=demo,reason=Ready").stdout
    assert "Ready" in events


def test_an_update_is_applied_and_observed_generation_follows(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "federation/demo")
    key = get(cluster, namespace, "secret", "demo-federation-key")["data"]
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url, syncSchedule="h3",
                                       streamMaxMemory="16Mi"))
    wait(cluster, namespace, "federation/demo", "jsonpath={.status.observedGeneration}=2")
    wait(cluster, namespace, "federation/demo")
    stats = stream(nats_server.url, namespace)
    assert stats is not None and stats["max_bytes"] == 16 * 2**20
    env = get(cluster, namespace, "deployment", "demo-admin")["spec"]["template"]["spec"][
        "containers"][0]["env"]
    assert {"name": "FEDSTATS_SYNC_SCHEDULE", "value": "h3"} in env
    assert get(cluster, namespace, "secret", "demo-federation-key")["data"] == key


def test_drift_in_owned_objects_is_undone(cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "federation/demo")
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
    wait(cluster, namespace, "peer/hospital-a")
    wait(cluster, namespace, "peer/hospital-b")

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
    assert condition(peer, "Joined")["reason"] == "AwaitingNodeApi"


def test_a_peer_waits_for_its_federation_then_becomes_ready(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("peer-cpu.yaml"))
    wait(cluster, namespace, "peer/hospital-a", "condition=FederationFound=False")
    peer = get(cluster, namespace, "peer", "hospital-a")
    assert condition(peer, "Ready")["reason"] == "FederationMissing"
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "peer/hospital-a")


def test_contract_rules_are_checked_with_the_nodes_parser(
        cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    apply(cluster, namespace, manifest("psrcontract.yaml"))
    wait(cluster, namespace, "psrcontract/demo-privacy")
    assert get(cluster, namespace, "psrcontract", "demo-privacy")["status"]["ruleCount"] == 2

    bad = manifest("psrcontract.yaml", rules="COUNT(age >= 150\n")
    bad["metadata"]["name"] = "broken"
    apply(cluster, namespace, bad)
    wait(cluster, namespace, "psrcontract/broken", "condition=Valid=False")
    status = get(cluster, namespace, "psrcontract", "broken")["status"]
    assert status["errors"] and "line 1" in status["errors"][0]
    assert condition({"status": status}, "Ready")["status"] == "False"


def test_an_unreachable_nats_is_reported_and_the_rest_still_deployed(
        cluster, operator, namespace):
    apply(cluster, namespace, manifest("federation.yaml", f"nats://127.0.0.1:{free_port()}"))
    wait(cluster, namespace, "federation/demo", "condition=StreamReady=False")
    fed = get(cluster, namespace, "federation", "demo")
    assert condition(fed, "StreamReady")["reason"] == "NatsUnavailable"
    assert condition(fed, "Ready")["status"] == "False"
    wait(cluster, namespace, "federation/demo", "condition=AdminDeployed")
    # Deleting it now would wait on NATS forever (the finalizer must delete the streams):
    # take the finalizer off so the namespace can go.
    cluster.kubectl("patch", "-n", namespace, "federation", "demo", "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}')


def test_deleting_the_federation_deletes_its_streams(cluster, operator, nats_server, namespace):
    apply(cluster, namespace, manifest("federation.yaml", nats_server.url))
    wait(cluster, namespace, "federation/demo")
    assert stream(nats_server.url, namespace) is not None
    cluster.kubectl("delete", "-n", namespace, "federation", "demo", f"--timeout={WAIT}")
    assert stream(nats_server.url, namespace) is None
    assert stream(nats_server.url, namespace, "CTL") is None
