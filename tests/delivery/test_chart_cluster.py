"""The chart against the operator tests' real control plane (etcd + kube-apiserver + workers).

The API server judges the rendered manifests (server-side dry-run, then a real
`helm install`), and the operator Deployment's pod spec — its command, arguments and
environment as rendered — runs here as a local process under the chart's ServiceAccount
and RBAC, and reconciles the Federation and Peers the chart made until they are Ready.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fedstats_harness.controlplane import ControlPlane
from fedstats_harness.helm import (
    CHART,
    KUBE_VERSION,
    NON_DEFAULT,
    REPO,
    find,
    operator_container,
    render,
    run_helm,
)
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.ports import free_port
from fedstats_harness.process import ChildProcess

pytestmark = pytest.mark.slow
WAIT = "120s"

# A stand-in for the Prometheus Operator's CRD, so the API server can judge a ServiceMonitor.
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"kind": "ServiceMonitor", "plural": "servicemonitors"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                 "openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def _name(request: pytest.FixtureRequest, prefix: str) -> str:
    return f"{prefix}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]}"


@pytest.fixture
def ns(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _name(request, "chart")
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _apply_json(cp: ControlPlane, objs: list[dict[str, Any]], *flags: str) -> str:
    stream = "\n".join(orjson.dumps(o).decode() for o in objs)
    return cp.kubectl("apply", "--server-side", "--force-conflicts",
                      "--field-manager=fedstats-chart-test", *flags, "-f", "-",
                      input=stream).stdout


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["default", "everything-on"])
def test_the_api_server_accepts_every_rendered_manifest(
        control_plane: ControlPlane, helm_bin: Path, ns: str, values: dict[str, Any]) -> None:
    _apply_json(control_plane, [SERVICE_MONITOR_CRD])
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/servicemonitors.monitoring.coreos.com")
    for watched in values.get("operator", {}).get("watchNamespaces", []):
        control_plane.kubectl("create", "namespace", watched, check=False)
    objs = render(helm_bin, values, namespace=ns, release=ns, crds=True)
    out = _apply_json(control_plane, objs, "--dry-run=server")
    assert out.count("serverside-applied (server dry run)") == len(objs), out


def test_helm_install_creates_the_release_and_prints_the_notes(
        control_plane: ControlPlane, helm_bin: Path, ns: str) -> None:
    kc = f"--kubeconfig={control_plane.kubeconfig}"
    done = run_helm(helm_bin, "install", ns, str(CHART), "--namespace", ns, kc, values={})
    assert "STATUS: deployed" in done.stdout
    notes = done.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {ns} apply -f examples/federation.yaml" in notes
    assert "demo-admin-customers" in notes
    assert "from fedstats.node.client import Client" in notes
    assert f"nats://nats.{ns}.svc:4222" in notes
    dep = control_plane.kubectl("get", "-n", ns, "deployment", f"{ns}-operator", "-o",
                                "jsonpath={.spec.strategy.type}").stdout
    assert dep == "Recreate"
    sts = control_plane.kubectl("get", "-n", ns, "statefulset", "nats", "-o", "name").stdout
    assert sts.strip() == "statefulset.apps/nats"
    run_helm(helm_bin, "uninstall", ns, "--namespace", ns, kc)


# ---- the operator's pod spec, run as a local process


def _service_account_kubeconfig(cp: ControlPlane, ns: str, sa: str, path: Path) -> Path:
    """A kubeconfig acting as the chart's ServiceAccount (a TokenRequest token)."""
    token = cp.kubectl("create", "token", sa, "-n", ns, "--duration=1h").stdout.strip()
    path.write_text(orjson.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "local", "cluster": {
            "server": cp.server, "certificate-authority": str(cp.dir / "ca.crt")}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": sa,
                                                "namespace": ns}}],
    }).decode())
    return path


