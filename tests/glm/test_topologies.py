"""Federated fits under the NATS permissions of centralized and hybrid mode: the fit is the
pooled one, only the admin can read contributions, and the finished model reaches exactly
the members that may build (none in centralized mode, the mergers in hybrid mode)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats
import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as lm

from fedstats.node.client import Client
from fedstats.node.federation.natsconf import User, connect_options, federation_users
from fedstats.node.federation.subjects import Names
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.localnet import LocalNodes
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.waiting import eventually

pytestmark = pytest.mark.slow
SITES = ("admin", "a", "b")


def frame(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    names = [f"x{j}" for j in range(x.shape[1])]
    return {"attributeNames": [*names, "y"], "attributeTypes": ["C"] * len(names) + ["B"],
            "data": [[*map(repr, map(float, r)), str(int(t))] for r, t in zip(x, y, strict=True)]}


@dataclass
class Fed:
    name: str
    server: NatsServer
    users: dict[str, User]
    clients: dict[str, Client]
    x: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="module")
def nodes(local_nodes: Callable[..., LocalNodes]) -> dict[str, Client]:
    return local_nodes(SITES, "c1", new_secret_key()).clients


def federation(nats_factory: Callable[..., NatsServer], clients: dict[str, Client],
               name: str, topology: str, mergers: tuple[str, ...] = ()) -> Fed:
    users = {s: User(f"{name}-{s}", s, password=f"{name}-{s}-pw") for s in SITES}
    server = nats_factory(federation_users(name, topology, users["admin"],
                                           [users["a"], users["b"]], mergers=mergers))
    clients["admin"].fed_create(name, {
        "fed_name": name, "fed_type": topology, "nats_hosts": server.url, "sync_sched": "s1",
        "nats_sec_user": users["admin"].name, "nats_sec_passwd": users["admin"].password,
        "nats_stream_max_memory": 16 << 20, "nats_req_timeout": 5, "keepRows": "true",
    })  # fmt: skip
    for peer in ("a", "b"):
        invite = clients["admin"].fed_invitation(
            name, "pw", fed_peer_id=peer, fed_merges=peer in mergers,
            nats_sec_user=users[peer].name, nats_sec_passwd=users[peer].password)
        clients[peer].fed_join(name, invite, "pw", keepRows="true")
    x, y = datasets.load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    order = np.random.default_rng(11).permutation(len(y))
    for site, part in zip(SITES, np.array_split(order, [150, 330]), strict=True):
        clients[site].learn(name, frame(x[part], y[part]))
        clients[site].start_pulse(name)
    eventually(lambda: clients["admin"].project_info(name)["rows"] == len(y), timeout=60,
               what=f"the admin of {name} to hold every row")
    return Fed(name, server, users, clients, x, y)


@pytest.fixture(scope="module")
def central(nats_factory: Callable[..., NatsServer], nodes: dict[str, Client]) -> Fed:
    return federation(nats_factory, nodes, "central", "centralized")


@pytest.fixture(scope="module")
def hybrid(nats_factory: Callable[..., NatsServer], nodes: dict[str, Client]) -> Fed:
    return federation(nats_factory, nodes, "hyb", "hybrid", mergers=("a",))


def fit(fed: Fed, model: str) -> dict[str, Any]:
    info = fed.clients["admin"].build(fed.name, model, "lr", {
        "targetAttributeNames": ["y"], "extraParameters": {"alpha": "0.01"}}, timeout=120)
    ref = lm.LogisticRegression(C=1 / (0.01 * len(fed.y)), solver="newton-cholesky",
                                tol=1e-14, max_iter=1000).fit(fed.x, fed.y)
    np.testing.assert_allclose(info["coef"][0], ref.coef_[0], rtol=1e-8, atol=0)
    return info


def refused_subscription(fed: Fed, peer: str, subject: str) -> str:
    async def attempt() -> str:
        seen: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(e: Exception) -> None:
            await seen.put(str(e))

        nc = await nats.connect(fed.server.url, allow_reconnect=False, error_cb=on_error,
                                **connect_options(fed.users[peer]))
        await nc.subscribe(subject)
        await nc.flush()
        message = await asyncio.wait_for(seen.get(), 10)
        await nc.close()
        return message.lower()

    return asyncio.run(attempt())


def test_centralized_fit_is_exact_and_only_the_admin_keeps_the_model(central: Fed) -> None:
    fit(central, "m")
    assert "m" in central.clients["admin"].models(central.name)
    for peer in ("a", "b"):
        assert "m" not in central.clients[peer].models(central.name)


@pytest.mark.parametrize("peer", ["a", "b"])
def test_a_centralized_peer_cannot_read_contributions(central: Fed, peer: str) -> None:
    subject = Names.of(central.name).glm_replies
    assert "permissions violation for subscription" in refused_subscription(central, peer,
                                                                            subject)


def test_hybrid_fit_reaches_the_merger_and_not_the_sharer(hybrid: Fed) -> None:
    info = fit(hybrid, "m")
    merger, sharer = hybrid.clients["a"], hybrid.clients["b"]
    eventually(lambda: "m" in merger.models(hybrid.name), what="the merger to get the model")
    assert merger.model(hybrid.name, "m")["coef"] == info["coef"]
    assert "m" not in sharer.models(hybrid.name)
    subject = Names.of(hybrid.name).glm_reply("b")
    assert "permissions violation for subscription" in refused_subscription(hybrid, "a",
                                                                            subject)
