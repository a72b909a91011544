"""Hybrid mode through REST: the admin and the peers invited as mergers merge, the others
only share; the NATS server's permissions, not the agents, keep the others out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fedstats.node.client import Client
from fedstats.node.federation.natsconf import User, connect_options, federation_users
from fedstats.node.federation.subjects import Names
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.diabetes import NAMES, X, Y, data, frame
from fedstats_harness.localnet import LocalNodes
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.waiting import eventually

pytestmark = pytest.mark.slow
ADMIN = User("admin", "admin", password="admin-pw")
PEERS = {n: User(n, n, password=f"{n}-pw") for n in ("merger", "sharer")}
SPLIT = {"admin": slice(0, 120), "merger": slice(120, 300), "sharer": slice(300, 442)}


def rows(client: Client, pid: str) -> int:
    """The rows a node's project holds, its peers' merged in."""
    return int(client.project_info(pid)["rows"])


@pytest.fixture(scope="module")
def hybrid(
    nats_factory: Callable[..., NatsServer], local_nodes: Callable[..., LocalNodes]
) -> tuple[NatsServer, dict[str, Client]]:
    users = federation_users("hyb", "hybrid", ADMIN, PEERS.values(), mergers=["merger"])
    server = nats_factory(users)
    clients = local_nodes(SPLIT, "c1", new_secret_key()).clients
    clients["admin"].fed_create("admin", {
        "fed_name": "hyb", "fed_type": "hybrid", "nats_hosts": server.url,
        "sync_sched": "s1", "nats_sec_user": "admin", "nats_sec_passwd": "admin-pw",
        "nats_stream_max_memory": 16 << 20,
    })  # fmt: skip
    for name, user in PEERS.items():
        invite = clients["admin"].fed_invitation(
            "admin", "pw", fed_peer_id=name, fed_merges=name == "merger",
            nats_sec_user=user.name, nats_sec_passwd=user.password,
        )  # fmt: skip
        clients[name].fed_join(name, invite, "pw")
    for name, client in clients.items():
        client.learn(name, frame(data(SPLIT[name])))
        client.start_pulse(name)
    return server, clients


def test_the_admin_and_the_merger_see_every_row(
    hybrid: tuple[NatsServer, dict[str, Client]],
) -> None:
    _, clients = hybrid
    for name in ("admin", "merger"):
        eventually(lambda n=name: rows(clients[n], n) == len(Y), what=f"{name} to merge all")


def test_the_sharer_shares_but_merges_nothing(
    hybrid: tuple[NatsServer, dict[str, Client]],
) -> None:
    _, clients = hybrid
    eventually(lambda: rows(clients["admin"], "admin") == len(Y), what="the admin to merge all")
    assert rows(clients["sharer"], "sharer") == SPLIT["sharer"].stop - SPLIT["sharer"].start
    stats = clients["sharer"].sync_stats("sharer")
    assert stats["sndCount"] >= 1 and stats["rcvCount"] == 0
    info = clients["sharer"].fed_info("sharer")
    assert info["fed_type"] == "hybrid"


def test_a_merging_peers_model_equals_pooled_scikit_learn(
    hybrid: tuple[NatsServer, dict[str, Client]],
) -> None:
    _, clients = hybrid
    merger = clients["merger"]
    eventually(lambda: rows(merger, "merger") == len(Y), what="the merger to merge all")
    context = {"inputAttributeNames": NAMES[:-1], "targetAttributeNames": ["y"]}
    assert merger.build("merger", "m1", "mlr", context)["algo"] == "mlr"
    values = merger.predict("merger", "m1", frame(data(slice(0, 442))))["values"]["KSVSMap"]
    column = [row["res"] for row in values["values"]]
    got, want = np.asarray(column, dtype=float), LinearRegression().fit(X, Y).predict(X)
    assert np.max(np.abs(got - want) / np.abs(want)) < 1e-9


@pytest.mark.parametrize(("user", "allowed"), [("merger", True), ("sharer", False)])
def test_the_server_lets_only_mergers_read_statistics(
    hybrid: tuple[NatsServer, dict[str, Client]], user: str, allowed: bool
) -> None:
    server, _ = hybrid
    names = Names.of("hyb")

    async def attempt() -> str | None:
        seen: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(e: Exception) -> None:
            await seen.put(str(e))

        nc = await nats.connect(
            server.url, allow_reconnect=False, error_cb=on_error, **connect_options(PEERS[user])
        )
        await nc.subscribe(f"{names.stats('admin')}.>")
        await nc.flush()
        try:
            return await asyncio.wait_for(seen.get(), 1.0 if allowed else 10.0)
        except TimeoutError:
            return None
        finally:
            await nc.close()

    error = asyncio.run(attempt())
    if allowed:
        assert error is None
    else:
        assert error is not None and "permissions violation for subscription" in error.lower()
