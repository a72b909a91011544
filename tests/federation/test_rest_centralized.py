"""Centralized mode through REST: only the admin merges, and the NATS server enforces it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import numpy as np
import pytest

from fedstats.node.client import ApiError, Client
from fedstats.node.federation.natsconf import User, connect_options, federation_users
from fedstats.node.federation.subjects import Names
from fedstats.node.security.invites import open_invite
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.frames import frame
from fedstats_harness.localnet import LocalNodes
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.waiting import eventually

pytestmark = pytest.mark.slow
ADMIN = User("admin", "admin", password="admin-pw")
PEERS = {"p1": User("p1", "p1", password="p1-pw"), "p2": User("p2", "p2", password="p2-pw")}
RNG = np.random.default_rng(5)


def rows(client: Client, pid: str) -> int:
    """The rows a node's project holds, its peers' merged in."""
    return int(client.project_info(pid)["rows"])


@pytest.fixture(scope="module")
def central(
    nats_factory: Callable[..., NatsServer], local_nodes: Callable[..., LocalNodes]
) -> tuple[NatsServer, dict[str, Client]]:
    users = federation_users("central", "centralized", ADMIN, PEERS.values())
    server = nats_factory(users)
    clients = local_nodes(("admin", *PEERS), "c1", new_secret_key()).clients
    clients["admin"].fed_create(
        "admin",
        {
            "fed_name": "central",
            "fed_type": "centralized",
            "nats_hosts": server.url,
            "sync_sched": "s1",
            "nats_sec_user": "admin",
            "nats_sec_passwd": "admin-pw",
            "nats_stream_max_memory": 16 << 20,
        },
    )
    for name, user in PEERS.items():
        invite = clients["admin"].fed_invitation(
            "admin",
            "pw",
            fed_peer_id=name,
            nats_sec_user=user.name,
            nats_sec_passwd=user.password,
        )
        clients[name].fed_join(name, invite, "pw")
    return server, clients


def test_only_the_admin_merges(central: tuple[NatsServer, dict[str, Client]]) -> None:
    _, clients = central
    data = RNG.normal(size=(60, 4))
    names = ["a", "b", "c", "y"]
    fr = {n: frame(data[i * 30 : (i + 1) * 30]) for i, n in enumerate(PEERS)}
    for n in PEERS:
        fr[n]["attributeNames"] = names
        fr[n]["attributeTypes"] = ["C"] * 4
        clients[n].learn(n, fr[n])
        clients[n].start_pulse(n)
    eventually(lambda: rows(clients["admin"], "admin") == 60, what="the admin to merge both")
    assert rows(clients["p1"], "p1") == 30  # p1 never sees p2's statistics
    assert clients["p1"].sync_stats("p1")["rcvCount"] == 0


def test_a_peers_credentials_cannot_read_another_peers_statistics(
    central: tuple[NatsServer, dict[str, Client]],
) -> None:
    server, _ = central
    names = Names.of("central")

    async def attempt() -> str:
        seen: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(e: Exception) -> None:
            await seen.put(str(e))

        nc = await nats.connect(
            server.url, allow_reconnect=False, error_cb=on_error, **connect_options(PEERS["p1"])
        )
        await nc.subscribe(f"{names.stats('p2')}.>")
        await nc.flush()
        message = await asyncio.wait_for(seen.get(), 10)
        await nc.close()
        return message

    assert "permissions violation for subscription" in asyncio.run(attempt()).lower()


def test_invitations_never_carry_the_admins_nats_credentials(
    central: tuple[NatsServer, dict[str, Client]],
) -> None:
    admin = central[1]["admin"]
    # none given: none carried (the peer connects anonymously or with its own config)
    bare = open_invite("pw", admin.fed_invitation("admin", "pw", fed_peer_id="p8"))
    assert not {k for k in bare if k.startswith("nats_sec_")}
    assert "admin-pw" not in str(bare)
    # an NKEY seed: the seed only, not the admin's user and password beside it
    seed = "SUAEXAMPLESEEDNOTUSEDBYTHISTESTATALLXXXXXXXXXXXXXXXXXXXXXXXX"
    nkey = open_invite(
        "pw", admin.fed_invitation("admin", "pw", fed_peer_id="p9", nats_sec_nkey_seed=seed)
    )
    assert {k: v for k, v in nkey.items() if k.startswith("nats_sec_")} == {
        "nats_sec_nkey_seed": seed
    }
    # half a user, or two kinds at once, is a client mistake
    mistakes = [
        ({"nats_sec_user": "p10"}, "nats_sec_user and nats_sec_passwd go together"),
        ({"nats_sec_token": "t", "nats_sec_nkey_seed": seed}, "one kind of NATS credentials"),
    ]
    for extra, words in mistakes:
        with pytest.raises(ApiError) as e:
            admin.fed_invitation("admin", "pw", fed_peer_id="p10", **extra)
        assert e.value.http_status == 400 and words in e.value.message
