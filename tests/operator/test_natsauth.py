"""The operator's NATS users as data: accounts, the auth file, and whose pod mounts what."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedstats.operator import authstore, authsync, builders, names, natsauth, readiness
from fedstats.operator.natsauth import FederationAuth

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str, metadata_name: str | None = None) -> dict[str, Any]:
    obj = yaml.safe_load((EXAMPLES / name).read_text())
    obj["metadata"].update(uid=f"uid-{metadata_name or name}", namespace="team")
    if metadata_name:
        obj["metadata"]["name"] = metadata_name
    return obj


def secrets_of(deployment: dict[str, Any]) -> set[str]:
    """Every Secret a pod reads: env secretKeyRefs and secret volumes."""
    pod = deployment["spec"]["template"]["spec"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for c in pod["containers"]
            for e in c.get("env", []) if "secretKeyRef" in (e.get("valueFrom") or {})}
    return refs | {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}


def test_each_members_pod_reads_its_own_secrets_and_no_other_members():
    fed = example("federation.yaml")
    a, b = example("peer-cpu.yaml", "hospital-a"), example("peer-cpu.yaml", "hospital-b")
    admin = secrets_of(builders.desired_admin_deployment(fed, managed_auth=True))
    pa = secrets_of(builders.desired_peer_deployment(a, fed, managed_auth=True))
    pb = secrets_of(builders.desired_peer_deployment(b, fed, managed_auth=True))
    assert admin == {"demo-admin-customers", "demo-admin-nats", "demo-federation-key"}
    assert pa == {"hospital-a-peer-customers", "hospital-a-peer-nats",
                  "hospital-a-peer-invitation"}
    assert pb == {n.replace("hospital-a", "hospital-b") for n in pa}
    assert not (admin & pa) and not (pa & pb) and not (admin & pb)


def test_a_members_nats_secret_is_owned_by_it_and_holds_only_its_user():
    peer = example("peer-cpu.yaml", "hospital-a")
    secret = builders.desired_nats_secret(peer, "demo-hospital-a", "pw")
    assert secret["metadata"]["name"] == names.nats_secret(peer) == "hospital-a-peer-nats"
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Peer", "hospital-a", True)
    assert secret["stringData"] == {"user": "demo-hospital-a", "password": "pw"}


def test_without_managed_auth_the_pods_keep_the_shared_secret_they_were_given():
    fed = example("federation.yaml")
    fed["spec"]["nats"]["authSecretRef"] = {"name": "nats-shared"}
    env = {e["name"]: e for e in builders.desired_admin_deployment(fed)["spec"]["template"]
           ["spec"]["containers"][0]["env"]}
    assert env["FEDSTATS_NATS_USER"]["valueFrom"]["secretKeyRef"]["name"] == "nats-shared"


def test_a_tls_federation_mounts_only_its_ca_and_points_ssl_cert_file_at_it():
    fed = example("federation.yaml")
    fed["spec"]["nats"].update(url="tls://nats.fedstats.svc:4222",
                               tls={"caSecretRef": {"name": "nats-tls"}})
    pod = builders.desired_admin_deployment(fed, managed_auth=True)["spec"]["template"]["spec"]
    [ca] = [v for v in pod["volumes"] if v["name"] == "nats-ca"]
    assert ca["secret"] == {"secretName": "nats-tls",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}]}  # not tls.key
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["SSL_CERT_FILE"] == "/etc/fedstats/nats-ca/ca.crt"


def test_streams_get_the_federations_replicas():
    from fedstats.operator import nats_admin

    fed = example("federation.yaml")
    fed["spec"]["nats"]["replicas"] = 3
    assert {s.num_replicas for s in nats_admin.desired_streams(fed)} == {3}


def _state() -> natsauth.AuthState:
    return {natsauth.account_name("demo", "team"): FederationAuth(
        "demo", "centralized", admin="apw", peers={"hospital-a": "hpw"})}


def test_federations_of_the_same_name_in_two_namespaces_are_two_accounts():
    assert natsauth.account_name("demo", "team-a") != natsauth.account_name("demo", "team-b")


def test_the_state_survives_its_round_trip_through_the_secret():
    secret = authstore.desired_auth_secret("fedstats", "nats-auth", _state(), "locked")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert natsauth.decode_state(data[natsauth.STATE_FILE]) == _state()
    assert authsync.auth_text(secret) == data[natsauth.AUTH_FILE]


def _accounts(text: str) -> dict[str, Any]:
    accounts: dict[str, Any] = json.loads(re.sub(r"^accounts: ", "", text))
    return accounts


def test_the_auth_file_has_each_member_once_and_a_locked_account_always():
    accounts = _accounts(natsauth.render_auth(_state(), "lockpw"))
    users = [u["user"] for u in accounts["FED_TEAM_DEMO"]["users"]]
    assert users == ["demo-admin", "demo-hospital-a"]
    assert accounts[natsauth.LOCKED_ACCOUNT]["users"][0]["permissions"]["publish"] == {
        "deny": [">"]}
    empty = _accounts(authsync.auth_text(None))  # no Secret yet: still nobody gets in
    assert list(empty) == [natsauth.LOCKED_ACCOUNT]


def test_a_federation_without_its_admin_user_has_no_account_yet():
    state = {"FED_X": FederationAuth("x", "decentralized", admin=None, peers={"p": "pw"})}
    assert "FED_X" not in _accounts(natsauth.render_auth(state))


def test_the_sidecar_rewrites_the_file_only_when_it_changed(tmp_path: Path):
    path = tmp_path / "auth.conf"
    assert authsync.write_if_changed(path, "a")
    assert not authsync.write_if_changed(path, "a")
    assert authsync.write_if_changed(path, "b") and path.read_text() == "b"
    assert path.stat().st_mode & 0o077 == 0
    assert not authsync.signal_reload(tmp_path / "absent.pid")  # not started yet: no signal


@pytest.mark.parametrize(("labels", "keys"), [
    ({"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "admin"},
     [("ns", "Federation", "demo"), ("ns", "PeersOf", "demo")]),
    ({"app.kubernetes.io/instance": "a", "app.kubernetes.io/component": "peer"},
     [("ns", "Peer", "a")]),
    ({"app.kubernetes.io/instance": "x"}, []),
], ids=["admin-wakes-its-federation-and-peers", "peer-wakes-itself", "unknown-wakes-none"])
def test_a_childs_change_wakes_its_owners(labels, keys):
    assert readiness.child_keys("ns", labels) == keys


def test_a_change_ends_a_wait_and_a_wait_without_one_times_out():
    async def go() -> tuple[bool, bool]:
        changes = readiness.Changes()
        key = ("ns", "Peer", "a")
        waiting = asyncio.create_task(changes.wait([key], 30))
        await asyncio.sleep(0)  # let it register
        changes.changed([("ns", "Peer", "b"), key])
        woken = await waiting
        timed_out = await changes.wait([key], 0.01)
        return woken, timed_out
    assert asyncio.run(go()) == (True, False)


def test_the_builders_never_change_their_input():
    fed = example("federation.yaml")
    before = copy.deepcopy(fed)
    builders.desired_admin_deployment(fed, managed_auth=True)
    assert fed == before


def test_a_remote_peer_is_invited_to_reach_the_admin_through_its_ingress():
    from fedstats.operator import peers
    from fedstats.operator.errors import InvalidSpec

    fed = example("federation.yaml")
    remote = example("peer-cpu.yaml", "clinic-x")
    remote["spec"]["remote"] = True
    assert peers.admin_rest_host(remote, fed) == "https://demo.fedstats.example.com"
    local = example("peer-cpu.yaml", "hospital-a")
    assert peers.admin_rest_host(local, fed) == "http://demo-admin.team.svc:8080"
    fed["spec"]["admin"]["ingress"] = {"enabled": False}
    with pytest.raises(InvalidSpec, match="admin Ingress"):
        peers.admin_rest_host(remote, fed)


def test_a_peer_joining_from_elsewhere_reaches_the_exposed_nats_and_trusts_its_ca():
    peer = example("peer-cpu.yaml", "clinic-x")
    del peer["spec"]["federationRef"]
    peer["spec"]["inviteSecretRef"] = {"name": "clinic-x-invitation"}
    peer["spec"]["nats"] = {"url": "tls://nats.fedstats.example.com:4222",
                            "tls": {"caSecretRef": {"name": "fedstats-nats-ca"}}}
    dep = builders.desired_peer_deployment(peer, None)
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FEDSTATS_NATS_URL"]["value"] == "tls://nats.fedstats.example.com:4222"
    assert env["FEDSTATS_INVITATION"]["valueFrom"]["secretKeyRef"]["name"] == \
        "clinic-x-invitation"
    assert secrets_of(dep) == {"clinic-x-peer-customers", "clinic-x-invitation",
                               "fedstats-nats-ca"}
