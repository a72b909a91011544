"""The Helm chart as rendered by helm itself: lint, values schema, CRDs, RBAC, workloads.

Each case renders the chart with the default values and with every option on
(`fedstats_harness.helm.NON_DEFAULT`: GPU peers, the node Ingress, a ServiceMonitor, an
external NATS, namespaced RBAC); what the API server says of the same manifests is in test_chart_cluster.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from fedstats_harness.helm import (
    CHART,
    NON_DEFAULT,
    REPO,
    find,
    operator_container,
    render,
    render_text,
    run_helm,
)
from fedstats_harness.natsproc import LISTENING, READY, nats_server_binary
from fedstats_harness.process import ChildProcess

VALUE_SETS = {"default": {}, "everything-on": NON_DEFAULT}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_passes(helm_bin: Path, values: dict[str, Any]) -> None:
    done = run_helm(helm_bin, "lint", "--strict", str(CHART), values=values)
    assert "0 chart(s) failed" in done.stdout


def test_the_crds_are_the_repositorys_crds_byte_for_byte(helm_bin: Path) -> None:
    assert (CHART / "crds").resolve() == (REPO / "crds").resolve()
    text = render_text(helm_bin, crds=True)
    sources = re.split(r"^---\n# Source: (.+)\n", text, flags=re.M)
    docs = dict(zip(sources[1::2], sources[2::2], strict=True))
    rendered = {Path(k).name: v for k, v in docs.items() if k.startswith("fedstats/crds/")}
    originals = {p.name: p.read_text() for p in sorted((REPO / "crds").glob("*.yaml"))}
    assert rendered.keys() == originals.keys()
    for name, original in originals.items():
        assert rendered[name].rstrip("\n") == original.rstrip("\n"), name


@pytest.mark.parametrize(("values", "message"), [
    ({"operator": {"replicas": 2}}, "additional properties 'replicas' not allowed"),
    ({"nats": {"enabled": False}}, "/nats/url"),
    ({"federation": {"topology": "star"}}, "/federation/topology"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
], ids=["unknown-key", "external-nats-without-url", "bad-topology", "bad-pull-policy"])
def test_the_values_schema_refuses(helm_bin: Path, values: dict[str, Any], message: str) -> None:
    done = run_helm(helm_bin, "template", "fs", str(CHART), values=values, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_the_operator_runs_one_replica_recreated_non_root_read_only(helm_bin: Path) -> None:
    objs = render(helm_bin)
    dep = find(objs, "Deployment", "fs-operator")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    c = operator_container(objs)
    assert c["command"] == ["fedstats", "operator"]
    assert c["image"] == "ghcr.io/fedstats/fedstats:0.1.0"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"liveness": 8081, "metrics": 9090}
    assert "--liveness=http://0.0.0.0:8081/healthz" in c["args"]
    assert pod["serviceAccountName"] == "fs-operator"


def _rules(objs: list[dict[str, Any]], kind: str) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for role in (o for o in objs if o["kind"] == kind):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    out.setdefault((group, res), set()).update(rule["verbs"])
    return out


# What operator/ does, resource by resource (see the header of templates/rbac.yaml).
LEAST_PRIVILEGE = {
    ("fedstats.io", "federations"): {"get", "list", "watch", "patch"},
    ("fedstats.io", "peers"): {"get", "list", "watch", "patch"},
    ("fedstats.io", "psrcontracts"): {"get", "list", "watch", "patch"},
    ("fedstats.io", "federations/status"): {"get", "patch"},
    ("fedstats.io", "peers/status"): {"get", "patch"},
    ("fedstats.io", "psrcontracts/status"): {"get", "patch"},
    ("fedstats.io", "federations/finalizers"): {"update"},
    ("fedstats.io", "peers/finalizers"): {"update"},
    # Server-side apply of an object that does not exist yet is authorized as `create`.
    # listed and watched too: a node's Deployment turning Available wakes its owner's reconcile
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "create", "patch"},
    ("networking.k8s.io", "ingresses"): {"get", "create", "patch", "delete"},
    ("", "secrets"): {"get", "create"},
    ("", "persistentvolumeclaims"): {"get", "create"},
    ("", "events"): {"create"},
    ("events.k8s.io", "events"): {"create"},
}
DISCOVERY = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def test_rbac_grants_exactly_what_the_operator_uses_cluster_wide(helm_bin: Path) -> None:
    objs = render(helm_bin)
    assert _rules(objs, "ClusterRole") == LEAST_PRIVILEGE | DISCOVERY
    # beside NATS only: its auth Secret, by name (tests/operator/test_nats_chart pins them)
    assert {o["metadata"]["name"] for o in objs if o["kind"] in ("Role", "RoleBinding")} == {
        "nats-authsync", "fs-operator-nats-auth"}
    binding = find(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fs-operator",
                                    "namespace": "fedstats"}]


def test_watched_namespaces_get_roles_and_only_discovery_stays_cluster_wide(
        helm_bin: Path) -> None:
    objs = render(helm_bin, NON_DEFAULT)
    assert _rules(objs, "ClusterRole") == DISCOVERY
    roles = [o for o in objs if o["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert _rules([roles[0]], "Role") == LEAST_PRIVILEGE
    args = operator_container(objs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_nats_runs_jetstream_on_a_volume_with_an_8mb_max_payload(helm_bin: Path) -> None:
    objs = render(helm_bin)
    sts = find(objs, "StatefulSet", "nats")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "10Gi"}
    conf = find(objs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert re.search(r"^max_payload: 8MB$", conf, re.M)
    assert "jetstream {" in conf and "store_dir: /data/jetstream" in conf
    assert find(objs, "Service", "nats")["spec"]["ports"][0]["port"] == 4222
    # The examples' Federation finds it under the name they use.
    example = yaml.safe_load((REPO / "examples" / "federation.yaml").read_text())
    assert example["spec"]["nats"]["url"] == "nats://nats.fedstats.svc:4222"


async def _server_info(url: str) -> tuple[int, bool]:
    nc = await nats.connect(url)
    try:
        info = await nc.jsm().account_info()
        return nc.max_payload, info.limits.max_memory != 0
    finally:
        await nc.close()


def test_the_rendered_nats_config_runs_on_the_real_nats_server(
        helm_bin: Path, tmp_path: Path) -> None:
    """The chart's nats.conf, with only the paths and ports moved onto this machine."""
    # auth off: an anonymous client reads the limits (tests/operator/test_nats_chart runs the
    # default, authorized config with the operator's users)
    values = {"nats": {"auth": {"enabled": False}}}
    conf = find(render(helm_bin, values), "ConfigMap", "nats-config")["data"]["nats.conf"]
    local = (conf.replace("port: 4222", "port: -1")  # -1: the server picks a free port
             .replace("http_port: 8222", "http_port: -1")
             .replace("/data/jetstream", str(tmp_path / "js"))
             .replace("/tmp/nats.pid", str(tmp_path / "nats.pid")))
    assert local.count("port: -1") == 2 and local.count(str(tmp_path)) == 2
    (tmp_path / "nats.conf").write_text(local)
    check = subprocess.run([nats_server_binary(), "-c", str(tmp_path / "nats.conf"), "-t"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    with ChildProcess([nats_server_binary(), "-c", str(tmp_path / "nats.conf"),
                       "-a", "127.0.0.1"], tmp_path / "nats.log") as server:
        port = server.wait_for_output(LISTENING, 15)["port"]
        server.wait_for_output(READY, 15)
        max_payload, jetstream = asyncio.run(_server_info(f"nats://127.0.0.1:{port}"))
    assert max_payload == 8 * 1024 * 1024
    assert jetstream


def test_gpu_peers_run_the_cuda_image_on_gpu_nodes(helm_bin: Path) -> None:
    objs = render(helm_bin, NON_DEFAULT)
    gpu = find(objs, "Peer", "hospital-b")["spec"]
    assert gpu["localType"] == "gpu"
    assert gpu["image"] == "registry.example.com/fedstats:9.9.9-cuda"
    assert gpu["gpu"]["count"] == 1
    assert gpu["gpu"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu["gpu"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    cpu = find(objs, "Peer", "hospital-a")["spec"]
    assert (cpu["localType"], cpu["image"]) == ("cpu", "registry.example.com/fedstats:9.9.9")
    fed = find(objs, "Federation", "demo")["spec"]
    assert fed["nats"]["url"] == "nats://nats.messaging.svc:4222"
    assert fed["admin"]["ingress"] == {"enabled": True, "host": "admin.example.com"}


def test_an_external_nats_means_no_nats_in_the_release(helm_bin: Path) -> None:
    kinds = {o["kind"] for o in render(helm_bin, NON_DEFAULT)}
    assert "StatefulSet" not in kinds and "ConfigMap" not in kinds


def test_the_ingress_routes_hosts_to_node_services(helm_bin: Path) -> None:
    ing = find(render(helm_bin, NON_DEFAULT), "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "demo.fedstats.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "demo-admin", "port": {"name": "http"}}
    assert ing["spec"]["tls"] == [{"secretName": "demo-tls",
                                   "hosts": ["demo.fedstats.example.com"]}]
    assert "nginx.ingress.kubernetes.io/proxy-body-size" in ing["metadata"]["annotations"]


def test_metrics_are_scraped_by_annotation_or_a_service_monitor(helm_bin: Path) -> None:
    objs = render(helm_bin)
    svc = find(objs, "Service", "fs-operator-metrics")
    assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert not [o for o in objs if o["kind"] == "ServiceMonitor"]
    on = render(helm_bin, NON_DEFAULT)
    monitor = find(on, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    labels = find(on, "Service", "fs-operator-metrics")["metadata"]["labels"]
    assert selector.items() <= labels.items()

