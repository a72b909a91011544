"""The fedml create/createJoin/invite bodies read into settings, without NATS or HTTP:
each rule refuses what could not work and names the option, and the defaults are kept."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fedstats.node.federation.errors import (
    ContractError,
    FederationError,
    InviteError,
    ScheduleError,
    Unreachable,
)
from fedstats.node.federation.joining import (
    already_joined,
    answer_join,
    invitation_payload,
    invite_request,
    refusal,
    token_digest,
)
from fedstats.node.federation.options import (
    LIMITS,
    admin_config,
    hosts,
    invite_credentials,
    number,
    peer_config,
)
from fedstats.node.federation.state import FedConfig
from fedstats.node.limits import Limits
from fedstats.node.security.invites import MIN_KEY_PASSWORD, MemoryTokenStore, TokenBook
from fedstats.node.security.keys import new_secret_key

LIMITS_DEFAULT = Limits()


def create(**opts: Any) -> FedConfig:
    return admin_config({"fed_name": "f", **opts}, "cpu", LIMITS_DEFAULT)


def joined(**opts: Any) -> FedConfig:
    body = {"fed_name": "f", "fed_secret_key": new_secret_key(), "fed_req_token": "T", **opts}
    return peer_config(body, "cpu", LIMITS_DEFAULT)


# ------------------------------------------------------------------ create
def test_a_create_body_with_only_a_name_gets_the_documented_defaults() -> None:
    config = create(fed_name="  study  ")
    assert (config.fed_name, config.role, config.peer_id, config.admin_peer) == (
        "study", "admin", "admin", "admin")
    assert (config.topology, config.sync_sched, config.contract) == ("decentralized", "m30", [])
    assert config.nats_hosts == ["nats://127.0.0.1:4222"] and config.nats_req_timeout == 30.0
    assert config.fed_local_type == "cpu"
    assert len(base64.b64decode(config.fed_secret_key)) == 32  # a fresh key


@pytest.mark.parametrize("name", [None, "", "   ", 7], ids=["missing", "empty", "blank", "int"])
def test_a_federation_needs_a_name(name: Any) -> None:
    with pytest.raises(FederationError, match="fed_name is required"):
        admin_config({} if name is None else {"fed_name": name}, "cpu", LIMITS_DEFAULT)


def test_a_name_over_the_nodes_limit_is_refused_for_the_admin_and_the_peer() -> None:
    small = Limits(max_fed_name_chars=4)
    with pytest.raises(FederationError, match="max_fed_name_chars=4"):
        admin_config({"fed_name": "abcde"}, "cpu", small)
    assert admin_config({"fed_name": "abcd"}, "cpu", small).fed_name == "abcd"
    with pytest.raises(FederationError, match="max_fed_name_chars=4"):
        peer_config({"fed_name": "abcde", "fed_secret_key": "k", "fed_req_token": "t"}, "cpu",
                    small)


def test_the_topology_is_read_in_any_case_and_an_unknown_one_refused() -> None:
    assert create(fed_type="Hybrid").topology == "hybrid"
    with pytest.raises(FederationError, match="fed_type must be one of"):
        create(fed_type="star")


def test_the_admins_peer_id_becomes_a_subject_token_and_its_admin_peer() -> None:
    config = create(fed_peer_id="lab one")
    assert config.peer_id == config.admin_peer
    assert " " not in config.peer_id and config.peer_id.startswith("lab_one_")


def test_a_given_federation_key_is_kept_and_a_malformed_one_refused() -> None:
    key = new_secret_key()
    assert create(fed_secret_key=f" {key} ").fed_secret_key == key
    with pytest.raises(FederationError, match="fed_secret_key is not usable"):
        create(fed_secret_key=base64.b64encode(b"short").decode())


def test_the_nodes_default_engine_applies_unless_the_body_names_one() -> None:
    assert admin_config({"fed_name": "f"}, "gpu", LIMITS_DEFAULT).fed_local_type == "gpu"
    assert create(fed_local_type="gpu").fed_local_type == "gpu"


def test_a_contract_is_text_or_lines_and_is_parsed_before_anything_is_made() -> None:
    assert create(contract="COUNT(a) >= 10\n@send allow").contract == [
        "COUNT(a) >= 10", "@send allow"]
    assert create(contract=["COUNT(a) >= 10"]).contract == ["COUNT(a) >= 10"]
    with pytest.raises(FederationError, match="contract is a list of rules"):
        create(contract=[1, 2])
    with pytest.raises(ContractError):
        create(contract=["COUNT(a) >="])


def test_a_contract_over_the_nodes_rule_limit_is_refused() -> None:
    with pytest.raises(ContractError):
        admin_config({"fed_name": "f", "contract": ["COUNT(a) > 1"] * 3}, "cpu",
                     Limits(max_contract_rules=2))


def test_a_schedule_is_normalised_and_a_bad_one_refused() -> None:
    assert create(sync_sched=" H3 ").sync_sched == "h3"
    with pytest.raises(ScheduleError):
        create(sync_sched="every hour")


def test_nats_credentials_are_passed_through_as_text() -> None:
    config = create(nats_sec_user="u", nats_sec_passwd=1234, nats_sec_token="")
    assert (config.nats_sec_user, config.nats_sec_passwd, config.nats_sec_token) == (
        "u", "1234", None)


# ------------------------------------------------------------------ hosts and numbers
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["nats://127.0.0.1:4222"]),
        ("a:4222, tls://b:4222 ,", ["nats://a:4222", "tls://b:4222"]),
        (["a:1", " nats://c:2 "], ["nats://a:1", "nats://c:2"]),
    ],
    ids=["default", "text", "list"],
)
def test_nats_hosts_are_text_or_a_list_and_get_a_scheme(value: Any, expected: list[str]) -> None:
    assert hosts(value) == expected


@pytest.mark.parametrize("value", [" , ", [], 4222, ["a", 1]],
                         ids=["blank", "empty-list", "number", "mixed-list"])
def test_nats_hosts_naming_no_server_or_not_text_are_refused(value: Any) -> None:
    with pytest.raises(FederationError, match="nats_hosts"):
        hosts(value)


@pytest.mark.parametrize("raw", ["12.5", 12.5, 12])
def test_a_number_option_may_be_text_or_a_number(raw: Any) -> None:
    assert number({"nats_req_timeout": raw}, "nats_req_timeout", 30.0) == float(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [(True, "must be a number"), ("soon", "must be a number"), ([1], "must be a number"),
     ("nan", "positive"), ("inf", "positive"), (0, "positive"), (-1, "positive"),
     (LIMITS["nats_req_timeout"] + 1, "at most 3600")],
    ids=["bool", "word", "list", "nan", "inf", "zero", "negative", "over-limit"],
)
def test_a_number_that_is_not_a_sane_positive_one_is_refused(raw: Any, message: str) -> None:
    with pytest.raises(FederationError, match=message):
        number({"nats_req_timeout": raw}, "nats_req_timeout", 30.0)


def test_the_stream_memory_is_bounded_and_stored_as_an_integer() -> None:
    assert create(nats_stream_max_memory="1048576").nats_stream_max_memory == 1 << 20
    with pytest.raises(FederationError, match="nats_stream_max_memory must be at most"):
        create(nats_stream_max_memory=1e300)


# ------------------------------------------------------------------ join
def test_a_join_body_must_carry_the_invitations_name_key_and_token() -> None:
    with pytest.raises(FederationError, match="lacks fed_secret_key, fed_req_token"):
        peer_config({"fed_name": "f"}, "cpu", LIMITS_DEFAULT)


def test_a_peer_merges_by_default_only_in_a_decentralized_federation() -> None:
    assert joined().merges and joined(fed_type="decentralized").merges
    assert not joined(fed_type="centralized").merges
    assert not joined(fed_type="hybrid").merges
    assert joined(fed_type="hybrid", fed_merges="yes").merges
    assert not joined(fed_type="decentralized", fed_merges="no").merges


def test_a_joining_peer_reads_an_unknown_topology_as_decentralized() -> None:
    config = joined(fed_type="mesh", fed_admin_peer="boss", fed_peer_id="p7")
    assert (config.topology, config.role, config.admin_peer, config.peer_id) == (
        "decentralized", "peer", "boss", "p7")


def test_a_joining_peer_without_an_id_gets_a_fresh_one() -> None:
    a, b = joined().peer_id, joined().peer_id
    assert a.startswith("peer-") and a != b


# ------------------------------------------------------------------ invitations
def admin(**kw: Any) -> FedConfig:
    return FedConfig(fed_name="f", fed_secret_key=new_secret_key(), role="admin",
                     peer_id="admin", **kw)


def test_an_invitation_needs_a_password_and_a_free_peer_id() -> None:
    config = admin(peers={"p1": {}})
    with pytest.raises(FederationError, match="passwd is required"):
        invite_request(config, {"fed_peer_id": "p2"})
    for taken in ("p1", "admin"):
        with pytest.raises(FederationError, match="already taken"):
            invite_request(config, {"passwd": "pw", "fed_peer_id": taken})
    request = invite_request(config, {"passwd": "pw", "fed_peer_id": "p2"})
    assert (request.peer, request.password, request.ttl) == ("p2", "pw", 24 * 3600.0)
    assert "pw" not in repr(request)


def test_an_invitation_is_sealed_with_scrypt_unless_a_long_password_asks_for_hkdf() -> None:
    config = admin()
    assert invite_request(config, {"passwd": "pw"}).kdf == "scrypt"
    key = "x" * MIN_KEY_PASSWORD
    assert invite_request(config, {"passwd": key, "fed_invite_kdf": "hkdf"}).kdf == "hkdf"
    with pytest.raises(FederationError, match=f"at least {MIN_KEY_PASSWORD} characters"):
        invite_request(config, {"passwd": key[1:], "fed_invite_kdf": "hkdf"})
    with pytest.raises(FederationError, match="fed_invite_kdf is one of scrypt, hkdf"):
        invite_request(config, {"passwd": key, "fed_invite_kdf": "pbkdf2"})


@pytest.mark.parametrize(
    ("topology", "asked", "merges"),
    [("decentralized", False, True), ("centralized", True, False),
     ("hybrid", False, False), ("hybrid", True, True)],
)
def test_an_invited_peer_merges_in_decentralized_and_on_request_in_hybrid(
        topology: str, asked: bool, merges: bool) -> None:
    config = admin(topology=topology)
    assert invite_request(config, {"passwd": "pw", "fed_merges": asked}).merges is merges


def test_the_invitation_never_carries_the_admins_nats_credentials() -> None:
    config = admin(nats_sec_user="root-user", nats_sec_passwd="admin-password")
    request = invite_request(config, {"passwd": "pw", "fed_peer_id": "p1"})
    payload = invitation_payload(config, request, "TOKEN", None)
    assert payload["fed_req_token"] == "TOKEN" and payload["fed_peer_id"] == "p1"
    assert "admin-password" not in str(payload) and "root-user" not in str(payload)
    assert not {"nats_sec_user", "nats_sec_passwd"} & set(payload)


@pytest.mark.parametrize(
    ("opts", "message"),
    [({"nats_sec_user": "u"}, "go together"),
     ({"nats_sec_user": "u", "nats_sec_passwd": "p", "nats_sec_token": "t"}, "one kind"),
     ({"nats_sec_token": 5}, "must be a string")],
    ids=["user-alone", "two-kinds", "not-text"],
)
def test_the_peers_credentials_are_exactly_one_kind(opts: dict[str, Any], message: str) -> None:
    with pytest.raises(FederationError, match=message):
        invite_credentials(opts)


def test_bad_peer_credentials_refuse_the_invitation_before_a_token_is_issued() -> None:
    with pytest.raises(FederationError, match="go together"):
        invite_request(admin(), {"passwd": "pw", "nats_sec_user": "u"})


def test_the_peers_own_credentials_travel_in_its_invitation() -> None:
    config = admin()
    request = invite_request(config, {"passwd": "pw", "nats_sec_token": "peer-token"})
    assert "peer-token" not in repr(request)
    assert invitation_payload(config, request, "T", None)["nats_sec_token"] == "peer-token"


def test_the_peers_credentials_of_one_kind_pass() -> None:
    assert invite_credentials({"nats_sec_user": "u", "nats_sec_passwd": "p"}) == {
        "nats_sec_user": "u", "nats_sec_passwd": "p"}
    assert invite_credentials({"nats_sec_token": "t", "nats_sec_user": ""}) == {
        "nats_sec_token": "t"}
    assert invite_credentials({}) == {}


# ------------------------------------------------------------------ the admin's answer
@pytest.mark.parametrize(("sent", "recorded"), [
    ([10000, 9999, 9999], [9999, 10000]), ([], []), (None, []), ("9999", []), ([True], []),
    (["9999"], []), ([-1], []), ([1.5], []), (list(range(17)), []), ([2**63], [])])
def test_a_join_records_the_fate_party_ids_it_announces_only_when_well_formed(
        sent: object, recorded: list[int]) -> None:
    book, config = TokenBook(MemoryTokenStore()), admin()
    request = {"token": issued(book, config, "p1"), "peer": "p1", "flow_parties": sent}
    assert answer_join(config, book, request)["ok"]  # never refused for it
    assert config.peers["p1"]["flow_parties"] == recorded


def issued(book: TokenBook, config: FedConfig, peer: str) -> str:
    token = book.issue(60, "join:f", peer=peer, merges=True)
    config.invites[peer] = token_digest(token)
    return token


def test_a_join_with_the_newest_invitation_records_the_peer_once() -> None:
    book, config = TokenBook(MemoryTokenStore()), admin(sync_sched="h1", contract=["COUNT(a) > 9"])
    token = issued(book, config, "p1")
    answer = answer_join(config, book, {"token": token, "peer": "p1"}, now=5.0)
    assert answer["ok"] and answer["sync_sched"] == "h1" and answer["contract"] == ["COUNT(a) > 9"]
    assert config.peers["p1"] == {"joined_at": 5.0, "merges": True, "flow_parties": []}
    assert "p1" not in config.invites
    again = answer_join(config, book, {"token": token, "peer": "p1"})
    assert not again["ok"]  # the one-time token is spent


def test_a_join_for_another_peer_id_than_invited_is_refused() -> None:
    book, config = TokenBook(MemoryTokenStore()), admin()
    token = issued(book, config, "p1")
    answer = answer_join(config, book, {"token": token, "peer": "p2"})
    assert answer == {"ok": False, "error": "the invitation was issued for another peer id"}
    assert config.peers == {}


def test_an_older_invitation_for_a_peer_id_is_revoked_by_a_newer_one() -> None:
    book, config = TokenBook(MemoryTokenStore()), admin()
    old = issued(book, config, "p1")
    issued(book, config, "p1")
    answer = answer_join(config, book, {"token": old, "peer": "p1"})
    assert not answer["ok"] and "revoked" in answer["error"] and config.peers == {}


def test_a_peer_id_that_already_joined_cannot_join_again() -> None:
    book, config = TokenBook(MemoryTokenStore()), admin(peers={"p1": {}})
    token = book.issue(60, "join:f", peer="p1", merges=False)
    assert "already joined" in str(answer_join(config, book, {"token": token, "peer": "p1"}))
    assert already_joined(config, "admin") and already_joined(config, "p2") is None


def test_an_admin_that_asks_to_retry_is_unreachable_otherwise_the_invitation_is_bad() -> None:
    assert refusal({"ok": True}) is None
    assert isinstance(refusal({"ok": False, "retry": True, "error": "starting"}), Unreachable)
    bad = refusal({"ok": False, "error": "expired"})
    assert isinstance(bad, InviteError) and "expired" in str(bad)
