"""The desired-state builders, checked as data: no API server, no NATS."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from fedstats.operator import builders, names, nats_admin
from fedstats.operator.errors import InvalidSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str, uid: str = "uid-1", namespace: str = "team") -> dict[str, Any]:
    obj = yaml.safe_load((EXAMPLES / name).read_text())
    obj["metadata"].update(uid=uid, namespace=namespace)
    return obj


@pytest.fixture
def fed() -> dict[str, Any]:
    return example("federation.yaml")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def test_admin_deployment_runs_the_node_command_with_its_customers_and_data(fed):
    dep = builders.desired_admin_deployment(fed)
    c = container(dep)
    assert c["command"] == ["fedstats", "node", "--host", "0.0.0.0", "--port", "8080",
                            "--data-dir", "/data", "--customers", "/etc/fedstats/customers.json"]
    assert c["image"] == fed["spec"]["admin"]["image"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"data": "/data", "customers": "/etc/fedstats/customers.json"}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "demo-admin-data"
    assert volumes["customers"]["secret"]["secretName"] == "demo-admin-customers"
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                              "limits": {"memory": "1Gi"}}


def test_admin_deployment_carries_federation_settings_and_key_reference(fed):
    env = env_of(builders.desired_admin_deployment(fed))
    assert env["FEDSTATS_FEDERATION"] == "demo"
    assert env["FEDSTATS_TOPOLOGY"] == "decentralized"
    assert env["FEDSTATS_SYNC_SCHEDULE"] == "m30"
    assert env["FEDSTATS_NATS_URL"] == "nats://nats.fedstats.svc:4222"
    assert env["FEDSTATS_NATS_REQ_TIMEOUT"] == "10"
    assert env["FEDSTATS_FEDERATION_KEY"] == {
        "secretKeyRef": {"name": "demo-federation-key", "key": "federationKey"}}


def test_nats_credentials_come_from_the_referenced_secret_never_inline(fed):
    fed["spec"]["nats"]["authSecretRef"] = {"name": "nats-auth"}
    env = env_of(builders.desired_admin_deployment(fed))
    assert env["FEDSTATS_NATS_USER"] == {"secretKeyRef": {"name": "nats-auth", "key": "user"}}
    assert env["FEDSTATS_NATS_PASSWORD"] == {
        "secretKeyRef": {"name": "nats-auth", "key": "password"}}


def test_every_object_is_owned_by_its_resource_as_controller(fed):
    objs = [builders.desired_admin_deployment(fed), builders.desired_service(fed),
            builders.desired_ingress(fed), builders.desired_pvc(fed),
            builders.desired_federation_key_secret(fed, "k"),
            builders.desired_customers_secret(fed, "k")]
    for obj in objs:
        assert obj is not None
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "fedstats.io/v1alpha1", "kind": "Federation",
                       "name": "demo", "uid": "uid-1", "controller": True,
                       "blockOwnerDeletion": True}
        assert obj["metadata"]["namespace"] == "team"


def test_service_selects_exactly_the_deployments_pods(fed):
    dep, svc = builders.desired_admin_deployment(fed), builders.desired_service(fed)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http",
                                     "protocol": "TCP"}]


def test_ingress_routes_the_host_to_the_admin_service_with_tls(fed):
    ing = builders.desired_ingress(fed)
    assert ing is not None
    assert ing["spec"]["ingressClassName"] == "nginx"
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "demo.fedstats.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "demo-admin", "port": {"name": "http"}}
    assert ing["spec"]["tls"] == [{"hosts": ["demo.fedstats.example.com"],
                                   "secretName": "demo-fedstats-tls"}]


def test_no_ingress_and_no_volume_claim_unless_asked(fed):
    fed["spec"]["admin"].pop("ingress")
    fed["spec"]["admin"].pop("storage")
    assert builders.desired_ingress(fed) is None
    assert builders.desired_pvc(fed) is None
    volumes = builders.desired_admin_deployment(fed)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes


def test_customers_secret_maps_the_customer_id_to_the_given_key(fed):
    secret = builders.desired_customers_secret(fed, "S3CRET")
    assert orjson.loads(secret["stringData"]["customers.json"]) == {"operator": "S3CRET"}


def test_cpu_peer_runs_numpy_without_gpu_scheduling(fed):
    peer = example("peer-cpu.yaml", uid="uid-2")
    dep = builders.desired_peer_deployment(peer, fed)
    pod = dep["spec"]["template"]["spec"]
    assert dep["metadata"]["name"] == "hospital-a-peer"
    assert env_of(dep)["FEDSTATS_ENGINE"] == "numpy"
    assert env_of(dep)["FEDSTATS_ROLE"] == "peer"
    assert "nvidia.com/gpu" not in container(dep)["resources"].get("limits", {})
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert dep["metadata"]["labels"]["fedstats.io/federation"] == "demo"


def test_gpu_peer_asks_for_gpus_lands_on_gpu_nodes_and_runs_cupy(fed):
    peer = example("peer-gpu.yaml", uid="uid-3")
    peer["spec"]["gpu"]["count"] = 2
    dep = builders.desired_peer_deployment(peer, fed)
    pod = dep["spec"]["template"]["spec"]
    assert container(dep)["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": 2}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert env_of(dep)["FEDSTATS_ENGINE"] == "cupy"


def test_gpu_peer_without_tolerations_tolerates_the_usual_gpu_taint(fed):
    peer = example("peer-gpu.yaml", uid="uid-3")
    del peer["spec"]["gpu"]["tolerations"]
    pod = builders.desired_peer_deployment(peer, fed)["spec"]["template"]["spec"]
    assert pod["tolerations"] == builders.DEFAULT_GPU_TOLERATIONS


def test_peer_invited_from_elsewhere_reads_its_invitation_from_the_secret():
    peer = example("peer-cpu.yaml", uid="uid-4")
    del peer["spec"]["federationRef"]
    peer["spec"]["inviteSecretRef"] = {"name": "invite"}
    env = env_of(builders.desired_peer_deployment(peer, None))
    assert env["FEDSTATS_INVITATION"] == {"secretKeyRef": {"name": "invite",
                                                           "key": "invitation"}}
    assert "FEDSTATS_NATS_URL" not in env


def test_builders_leave_their_input_unchanged(fed):
    peer = example("peer-gpu.yaml")
    before = copy.deepcopy((fed, peer))
    builders.desired_admin_deployment(fed)
    builders.desired_peer_deployment(peer, fed)
    assert (fed, peer) == before


@pytest.mark.parametrize(("text", "expected"), [
    ("64Mi", 64 * 2**20), ("1Gi", 2**30), ("500k", 500_000), ("2M", 2_000_000), ("4096", 4096),
], ids=["Mi", "Gi", "k", "M", "bytes"])
def test_stream_memory_quantities_parse_to_bytes(text, expected):
    assert nats_admin.parse_bytes(text) == expected


def test_a_malformed_stream_memory_is_a_permanent_error():
    with pytest.raises(InvalidSpec, match="streamMaxMemory"):
        nats_admin.parse_bytes("64 MB")


def test_streams_are_the_ones_the_node_agents_use_with_the_asked_limit(fed):
    fed["spec"]["streamMaxMemory"] = "8Mi"
    stats, ctl = nats_admin.desired_streams(fed)
    assert (stats.name, ctl.name) == ("FEDSTATS_demo_STATS", "FEDSTATS_demo_CTL")
    assert names.stream_names(fed) == [stats.name, ctl.name]
    assert stats.subjects == ["fedstats.demo.stats.>"]
    assert stats.max_bytes == ctl.max_bytes == 8 * 2**20
    assert stats.max_msgs_per_subject == 1