def _command(container: dict[str, Any]) -> list[str]:
    """The container's command and args, `fedstats` being this environment's."""
    command = [*container["command"], *container["args"]]
    assert command[0] == "fedstats"
    fedstats = Path(sys.executable).with_name("fedstats")
    probe = subprocess.run([str(fedstats), "operator", "--help"], capture_output=True,
                           timeout=60)
    if probe.returncode == 0:
        return [str(fedstats), *command[1:]]
    # Until node/cli.py dispatches `operator` (see test_dockerfile), the same main().
    assert command[1] == "operator"
    return [sys.executable, "-m", "fedstats.operator", *command[2:]]


@pytest.fixture
def chart_operator(cluster: ControlPlane, helm_bin: Path, request: pytest.FixtureRequest,
                   tmp_path: Path) -> Iterator[tuple[str, str, ChildProcess, Path]]:
    """Installs the chart's manifests (a federation with a CPU and a GPU peer, an external
    NATS), then starts the operator as its rendered Deployment says, as its ServiceAccount."""
    ns = _name(request, "op")
    cluster.kubectl("create", "namespace", ns)
    nats_dir = tmp_path / "nats"
    server = NatsServer(nats_dir).start()
    liveness, metrics = free_port(), free_port()
    values = {
        "nats": {"enabled": False, "url": server.url},
        "operator": {"livenessPort": liveness, "metricsPort": metrics,
                     "resyncSeconds": 2, "retrySeconds": 1},
        "federation": {"create": True, "name": "demo",
                       "peers": [{"name": "hospital-a"}, {"name": "hospital-b", "gpu": True}]},
    }
    objs = render(helm_bin, values, namespace=ns, release=ns)
    _apply_json(cluster, objs)
    container = operator_container([o | {"metadata": o["metadata"] | {"name": "fs-operator"}}
                                    if o["kind"] == "Deployment" else o for o in objs])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSTATS_OPERATOR_")}
    env |= {e["name"]: e["value"] for e in container["env"]}
    sa = find(objs, "ServiceAccount")["metadata"]["name"]
    env["KUBECONFIG"] = str(_service_account_kubeconfig(cluster, ns, sa, tmp_path / "sa.kc"))
    log_path = tmp_path / "operator.log"
    operator = ChildProcess(_command(container), log_path, env=env, cwd=tmp_path,
                            name="operator").start()
    try:
        operator.wait_until(lambda: _answers(f"http://127.0.0.1:{liveness}/healthz"), 60,
                            what="answering its liveness probe", interval=0.2)
        yield ns, server.url, operator, log_path
    finally:
        # The federation's finalizer needs the operator: delete before stopping it.
        cluster.kubectl("delete", "-n", ns, "federations,peers", "--all", "--timeout=60s",
                        check=False)
        operator.stop(grace=30)
        server.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for kind in ("clusterrole", "clusterrolebinding"):
            cluster.kubectl("delete", kind, f"{ns}-operator", check=False)
        shutil.rmtree(nats_dir, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _wait(cp: ControlPlane, ns: str, what: str, log: Path, condition: str = "Ready") -> None:
    done = cp.kubectl("wait", "-n", ns, f"--for=condition={condition}", f"--timeout={WAIT}",
                      what, check=False)
    if done.returncode != 0:
        status = cp.kubectl("get", "-n", ns, what, "-o", "jsonpath={.status}", check=False)
        raise AssertionError(f"{what} not {condition}: {status.stdout}\n{log.read_text()[-4000:]}")


def test_the_operator_as_deployed_reconciles_the_charts_federation_with_its_rbac(
        cluster: ControlPlane, chart_operator: tuple[str, str, ChildProcess, Path],
        ) -> None:
    ns, _, operator, log = chart_operator
    # No node process runs here, so Ready (which needs the nodes' REST API) stays False:
    # wait on what the operator itself makes; tests/operator runs the nodes.
    _wait(cluster, ns, "federation/demo", log, "StreamReady")
    _wait(cluster, ns, "federation/demo", log, "AdminAvailable")
    _wait(cluster, ns, "peer/hospital-a", log, "Available")
    _wait(cluster, ns, "peer/hospital-b", log, "Available")
    fed = orjson.loads(cluster.kubectl("get", "-n", ns, "federation", "demo", "-o",
                                       "json").stdout)
    assert fed["status"]["streams"] == ["FEDSTATS_demo_STATS", "FEDSTATS_demo_CTL"]
    customers = cluster.kubectl("get", "-n", ns, "secret", "demo-admin-customers", "-o",
                                "jsonpath={.data.customers\\.json}").stdout
    assert orjson.loads(base64.b64decode(customers))  # what NOTES tells the user to read
    pods = orjson.loads(cluster.kubectl("get", "-n", ns, "pods", "-l",
                                        "app.kubernetes.io/instance=hospital-b",
                                        "-o", "json").stdout)
    assert [p["spec"]["nodeName"] for p in pods["items"]] == ["kwok-gpu-0"]
    text = log.read_text()
    assert "Forbidden" not in text and " 403" not in text, text[-4000:]
    assert operator.running


@pytest.mark.parametrize(("verb", "resource", "allowed"), [
    ("create", "deployments.apps", "yes"),
    ("patch", "deployments.apps", "yes"),
    ("create", "secrets", "yes"),
    ("list", "secrets", "no"),
    ("delete", "deployments.apps", "no"),
    ("create", "pods", "no"),
    ("delete", "federations.fedstats.io", "no"),
    ("update", "federations.fedstats.io --subresource=finalizers", "yes"),
    ("patch", "peers.fedstats.io --subresource=status", "yes"),
    ("create", "clusterroles.rbac.authorization.k8s.io", "no"),
], ids=lambda v: str(v))
def test_the_service_account_can_do_what_the_operator_does_and_no_more(
        control_plane: ControlPlane, helm_bin: Path, ns: str, verb: str, resource: str,
        allowed: str) -> None:
    objs = render(helm_bin, {}, namespace=ns, release=ns)
    rbac = [o for o in objs if o["kind"] in ("ServiceAccount", "ClusterRole",
                                             "ClusterRoleBinding")]
    _apply_json(control_plane, rbac)
    who = f"system:serviceaccount:{ns}:{ns}-operator"
    done = control_plane.kubectl("auth", "can-i", verb, *resource.split(), "-n", ns,
                                 f"--as={who}", check=False)
    assert done.stdout.strip() == allowed
    for kind in ("clusterrole", "clusterrolebinding"):
        control_plane.kubectl("delete", kind, f"{ns}-operator", check=False)


def test_kube_version_of_the_renders_is_the_control_planes(control_plane: ControlPlane) -> None:
    version = orjson.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == f"v{KUBE_VERSION}"


def test_e2e_runs_examples_rewritten_onto_its_image_that_the_api_server_accepts(
        control_plane: ControlPlane, ns: str) -> None:
    """e2e/run.sh's inline rewrite of examples/ (it cannot run here: no container engine)."""
    script = (REPO / "e2e" / "run.sh").read_text()
    assert subprocess.run(["bash", "-n", str(REPO / "e2e" / "run.sh")]).returncode == 0
    snippet = script.split("<<'PY' | kubectl", 1)[1].split("\n", 1)[1].split("\nPY\n", 1)[0]
    files = [str(REPO / "examples" / f)
             for f in ("federation.yaml", "peer-cpu.yaml", "psrcontract.yaml")]
    out = subprocess.run([sys.executable, "-", "fedstats.local/fedstats:e2e", *files],
                         input=snippet, capture_output=True, text=True, check=True).stdout
    objs = [orjson.loads(line) for line in out.splitlines()]
    assert [o["metadata"]["name"] for o in objs] == [
        "demo", "hospital-a", "demo-privacy", "hospital-c"]
    assert objs[0]["spec"]["admin"]["image"] == "fedstats.local/fedstats:e2e"
    assert objs[3]["spec"]["imagePullPolicy"] == "Never"
    applied = _apply_json(control_plane, [o | {"metadata": o["metadata"] | {"namespace": ns}}
                                          for o in objs], "--dry-run=server")
    assert applied.count("(server dry run)") == 4, applied
