"""The FEDSTATS_* bootstrap: nodes that federate themselves, as the operator's pods do.

Pure reading of the environment first; then real `fedstats node` processes started with
those variables against a real nats-server (an admin, two peers whose invitations come
from the admin's REST API), run in order: form, sync, restart, refuse, retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fedstats.node.client import ApiError, Client
from fedstats.node.engine.xp import gpu_available
from fedstats.node.federation.bootstrap import engine_of, join_body, read_plan
from fedstats.node.federation.errors import BootstrapError
from fedstats.node.federation.subjects import Names
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.diabetes import NAMES, X, Y, data, frame
from fedstats_harness.localnet import LocalNodes, NodeProcess
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.ports import refusing_port
from fedstats_harness.waiting import eventually

CID = "c1"
SPLIT = {"admin": slice(0, 100), "p1": slice(100, 250), "p2": slice(250, 442)}
PASSWORD = "invitation-pw-6c1f"


# ------------------------------------------------------------------ the environment, pure
def test_no_role_means_no_bootstrap() -> None:
    assert read_plan({"FEDSTATS_FEDERATION": "f"}, ["c1"]) is None


@pytest.mark.parametrize(
    ("env", "customers", "message"),
    [
        ({"FEDSTATS_ROLE": "boss"}, ["c1"], "admin or peer"),
        ({"FEDSTATS_ROLE": "admin", "FEDSTATS_FEDERATION": "f"}, ["c1", "c2"], "2 customers"),
        (
            {"FEDSTATS_ROLE": "admin", "FEDSTATS_CUSTOMER": "c9", "FEDSTATS_FEDERATION": "f"},
            ["c1"],
            "not a configured customer",
        ),
        ({"FEDSTATS_ROLE": "admin"}, ["c1"], "FEDSTATS_FEDERATION"),
        ({"FEDSTATS_ROLE": "peer"}, ["c1"], "FEDSTATS_INVITATION"),
        (
            {"FEDSTATS_ROLE": "peer", "FEDSTATS_PROJECT": "p", "FEDSTATS_ENGINE": "torch"},
            ["c1"],
            "numpy or cupy",
        ),
    ],
    ids=[
        "bad-role",
        "which-customer",
        "unknown-customer",
        "admin-unnamed",
        "peer-uninvited",
        "bad-engine",
    ],
)
def test_unusable_environments_say_why(
    env: dict[str, str], customers: list[str], message: str
) -> None:
    with pytest.raises(BootstrapError, match=message):
        read_plan(env, customers)


def test_admin_plan_maps_every_variable_to_a_create_option() -> None:
    env = {
        "FEDSTATS_ROLE": "admin", "FEDSTATS_FEDERATION": "f", "FEDSTATS_TOPOLOGY": "hybrid",
        "FEDSTATS_SYNC_SCHEDULE": "h3", "FEDSTATS_NATS_URL": "nats://n:4222",
        "FEDSTATS_NATS_REQ_TIMEOUT": "7", "FEDSTATS_NATS_USER": "u",
        "FEDSTATS_NATS_PASSWORD": "p", "FEDSTATS_FEDERATION_KEY": "K",
        "FEDSTATS_STREAM_MAX_MEMORY": "1024", "FEDSTATS_ENGINE": "cupy",
    }  # fmt: skip
    plan = read_plan(env, ["c1"])
    assert plan is not None and (plan.role, plan.customer, plan.project) == ("admin", "c1", "f")
    assert plan.options == {
        "fed_name": "f", "fed_type": "hybrid", "sync_sched": "h3", "nats_hosts": "nats://n:4222",
        "nats_req_timeout": "7", "nats_sec_user": "u", "nats_sec_passwd": "p",
        "fed_secret_key": "K", "nats_stream_max_memory": "1024",
    }  # fmt: skip
    assert plan.engine == "gpu"
    assert "K" not in repr(plan) and "'p'" not in repr(plan)


def test_peer_plan_keeps_the_invitations_credentials_and_its_own_nats_address() -> None:
    env = {"FEDSTATS_ROLE": "peer", "FEDSTATS_CUSTOMER": "c2", "FEDSTATS_PROJECT": "mine",
           "FEDSTATS_INVITATION": "sealed", "FEDSTATS_INVITATION_PASSWORD": "pw",
           "FEDSTATS_NATS_URL": "nats://local:4222", "FEDSTATS_NATS_USER": "shared",
           "FEDSTATS_NATS_PASSWORD": "shared-pw"}  # fmt: skip
    plan = read_plan(env, ["c1", "c2"])
    assert plan is not None and (plan.customer, plan.project) == ("c2", "mine")
    invited = {"fed_name": "f", "nats_hosts": "nats://far:4222", "nats_sec_user": "peer7",
               "nats_sec_passwd": "peer7-pw"}  # fmt: skip
    body = join_body(invited, plan.options)
    assert body["nats_hosts"] == "nats://local:4222"
    assert (body["nats_sec_user"], body["nats_sec_passwd"]) == ("peer7", "peer7-pw")
    bare = join_body({"fed_name": "f"}, plan.options)
    assert (bare["nats_sec_user"], bare["nats_sec_passwd"]) == ("shared", "shared-pw")


def test_engine_names_map_to_project_types() -> None:
    assert [engine_of({}), engine_of({"FEDSTATS_ENGINE": "numpy"}),
            engine_of({"FEDSTATS_ENGINE": "CuPy"})] == ["cpu", "cpu", "gpu"]  # fmt: skip


# ------------------------------------------------------------------ real processes
@dataclass
class Boot:
    nats: NatsServer
    net: LocalNodes
    key: str
    fed_key: str

    @property
    def nodes(self) -> dict[str, NodeProcess]:
        return self.net.nodes

    @property
    def clients(self) -> dict[str, Client]:
        return self.net.clients

    def rows(self, name: str, pid: str) -> int:
        return int(self.clients[name].project_info(pid)["rows"])

    def add_peer(self, name: str, env: dict[str, str]) -> NodeProcess:
        return self.net.add(name, {"FEDSTATS_ROLE": "peer", **env})


# the project each node holds: the admin's and p2's are named by FEDSTATS_FEDERATION (or,
# for p2, the invitation's fed_name); p1 names its own with FEDSTATS_PROJECT
PIDS = {"admin": "boot", "p1": "p1-project", "p2": "boot"}


def _pulsing(client: Client, pid: str) -> bool:
    return bool((_federated(client, pid) or {}).get("is_pulsing"))


def _federated(client: Client, pid: str) -> dict[str, Any] | None:
    try:
        return dict(client.fed_info(pid))
    except ApiError:
        return None


@pytest.fixture(scope="module")
def booted(nats_server: NatsServer, local_nodes: Callable[..., LocalNodes]) -> Boot:
    """The admin federating itself from its environment, two peers joining from theirs,
    each node learning its part of the rows."""
    key, fed_key = new_secret_key(), new_secret_key()
    admin_env = {
        "FEDSTATS_ROLE": "admin", "FEDSTATS_FEDERATION": "boot",
        "FEDSTATS_NATS_URL": nats_server.url,
        "FEDSTATS_SYNC_SCHEDULE": "s1", "FEDSTATS_NATS_REQ_TIMEOUT": "5",
        "FEDSTATS_FEDERATION_KEY": fed_key, "FEDSTATS_STREAM_MAX_MEMORY": str(32 << 20),
        "FEDSTATS_ENGINE": "numpy",
    }  # fmt: skip
    b = Boot(nats_server, local_nodes(["admin"], CID, key, {"admin": admin_env}), key, fed_key)
    eventually(lambda: _federated(b.clients["admin"], "boot") is not None,
               what="the admin to create its federation")  # fmt: skip
    for peer, extra in (("p1", {"FEDSTATS_PROJECT": "p1-project"}), ("p2", {})):
        invite = b.clients["admin"].fed_invitation("boot", PASSWORD, fed_peer_id=peer)
        b.add_peer(peer, {"FEDSTATS_INVITATION": invite,
                          "FEDSTATS_INVITATION_PASSWORD": PASSWORD, **extra})  # fmt: skip
    for name, part in SPLIT.items():
        eventually(lambda n=name: _pulsing(b.clients[n], PIDS[n]),
                   what=f"{name} to federate and pulse")  # fmt: skip
        b.clients[name].learn(PIDS[name], frame(data(part)))
    return b


@pytest.fixture
def boot(booted: Boot) -> Boot:
    """The federation at rest: every node pulsing, the admin holding every row (a test
    that changes that puts it back, so the tests pass alone and in any order)."""
    for name in SPLIT:
        eventually(lambda n=name: _pulsing(booted.clients[n], PIDS[n]),
                   what=f"{name} to pulse")  # fmt: skip
    eventually(lambda: booted.rows("admin", "boot") == len(Y), what="the admin to merge all")
    return booted


def test_the_admin_federation_uses_the_operators_key_and_pulses(boot: Boot) -> None:
    info = _federated(boot.clients["admin"], "boot")
    assert info is not None and info["fed_secret_key"] == boot.fed_key
    assert info["fed_is_admin"] and info["is_pulsing"]
    assert info["sync_sched"] == boot.nodes["admin"].env["FEDSTATS_SYNC_SCHEDULE"]


def test_peers_join_from_their_invitations_and_pulse(boot: Boot) -> None:
    for name in ("p1", "p2"):
        info = _federated(boot.clients[name], PIDS[name])
        assert info is not None and info["fed_peer_id"] == name and not info["fed_is_admin"]


def test_the_admins_model_equals_pooled_scikit_learn(boot: Boot) -> None:
    admin = boot.clients["admin"]
    context = {"inputAttributeNames": NAMES[:-1], "targetAttributeNames": ["y"]}
    assert admin.build("boot", "m1", "mlr", context)["algo"] == "mlr"
    values = admin.predict("boot", "m1", frame(data(slice(0, 442))))["values"]["KSVSMap"]
    column = [row["res"] for row in values["values"]]
    got = np.asarray(column, dtype=float)
    want = LinearRegression().fit(X, Y).predict(X)
    assert np.max(np.abs(got - want) / np.abs(want)) < 1e-9


def _joins(boot: Boot, peer: str) -> int:
    log = boot.clients["admin"].sync_log("boot")
    return sum(f"peer {peer} joined" in line for line in log)


def test_a_restarted_peer_does_not_redeem_its_invitation_again_and_keeps_syncing(
    boot: Boot,
) -> None:
    node = boot.nodes["p1"]
    node.stop()
    node.start()  # same data dir, same environment, same (now used) invitation
    eventually(lambda: _pulsing(boot.clients["p1"], "p1-project"),
               what="p1's pulse to resume")  # fmt: skip
    boot.clients["p1"].forget("p1-project", frame(data(slice(100, 130))))
    eventually(lambda: boot.rows("admin", "boot") == len(Y) - 30, what="p1's forget")
    assert _joins(boot, "p1") == 1
    assert "already used" not in node.log_text() and "failed" not in node.log_text()
    boot.clients["p1"].learn("p1-project", frame(data(slice(100, 130))))
    eventually(lambda: boot.rows("admin", "boot") == len(Y), what="p1's relearn")


def test_a_restarted_admin_keeps_its_key_and_sends_a_changed_schedule(boot: Boot) -> None:
    node = boot.nodes["admin"]
    node.stop()
    node.env["FEDSTATS_SYNC_SCHEDULE"] = "s2"  # the operator's spec changed meanwhile
    node.start()
    eventually(lambda: _pulsing(boot.clients["admin"], "boot"),
               what="the admin's pulse to resume")  # fmt: skip
    info = _federated(boot.clients["admin"], "boot")
    assert info is not None and info["fed_secret_key"] == boot.fed_key
    assert "failed" not in node.log_text()
    eventually(
        lambda: (_federated(boot.clients["p2"], "boot") or {}).get("sync_sched") == "s2",
        what="the new schedule to reach p2",
    )
    boot.clients["p2"].forget("boot", frame(data(slice(250, 280))))
    eventually(lambda: boot.rows("admin", "boot") == len(Y) - 30, what="p2's forget")
    boot.clients["p2"].learn("boot", frame(data(slice(250, 280))))
    eventually(lambda: boot.rows("admin", "boot") == len(Y), what="p2's relearn")


def _healthy(node: NodeProcess) -> bool:
    return httpx.get(f"{node.url}/healthz", timeout=5).status_code == 200


def test_a_wrong_invitation_password_is_logged_and_the_node_stays_up(boot: Boot) -> None:
    invite = boot.clients["admin"].fed_invitation("boot", PASSWORD, fed_peer_id="p3")
    node = boot.add_peer("p3", {"FEDSTATS_INVITATION": invite,
                                "FEDSTATS_FEDERATION": "boot",
                                "FEDSTATS_INVITATION_PASSWORD": "not-the-password"})  # fmt: skip
    eventually(lambda: "wrong password" in node.log_text(), what="the failure to be logged")
    assert _healthy(node)
    assert boot.clients["p3"].list_projects() == []
    text = node.log_text()
    assert "not-the-password" not in text and invite not in text and boot.fed_key not in text


def test_a_peer_that_cannot_reach_nats_retries_without_burning_its_invitation(
    boot: Boot,
) -> None:
    invite = boot.clients["admin"].fed_invitation("boot", PASSWORD, fed_peer_id="p4")
    with refusing_port() as port:
        env = {
            "FEDSTATS_INVITATION": invite,
            "FEDSTATS_INVITATION_PASSWORD": PASSWORD,
            "FEDSTATS_NATS_URL": f"nats://127.0.0.1:{port}",  # nothing listens there
            "FEDSTATS_ENGINE": "cupy",
        }
        node = boot.add_peer("p4", env)
        eventually(lambda: "retrying" in node.log_text(), what="a retry to be logged")
        assert _healthy(node) and "cannot reach NATS" in node.log_text()
        assert PASSWORD not in node.log_text()
        node.stop()
    del node.env["FEDSTATS_NATS_URL"]  # the invitation's own address works
    node.start()
    eventually(lambda: _pulsing(boot.clients["p4"], "boot"),
               what="p4 to join once NATS is reachable")  # fmt: skip
    assert _joins(boot, "p4") == 1
    project = boot.clients["p4"].project_info("boot")
    assert project["type"] == ("gpu" if gpu_available() else "cpu")  # cupy, where it runs


def test_an_invalid_operator_key_is_refused_without_being_echoed(boot: Boot) -> None:
    bad = "c2hvcnQ="  # Base64 of 5 bytes
    with pytest.raises(ApiError) as e:
        boot.clients["admin"].fed_create("other", {"fed_name": "other", "fed_secret_key": bad,
                                                   "nats_hosts": boot.nats.url})  # fmt: skip
    assert e.value.http_status == 400 and "fed_secret_key" in e.value.message
    assert bad not in e.value.message


def _consumers(server: NatsServer, stream: str) -> list[str]:
    async def names() -> list[str]:
        nc = await nats.connect(server.url)
        try:
            return [c.name for c in await nc.jetstream().consumers_info(stream)]
        finally:
            await nc.close()

    return asyncio.run(names())


def test_deleting_a_federated_project_stops_and_forgets_its_agent(boot: Boot) -> None:
    admin, names = boot.clients["admin"], Names.of("boot")
    invite = admin.fed_invitation("boot", PASSWORD, fed_peer_id="p5")
    node = boot.add_peer("p5", {"FEDSTATS_INVITATION": invite,
                                "FEDSTATS_INVITATION_PASSWORD": PASSWORD})  # fmt: skip
    p5 = boot.clients["p5"]
    eventually(lambda: _pulsing(p5, "boot"), what="p5 to join and pulse")
    assert "boot_p5_stats" in _consumers(boot.nats, names.stats_stream)
    p5.delete_project("boot")
    assert "boot_p5_stats" not in _consumers(boot.nats, names.stats_stream)
    assert "boot_p5_ctl" not in _consumers(boot.nats, names.ctl_stream)
    with pytest.raises(ApiError):
        p5.fed_info("boot")
    # nothing of the old federation remains: the same node joins again with a new invitation
    invite = admin.fed_invitation("boot", PASSWORD, fed_peer_id="p5b")
    p5.fed_join("boot", invite, PASSWORD)
    p5.learn("boot", frame(data(slice(250, 300))))
    p5.start_pulse("boot")
    eventually(lambda: "p5b" in (_federated(admin, "boot") or {})["peersInfo"],
               what="the rejoined peer's snapshot")  # fmt: skip
    assert "pulse failed" not in node.log_text()
    admin.remove_peer("boot", "p5b")  # the federation at rest again: its rows leave the merge
    eventually(lambda: boot.rows("admin", "boot") == len(Y), what="p5b's rows to leave")
