"""A real control plane for the whole session, built from the official Go modules and cached.

Tests that need Kubernetes take `control_plane` (etcd + kube-apiserver, the CRDs applied) or
`cluster` (the same plus controller-manager, scheduler and kwok's fake nodes, so Deployments
become Available). Without Go the control plane cannot be built: those tests are skipped
with that reason. They are marked `slow` (the first build takes many minutes; CI runs them where Go is).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedstats_harness.controlplane import ControlPlane, ControlPlaneUnavailable, binaries
from fedstats_harness.natsproc import NatsServer

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
EXAMPLES = REPO / "examples"

# The operator's timers must tick within a test's patience; read when handlers are imported.
os.environ.setdefault("FEDSTATS_OPERATOR_RESYNC_SECONDS", "2")
os.environ.setdefault("FEDSTATS_OPERATOR_RETRY_SECONDS", "1")
os.environ.setdefault("FEDSTATS_OPERATOR_FINALIZER_ATTEMPTS", "2")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"control_plane", "cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    try:
        return binaries()
    except ControlPlaneUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def control_plane(k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("k8s"), k8s_bin) as cp:
        cp.kubectl("apply", "-f", str(CRDS))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
        yield cp


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    control_plane.start_workers()
    return control_plane


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's resources."""
    readable = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40]
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = f"t-{readable.strip('-')}-{digest}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
