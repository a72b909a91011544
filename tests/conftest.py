"""The fixtures every part of the suite shares: real servers, started by the harness.

- `nats_server`: a JetStream nats-server per test module, on a port it chose itself
  (`fedstats_harness.natsproc`); `nats_factory` starts more, with users, for a module.
- `local_nodes`: `fedstats node` processes per module (`fedstats_harness.localnet`), each
  with a signed client, all stopped when the module ends.
- `control_plane` (etcd + kube-apiserver, the CRDs applied) and `cluster` (plus
  controller-manager, scheduler and kwok's fake nodes), once per session; tests taking
  them are marked `slow`, and skipped with the reason where the binaries cannot be built.
- `spawn`: starts a `fedstats node` process (again) on one data directory, each time on a
  new port, with a client of customer `c1`; every one killed at teardown (crash tests).
- `unreachable_port`: a loopback port where connections are refused for the whole test.
- `namespace`: a fresh namespace per test, so tests never see each other's resources.
- An autouse check that fails an async test leaving asyncio tasks behind (as kopf's
  suite does): what a test starts, the test (or its fixtures) must finish.

Test modules import helpers from the harness package, never from each other or from a
conftest (the suite runs in pytest's importlib mode, without `__init__.py` files).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fedstats.node.client import Client
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.controlplane import REPO, ControlPlane, ControlPlaneUnavailable, binaries
from fedstats_harness.localnet import LocalNodes, NodeProcess
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.ports import refusing_port

CRDS = REPO / "crds"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"control_plane", "cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------- NATS and nodes


@pytest.fixture(scope="module")
def nats_factory(tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[Callable[..., NatsServer]]:  # fmt: skip
    """`nats_factory(users=())`: a started nats-server, stopped when the module ends."""
    started: list[NatsServer] = []

    def start(users: Iterable[Mapping[str, Any]] = ()) -> NatsServer:
        server = NatsServer(tmp_path_factory.mktemp("nats"), users)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def nats_server(nats_factory: Callable[..., NatsServer]) -> NatsServer:
    """A nats-server (JetStream, no authentication) shared by a module's tests."""
    return nats_factory()


@pytest.fixture(scope="module")
def local_nodes(tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[Callable[..., LocalNodes]]:  # fmt: skip
    """`local_nodes(names, customer, key, env={name: {...}})`: started node processes with
    a client each (`.nodes`, `.clients`); everything is stopped when the module ends."""
    started: list[LocalNodes] = []

    def start(names: Iterable[str], customer: str, key: str,
              env: dict[str, dict[str, str]] | None = None) -> LocalNodes:  # fmt: skip
        nodes = LocalNodes(tmp_path_factory.mktemp("nodes"), names, customer, key, env)
        started.append(nodes)
        return nodes.start()

    yield start
    for nodes in started:
        nodes.stop()


@pytest.fixture
def unreachable_port() -> Iterator[int]:
    """A loopback port where connections are refused for the whole test."""
    with refusing_port() as port:
        yield port


# ---------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    try:
        return binaries()
    except ControlPlaneUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def control_plane(k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[ControlPlane]:  # fmt: skip
    with ControlPlane(tmp_path_factory.mktemp("k8s"), k8s_bin) as cp:
        cp.kubectl("apply", "-f", str(CRDS))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
        yield cp


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    control_plane.start_workers()
    return control_plane


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's resources."""
    readable = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40]
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = f"t-{readable.strip('-')}-{digest}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------- asyncio hygiene


@pytest.fixture(autouse=True)
def _no_tasks_left_behind(request: pytest.FixtureRequest) -> None:
    """For an async test only: the check below runs in that test's event loop."""
    test = getattr(request.node, "obj", None)
    if inspect.iscoroutinefunction(test):
        request.getfixturevalue("_asyncio_tasks_finished")


@pytest.fixture
async def _asyncio_tasks_finished() -> AsyncIterator[None]:
    """Fails the test if a task it (or a fixture of it) created is still pending.

    Set up before the test's other fixtures, so torn down after them: a fixture that
    stops what it started (an agent, a NATS connection) has done so by now. One pass of
    the loop lets tasks that were cancelled but not awaited finish their cancellation.
    """
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    left = asyncio.all_tasks() - before - {asyncio.current_task()}
    left = {t for t in left if not t.done()}
    if left:
        names = sorted(f"{t.get_name()}: {t.get_coro()!r}" for t in left)
        for task in left:
            task.cancel()
        pytest.fail("the test left asyncio tasks pending:\n  " + "\n  ".join(names))


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[], tuple[NodeProcess, Client]]]:
    """Starts the node (again) on the same data directory, each time on a new port."""
    key = new_secret_key()
    procs: list[NodeProcess] = []
    clients: list[Client] = []

    def start() -> tuple[NodeProcess, Client]:
        p = NodeProcess("node", tmp_path, {"c1": key}, args=["--checkpoint-every", "7"])
        procs.append(p.start())
        clients.append(Client(p.url, "c1", key, timeout=10))
        return p, clients[-1]

    yield start
    for c in clients:
        c.close()
    for p in procs:
        p.kill()
