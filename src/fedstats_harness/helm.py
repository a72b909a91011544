"""Helm, built from its Go module, and the chart rendered into Python objects.

`helm()` builds (once, cached) with scripts/build-helm, or raises HelmUnavailable when Go is
missing; `render` runs `helm template` with values given as a dict (written to a values
file, so lists and maps need no --set escaping) and returns the manifests it printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .controlplane import REPO

CHART = REPO / "helm" / "fedstats"
BUILD_SCRIPT = REPO / "scripts" / "build-helm"
KUBE_VERSION = "1.35.4"  # the control plane the operator tests build

Obj = dict[str, Any]


class HelmUnavailable(RuntimeError):
    """helm cannot be built here (no Go toolchain): the chart tests skip with this reason."""


def helm() -> Path:
    """The helm binary: $FEDSTATS_HELM, else scripts/build-helm's (built on first use)."""
    env = os.environ.get("FEDSTATS_HELM")
    if env:
        return Path(env)
    if shutil.which("go") is None:
        raise HelmUnavailable("Go is not installed: helm is built from its Go module "
                              "(helm.sh/helm/v3/cmd/helm) by scripts/build-helm")
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, capture_output=True,
                          text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def run_helm(binary: Path, *args: str, values: Mapping[str, Any] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm ARGS`; `values` (None: no values file, for commands that take none)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(dict(values or {}), f)  # JSON is YAML
    extra = ["-f", f.name] if values is not None else []
    try:
        done = subprocess.run([str(binary), *args, *extra], capture_output=True,
                              text=True, timeout=120)
    finally:
        os.unlink(f.name)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def render_text(binary: Path, values: Mapping[str, Any] | None = None, *,
                namespace: str = "fedstats", release: str = "fs",
                crds: bool = False) -> str:
    args = ["template", release, str(CHART), "--namespace", namespace,
            "--kube-version", KUBE_VERSION]
    if crds:
        args.append("--include-crds")
    return run_helm(binary, *args, values=values or {}).stdout


def render(binary: Path, values: Mapping[str, Any] | None = None, **kw: Any) -> list[Obj]:
    return [d for d in yaml.safe_load_all(render_text(binary, values, **kw)) if d]


def find(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    hits = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(hits) == 1, f"{len(hits)} {kind} named {name} in {[o['kind'] for o in objs]}"
    return hits[0]


def operator_container(objs: list[Obj]) -> Obj:
    dep = find(objs, "Deployment", "fs-operator")
    container: Obj = dep["spec"]["template"]["spec"]["containers"][0]
    return container


# Values that turn every optional part on: GPU peers, the node Ingress, a ServiceMonitor,
# an external NATS and namespaced RBAC. The tests render and dry-run both sets.
NON_DEFAULT: Obj = {
    "image": {"repository": "registry.example.com/fedstats", "tag": "9.9.9"},
    "operator": {"watchNamespaces": ["team-a", "team-b"], "verbose": True},
    "nats": {"enabled": False, "url": "nats://nats.messaging.svc:4222"},
    "ingress": {"enabled": True, "className": "nginx",
                "hosts": [{"host": "demo.fedstats.example.com", "service": "demo-admin"}],
                "tls": [{"secretName": "demo-tls", "hosts": ["demo.fedstats.example.com"]}]},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "federation": {"create": True, "name": "demo",
                   "admin": {"ingress": {"enabled": True, "host": "admin.example.com"}},
                   "peers": [{"name": "hospital-a"},
                             {"name": "hospital-b", "gpu": True,
                              "resources": {"limits": {"memory": "8Gi"}}}]},
}
