"""NKEY authentication (`nats_sec_nkey_seed`) against a real nats-server that knows only
the users' public keys: the seed signs the server's nonce and never leaves the node."""

from __future__ import annotations

import os
from pathlib import Path

import nkeys
import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.federation.errors import Unreachable
from fedstats.node.federation.natsconf import User, federation_users
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.agents import COLS, merged, rows, until
from fedstats_harness.agents import AgentNode as Node
from fedstats_harness.natsproc import NatsServer


def new_seed() -> tuple[str, str]:
    """A user NKEY: (seed "SU...", public key "U...")."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode(), nkeys.from_seed(seed).public_key.decode()


SEEDS = {name: new_seed() for name in ("admin", "p1", "stranger")}


@pytest.fixture(scope="module")
def nkey_server(tmp_path_factory: pytest.TempPathFactory) -> NatsServer:
    users = federation_users(
        "nk",
        "decentralized",
        User("admin", "admin", nkey=SEEDS["admin"][1]),
        [User("p1", "p1", nkey=SEEDS["p1"][1])],
    )
    assert all("password" not in u for u in users)  # the server holds public keys only
    with NatsServer(tmp_path_factory.mktemp("nkey"), users) as server:
        yield server


async def test_peers_authenticated_by_nkey_seeds_federate(
    nkey_server: NatsServer, tmp_path: Path
) -> None:
    key = new_secret_key()
    admin, p1 = (
        Node(nkey_server, tmp_path, n, key, "nk", nats_sec_nkey_seed=SEEDS[n][0])
        for n in ("admin", "p1")
    )
    try:
        for node in (admin, p1):
            await node.agent.start()
        parts = {"admin": rows(30), "p1": rows(40)}
        for name, node in (("admin", admin), ("p1", p1)):
            node.learn(parts[name])
            node.agent.start_pulse()
        await until(admin.agent, lambda: "p1" in admin.agent.peers)
        pooled = Accumulator()
        pooled.learn_array(np.vstack(list(parts.values())), COLS)
        assert merged(admin).allclose(pooled, rtol=1e-12, atol=1e-6)
    finally:
        for node in (admin, p1):
            await node.agent.stop()


async def test_a_seed_the_server_does_not_know_is_refused(
    nkey_server: NatsServer, tmp_path: Path
) -> None:
    stranger = Node(
        nkey_server, tmp_path, "p1", new_secret_key(), "nk", nats_sec_nkey_seed=SEEDS["stranger"][0]
    )
    with pytest.raises(Unreachable, match=r"(?i)authorization"):
        await stranger.agent.connect()
    await stranger.agent.stop()
