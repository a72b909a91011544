"""The whole federation through the REST API: real nats-server, real `fedstats node` processes.

One federation (an admin and two peers, diabetes rows split between them) is built once
for the module. Every test starts from it at rest — every node up and pulsing, the admin
holding every row — and a test that changes that (a forget, a kill) puts it back, so the
tests pass alone and in any order.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import nats
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fedstats.node.client import ApiError, Client
from fedstats.node.federation.errors import WireError
from fedstats.node.federation.subjects import Names
from fedstats.node.federation.wire import open_snapshot, read_frame
from fedstats.node.security.errors import CryptoError
from fedstats.node.security.invites import KEY_MARK
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.diabetes import NAMES, X, Y, data, frame
from fedstats_harness.localnet import LocalNodes, NodeProcess
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.waiting import eventually

pytestmark = pytest.mark.slow
CID = "c1"
SPLIT = {"admin": slice(0, 100), "p1": slice(100, 250), "p2": slice(250, 442)}


@dataclass
class Fed:
    nats: NatsServer
    nodes: dict[str, NodeProcess]
    clients: dict[str, Client]
    key: str

    def rows(self, name: str) -> int:
        return int(self.clients[name].project_info(name)["rows"])

    def pulsing(self, name: str) -> bool:
        try:
            return bool(self.clients[name].fed_info(name)["is_pulsing"])
        except ApiError as e:
            # a node just (re)started answers before its federation has connected: a
            # temporary condition, 503, asked again like any "not yet"
            if e.http_status != 503 or "not connected yet" not in e.message:
                raise
            return False


@pytest.fixture(scope="module")
def fed(nats_server: NatsServer, local_nodes: Callable[..., LocalNodes]) -> Fed:
    key = new_secret_key()
    net = local_nodes(SPLIT, CID, key)
    admin = net.clients["admin"]
    admin.fed_create(
        "admin",
        {
            "fed_name": "diabetes",
            "nats_hosts": nats_server.url,
            "sync_sched": "s1",
            "nats_req_timeout": 10,
            "nats_stream_max_memory": 32 << 20,
        },
    )
    for peer in ("p1", "p2"):
        invite = admin.fed_invitation("admin", "s3cret", fed_peer_id=peer)
        net.clients[peer].fed_join(peer, invite, "s3cret")
    for name, client in net.clients.items():
        client.learn(name, frame(data(SPLIT[name])))
        client.start_pulse(name)
    return Fed(nats_server, net.nodes, net.clients, key)


@pytest.fixture(autouse=True)
def at_rest(fed: Fed) -> None:
    """Waits for the federation at rest: every node pulsing, the admin holding every row."""
    for name in SPLIT:
        eventually(lambda n=name: fed.pulsing(n), what=f"{name} to pulse")
    eventually(lambda: fed.rows("admin") == len(Y), what="the admin to hold every row")


def test_every_peer_merges_all_rows(fed: Fed) -> None:
    for name in SPLIT:
        eventually(lambda n=name: fed.rows(n) == len(Y), what=f"{name} to see every row")


def test_federated_model_equals_pooled_scikit_learn(fed: Fed) -> None:
    admin = fed.clients["admin"]
    context = {"inputAttributeNames": NAMES[:-1], "targetAttributeNames": ["y"]}
    assert admin.build("admin", "m1", "mlr", context)["algo"] == "mlr"
    got = _predict(admin, "m1")
    want = LinearRegression().fit(X, Y).predict(X)
    assert np.max(np.abs(got - want) / np.abs(want)) < 1e-9


def _predict(client: Client, model: str) -> np.ndarray:
    values = client.predict("admin", model, frame(data(slice(0, 442))))["values"]["KSVSMap"]
    column = [row["res"] for row in values["values"]]
    return np.asarray(column, dtype=float)


def test_info_is_encrypted_and_says_who_is_admin(fed: Fed) -> None:
    info = fed.clients["admin"].fed_info("admin")
    assert info["fed_is_admin"] is True and info["is_pulsing"] is True
    raw = fed.clients["admin"].fed("GET", "info", pid="admin")["values"]  # not decrypted
    assert set(raw) == {"fedInfoEncrypted"} and "diabetes" not in raw["fedInfoEncrypted"]
    assert fed.clients["p1"].fed_info("p1")["fed_is_admin"] is False


def test_a_captured_snapshot_does_not_decrypt_without_the_federation_key(fed: Fed) -> None:
    fed_key = fed.clients["admin"].fed_info("admin")["fed_secret_key"]
    names = Names.of("diabetes")

    async def capture() -> bytes:
        nc = await nats.connect(fed.nats.url)
        sub = await nc.jetstream().pull_subscribe(names.stats_all, stream=names.stats_stream)
        [msg] = await sub.fetch(1, timeout=10)
        await nc.close()
        return bytes(msg.data)

    raw = asyncio.run(capture())
    with pytest.raises(WireError, match="does not decrypt"):
        open_snapshot(new_secret_key(), [read_frame(raw)])
    assert open_snapshot(fed_key, [read_frame(raw)]).n > 0


def test_forget_at_a_peer_shows_at_the_admin_after_the_next_sync(fed: Fed) -> None:
    fed.clients["p1"].forget("p1", frame(data(slice(100, 130))))
    fed.clients["admin"].full_sync("admin")
    eventually(lambda: fed.rows("admin") == len(Y) - 30, what="the forget to reach the admin")
    fed.clients["p1"].learn("p1", frame(data(slice(100, 130))))
    eventually(lambda: fed.rows("admin") == len(Y), what="the relearn to reach the admin")


@pytest.mark.parametrize(
    "call", ["newSchedule", "addPsrContract", "removePeer"], ids=["schedule", "contract", "remove"]
)
def test_peers_cannot_do_what_only_the_admin_may(fed: Fed, call: str) -> None:
    p1 = fed.clients["p1"]
    with pytest.raises(ApiError) as e:
        if call == "newSchedule":
            p1.new_schedule("p1", "m5")
        elif call == "removePeer":
            p1.fed("POST", "removePeer", pid="p1", params={"peer": "p2"})
        else:
            p1.add_contract("p1", ["COUNT(y) > 1"])
    assert e.value.http_status == 403 and e.value.status_string == "FORBIDDEN"
    assert "only the federation administrator" in e.value.message


def test_admin_contract_reaches_peers_and_invalid_ones_say_where(fed: Fed) -> None:
    admin = fed.clients["admin"]
    with pytest.raises(ApiError) as e:
        admin.validate_contract("admin", ["# rules", "COUNT(y) >= 10 AND"])
    assert "line 2, column 19" in e.value.message
    admin.validate_contract("admin", ["COUNT(y) >= 10"])  # valid: no ApiError
    admin.add_contract("admin", ["COUNT(y) >= 10"])
    eventually(
        lambda: (
            fed.clients["p2"].fed_info("p2")["contract"] == ["COUNT(y) >= 10"]
        ),
        what="the contract to reach p2",
    )


def test_invitations_are_one_time_expiring_and_password_sealed(fed: Fed) -> None:
    admin, p1 = fed.clients["admin"], fed.clients["p1"]
    invite = admin.fed_invitation("admin", "pw", fed_peer_id="p3")
    with pytest.raises(CryptoError, match="wrong password"):
        p1.fed_join("p3", invite, "not-the-password")
    p1.fed_join("p3", invite, "pw")
    with pytest.raises(ApiError) as e:
        p1.fed_join("p3b", invite, "pw")
    assert "already used" in e.value.message
    expired = admin.fed_invitation("admin", "pw", fed_peer_id="p4", fed_req_token_ttl=0.001)
    with pytest.raises(ApiError) as e:
        p1.fed_join("p4", expired, "pw")
    assert "expired" in e.value.message
    assert "p4" not in p1.list_projects()  # nothing half-created


def test_a_newer_invitation_revokes_the_older_and_a_peer_id_joins_once(fed: Fed) -> None:
    admin, p1, p2 = fed.clients["admin"], fed.clients["p1"], fed.clients["p2"]
    older = admin.fed_invitation("admin", "pw", fed_peer_id="p5")
    newer = admin.fed_invitation("admin", "pw", fed_peer_id="p5")
    with pytest.raises(ApiError) as e:
        p1.fed_join("p5", older, "pw")
    assert e.value.http_status == 400 and "was revoked: a newer one" in e.value.message
    assert "p5" not in p1.list_projects()  # nothing half-created
    p2.fed_join("p5", newer, "pw")
    # two invitations issued before either is used: the second join is refused too
    first = admin.fed_invitation("admin", "pw", fed_peer_id="p6")
    second = admin.fed_invitation("admin", "pw", fed_peer_id="p6")
    p1.fed_join("p6", second, "pw")
    with pytest.raises(ApiError) as e:
        p2.fed_join("p6", first, "pw")
    assert e.value.http_status == 400
    assert "peer id 'p6' has already joined this federation" in e.value.message
    assert "p6" not in p2.list_projects()


def test_a_programs_invitation_is_sealed_with_hkdf_and_a_short_password_refused(fed: Fed,
                                                                              ) -> None:
    admin, p1 = fed.clients["admin"], fed.clients["p1"]
    key = secrets.token_urlsafe(32)
    invite = admin.fed_invitation("admin", key, fed_peer_id="p7", fed_invite_kdf="hkdf")
    assert invite.startswith(KEY_MARK)
    with pytest.raises(ApiError) as e:
        admin.fed_invitation("admin", "pw", fed_peer_id="p7", fed_invite_kdf="hkdf")
    assert e.value.http_status == 400 and "at least 32 characters" in e.value.message
    with pytest.raises(CryptoError, match="wrong password"):
        p1.fed_join("p7", invite, key[:-1] + ("A" if key[-1] != "A" else "B"))
    p1.fed_join("p7", invite, key)  # the refused request revoked nothing
    assert "p7" in p1.list_projects()


BAD_CREATE = {
    "contract-not-text": ({"contract": [1, 2]}, "contract is a list of rules"),
    "hosts-a-number": ({"nats_hosts": 5}, "nats_hosts is a comma-separated list"),
    "rule-too-deep": (
        {"contract": ["(" * 3000 + "COUNT(y) > 1" + ")" * 3000]}, "rule longer than"
    ),
    "rule-nested": ({"contract": ["(" * 100 + "COUNT(y) > 1" + ")" * 100]}, "nested more than"),
    "memory-overflows": ({"nats_stream_max_memory": 1e300}, "must be at most"),
    "timeout-not-finite": ({"nats_req_timeout": "nan"}, "must be a positive number"),
    "schedule-too-long": ({"sync_sched": "d99999999999"}, "at most 365 days"),
}


@pytest.mark.parametrize("case", list(BAD_CREATE), ids=list(BAD_CREATE))
def test_client_mistakes_at_create_are_400_and_create_nothing(fed: Fed, case: str) -> None:
    admin = fed.clients["admin"]
    options, words = BAD_CREATE[case]
    with pytest.raises(ApiError) as e:
        admin.fed_create("bad", {"fed_name": "bad", "nats_hosts": fed.nats.url, **options})
    assert e.value.http_status == 400 and words in e.value.message, e.value.message
    assert "bad" not in admin.list_projects()


def test_client_mistakes_on_a_federation_are_400(fed: Fed) -> None:
    admin = fed.clients["admin"]
    before = admin.fed_info("admin")
    for call in ("addPsrContract", "psrContractValidate"):
        with pytest.raises(ApiError) as e:
            admin.request("POST", admin._rest("fedml", "admin", call), content=b"\xff\xfe(")
        assert e.value.http_status == 400 and "UTF-8" in e.value.message
    with pytest.raises(ApiError) as e:
        admin.new_schedule("admin", "d99999999999")
    assert e.value.http_status == 400 and "at most 365 days" in e.value.message
    with pytest.raises(ApiError) as e:
        admin.validate_contract("admin", ["NOT " * 100 + "COUNT(y) > 1"])
    assert e.value.http_status == 400 and "nested more than 32" in e.value.message
    after = admin.fed_info("admin")  # nothing of the refused calls was applied
    assert (after["sync_sched"], after["contract"]) == ("s1", before["contract"])


def test_sync_stats_and_logs(fed: Fed) -> None:
    admin = fed.clients["admin"]
    eventually(lambda: admin.sync_stats("admin")["sndCount"] >= 1,
               what="the admin to send its own snapshot")
    stats = admin.sync_stats("admin")
    assert stats["rcvCount"] >= 2  # at rest, the admin holds both peers' rows
    assert set(stats) >= {"sndContractError", "rcvError", "rcvContractError", "errorLog"}
    assert any("received snapshot" in m for m in admin.sync_log("admin"))
    admin.clear_error_log("admin")
    assert admin.error_log("admin") == []


def test_awsinfo_says_this_build_is_nats_backed(fed: Fed) -> None:
    with pytest.raises(ApiError, match="NATS-backed"):
        fed.clients["admin"].fed("POST", "awsinfo", pid="admin", body={})


def test_federation_survives_a_nats_server_restart(fed: Fed) -> None:
    fed.nats.restart()
    fed.clients["p2"].forget("p2", frame(data(slice(250, 280))))
    eventually(lambda: fed.rows("admin") == len(Y) - 30, what="p2's forget after the restart")
    fed.clients["p2"].learn("p2", frame(data(slice(250, 280))))
    eventually(lambda: fed.rows("admin") == len(Y), what="p2's relearn after the restart")


def test_a_peer_killed_with_sigkill_comes_back_and_syncs(fed: Fed) -> None:
    node = fed.nodes["p2"]
    node.kill()
    assert fed.rows("admin") == len(Y)  # its last snapshot stays merged at the admin
    node.start()
    eventually(lambda: fed.pulsing("p2"), what="p2's pulse to resume")
    fed.clients["p2"].forget("p2", frame(data(slice(250, 290))))
    eventually(lambda: fed.rows("admin") == len(Y) - 40, what="p2's forget after its restart")
    fed.clients["p2"].learn("p2", frame(data(slice(250, 290))))
    eventually(lambda: fed.rows("admin") == len(Y), what="p2's relearn after its restart")
