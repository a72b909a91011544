"""The REST client against a live server that verifies every request with `Verifier`."""

from __future__ import annotations

import httpx
import orjson
import pytest

from fedstats.node.api import jobs
from fedstats.node.client import MAX_JOB_WAIT_S, ApiError, Client
from fedstats.node.security import CryptoError, aead, new_secret_key, signed_headers


@pytest.fixture
def client(live_server) -> Client:
    with Client(live_server.url, "c1", live_server.fake.customers["c1"].secret_key) as c:
        yield c


def test_signed_request_is_accepted_and_signs_the_exact_query(client: Client, fake) -> None:
    assert client.create_project("p-query", type="gpu") is None
    (seen,) = fake.seen
    assert (seen["method"], seen["path"], seen["query"]) == (
        "POST", "/symetry/rest/c1/projects", "pid=p-query&type=gpu")
    assert seen["headers"]["sym-customer-id"] == "c1"


def test_wrong_secret_gets_401_with_an_actionable_reason(live_server) -> None:
    with Client(live_server.url, "c1", new_secret_key()) as wrong, pytest.raises(ApiError) as e:
        wrong.list_projects()
    assert (e.value.http_status, e.value.status_string) == (401, "UNAUTHORIZED")
    assert "signature does not match" in e.value.message
    assert live_server.fake.customers["c1"].secret_key not in e.value.message


def test_unknown_customer_is_refused(live_server) -> None:
    with Client(live_server.url, "c9", new_secret_key()) as c, pytest.raises(ApiError) as e:
        c.list_projects()
    assert e.value.http_status == 401 and "unknown customer" in e.value.message


def test_replaying_a_captured_request_is_refused(live_server, fake) -> None:
    key = fake.customers["c1"].secret_key
    path = "/symetry/rest/c1/projects/list"
    headers = signed_headers("c1", key, "GET", path)
    first = httpx.get(live_server.url + path, headers=headers)
    again = httpx.get(live_server.url + path, headers=headers)
    assert first.status_code == 200
    assert again.status_code == 401 and "replayed" in again.json()["statusString"]


def test_repeated_identical_calls_are_each_signed_afresh(client: Client, fake) -> None:
    client.start_pulse("p1")
    client.start_pulse("p1")  # a replayed signature would be refused (401)
    first, second = (s["headers"]["authorization"] for s in fake.seen)
    assert first != second


def test_non_2xx_envelope_becomes_api_error(client: Client) -> None:
    client.create_project("p-dup")
    with pytest.raises(ApiError) as e:
        client.create_project("p-dup")
    assert (e.value.http_status, e.value.status_string) == (409, "CONFLICT")
    assert "already has p-dup" in e.value.message


def test_non_envelope_error_still_raises_with_the_text(client: Client) -> None:
    with pytest.raises(ApiError, match="not an envelope") as e:
        client.fed("GET", "teapot")
    assert e.value.http_status == 418


def test_json_body_is_sent_signed_with_its_md5(client: Client, fake) -> None:
    frame = {"attributeNames": ["a"], "attributeTypes": ["C"], "data": [["1"]]}
    with pytest.raises(ApiError, match="rows"):  # the fake learns nothing: no row count
        client.learn("p1", frame)
    (seen,) = fake.seen
    assert seen["path"] == "/symetry/rest/c1/projects/p1/learn"
    assert orjson.loads(seen["body"]) == frame
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["content-md5"]


def test_learn_csv_sends_text_csv_and_types_query(client: Client, fake) -> None:
    with pytest.raises(ApiError, match="rows"):  # the fake learns nothing: no row count
        client.learn_csv("p1", b"a,b,c\n1,2,0\n", types=["C", "C", "B"])
    (seen,) = fake.seen
    assert seen["headers"]["content-type"] == "text/csv"
    assert seen["query"] == "types=C,C,B" and seen["body"] == b"a,b,c\n1,2,0\n"


@pytest.mark.parametrize("call,method,path,query", [
    pytest.param(lambda c: c.delete_project("p1"), "DELETE", "projects/p1", "", id="delete"),
    pytest.param(lambda c: c.delete_model("p1", "m1"), "DELETE", "projects/p1/models/m1", "",
                 id="delete-model"),
    pytest.param(lambda c: c.predict("p1", "m1", {}), "POST", "projects/p1/predict/m1", "",
                 id="predict"),
    pytest.param(lambda c: c.start_pulse("p1"), "GET", "fedml/p1/startPulse", "", id="pulse"),
    pytest.param(lambda c: c.stop_pulse("p1"), "GET", "fedml/p1/stopPulse", "", id="stop"),
    pytest.param(lambda c: c.new_schedule("p1", "h3"), "GET", "fedml/p1/newSchedule",
                 "newSchedule=h3", id="schedule"),
    pytest.param(lambda c: c.full_sync("p1"), "GET", "fedml/p1/fullSyncRequest", "",
                 id="full-sync"),
    pytest.param(lambda c: c.set_explore_peers("p1", True), "GET", "fedml/p1/setExplorePeers",
                 "allowExplore=true", id="explore-peers"),
    pytest.param(lambda c: c.remove_peer("p1", "b"), "GET", "fedml/p1/removePeer", "peer=b",
                 id="remove-peer"),
    pytest.param(lambda c: c.validate_contract("p1", ["COUNT(a) >= 5"]), "POST",
                 "fedml/p1/psrContractValidate", "", id="validate-contract"),
    pytest.param(lambda c: c.add_contract("p1", ["COUNT(a) >= 5"]), "POST",
                 "fedml/p1/addPsrContract", "", id="add-contract"),
    pytest.param(lambda c: c.clear_error_log("p1"), "DELETE", "fedml/p1/clearErrorLog", "",
                 id="clear-errors"),
])
def test_helpers_use_the_spec_verbs_and_paths(client: Client, fake, call, method, path,
                                              query) -> None:
    call(client)
    (seen,) = fake.seen
    assert (seen["method"], seen["path"], seen["query"]) == (
        method, f"/symetry/rest/c1/{path}", query)


@pytest.mark.parametrize("call,method,path,query,entity", [
    pytest.param(lambda c: c.project_info("p1"), "GET", "projects/p1/info", "", "smlInfo",
                 id="info"),
    pytest.param(lambda c: c.list_projects(), "GET", "projects/list", "", "stringList",
                 id="projects"),
    pytest.param(lambda c: c.learn("p1", {}), "POST", "projects/p1/learn", "", "rows",
                 id="learn"),
    pytest.param(lambda c: c.forget("p1", {}), "POST", "projects/p1/forget", "", "rows",
                 id="forget"),
    pytest.param(lambda c: c.explore("p1", "uni", {"values": []}), "POST",
                 "projects/p1/explore", "metric=uni", "KSVDMap", id="explore"),
    pytest.param(lambda c: c.explore_pca("p1", {}), "POST", "projects/p1/explorepca", "",
                 "pca", id="explorepca"),
    pytest.param(lambda c: c.models("p1"), "GET", "projects/p1/models", "", "stringList",
                 id="models"),
    pytest.param(lambda c: c.model("p1", "m1"), "GET", "projects/p1/models/m1", "",
                 "modelInfo", id="model"),
    pytest.param(lambda c: c.jobs(), "GET", "jobs", "", "jobs", id="jobs"),
    pytest.param(lambda c: c.error_log("p1"), "GET", "fedml/p1/getErrorLog", "", "stringList",
                 id="errors"),
    pytest.param(lambda c: c.sync_log("p1"), "GET", "fedml/p1/getSyncLog", "", "stringList",
                 id="sync-log"),
    pytest.param(lambda c: c.sync_stats("p1"), "GET", "fedml/p1/syncStats", "", "fedSyncStats",
                 id="stats"),
])
def test_an_answer_lacking_the_entity_asked_for_is_an_error_naming_it(
        client: Client, fake, call, method, path, query, entity) -> None:
    # the fake answers these 200 OK with empty values: not something to read as "none"
    with pytest.raises(ApiError, match=f"holds no .*{entity}") as e:
        call(client)
    assert e.value.http_status == 200
    (seen,) = fake.seen
    assert (seen["method"], seen["path"], seen["query"]) == (
        method, f"/symetry/rest/c1/{path}", query)


def test_contract_body_is_a_string_list(client: Client, fake) -> None:
    client.validate_contract("p1", ["COUNT(a) >= 150", "MEAN(b) > 3.0"])
    assert orjson.loads(fake.seen[0]["body"]) == {"values": ["COUNT(a) >= 150", "MEAN(b) > 3.0"]}


def test_start_build_answers_the_path_of_the_job_location(client: Client, fake) -> None:
    assert client.start_build("p1", "m1", "lda", {"targets": [0]}) == "/symetry/rest/c1/jobs/7"
    (seen,) = fake.seen
    assert seen["query"] == "modelid=m1&algo=lda"


def test_wait_job_asks_the_node_to_hold_each_request_until_the_job_ends(client: Client,
                                                                        fake) -> None:
    fake.job_polls = 0
    done = client.wait_job("http://testserver/symetry/rest/c1/jobs/7", timeout=10)
    assert done == {"jobinfo": {"status": "done"}}
    assert [s["path"] for s in fake.seen] == ["/symetry/rest/c1/jobs/7"] * 3
    holds = [float(s["query"].removeprefix("wait=")) for s in fake.seen]
    assert all(s["query"].startswith("wait=") for s in fake.seen)
    assert all(0 < h <= 10 for h in holds)


def test_wait_job_never_asks_for_more_than_the_node_holds(client: Client, fake) -> None:
    fake.job_polls = 0
    client.wait_job("/symetry/rest/c1/jobs/7", timeout=3600)
    assert {s["query"] for s in fake.seen} == {f"wait={MAX_JOB_WAIT_S}"}
    assert MAX_JOB_WAIT_S == jobs.MAX_WAIT_S  # the node's own limit (client cannot import it)


def test_a_job_still_running_at_the_timeout_is_a_timeout_error(client: Client, fake) -> None:
    fake.job_polls = -1_000_000  # running for as long as the test lasts
    with pytest.raises(TimeoutError, match="still running"):
        client.wait_job("/symetry/rest/c1/jobs/7", timeout=0)
    assert len(fake.seen) == 1


def test_fed_create_body_is_aes_gcm_encrypted_with_the_customer_key(client: Client, fake) -> None:
    client.fed_create("admin", {"fed_name": "f1", "nats_req_timeout": "30"})
    (seen,) = fake.seen
    assert b"fed_name" not in seen["body"]
    assert seen["query"] == "pid=admin"
    assert seen["decrypted"] == {"fed_name": "f1", "nats_req_timeout": "30"}
    key = fake.customers["c1"].secret_key
    assert orjson.loads(aead.decrypt(key, seen["body"].decode()))["fed_name"] == "f1"


def test_legacy_customer_sends_cbc_bodies(live_server, fake) -> None:
    key = fake.customers["c2"].secret_key
    with Client(live_server.url, "c2", key, legacy_cbc=True) as legacy:
        legacy.fed_create("admin", {"fed_name": "f2"})
    (seen,) = fake.seen
    assert seen["decrypted"] == {"fed_name": "f2"}
    assert aead.decrypt_legacy(key, seen["body"].decode()) == b'{"fed_name":"f2"}'


def test_fed_info_is_decrypted(client: Client) -> None:
    assert client.fed_info("p1") == {"fed_name": "f1", "is_pulsing": "false"}
    values = client.fed("GET", "info", pid="p1")["values"]  # the raw answer: encrypted
    assert isinstance(values["fedInfoEncrypted"], str) and "fedInfo" not in values


def test_invitation_joins_once(live_server, client: Client, fake) -> None:
    invite = client.fed_invitation("p1", "s3cret", fed_rest_host="http://admin:8080")
    peer_key = fake.customers["c1"].secret_key
    asked = orjson.loads(aead.decrypt(peer_key, fake.seen[0]["body"].decode()))
    assert asked == {"passwd": "s3cret", "fed_rest_host": "http://admin:8080"}
    with Client(live_server.url, "c1", peer_key) as peer:
        peer.fed_join("node1", invite, "s3cret")
        joined = fake.seen[-1]["decrypted"]
        assert joined["fed_name"] == "f1" and joined["fed_req_token"].startswith("FEDTOKEN")
        with pytest.raises(ApiError) as e:
            peer.fed_join("node2", invite, "s3cret")
    assert e.value.http_status == 401 and "already used" in e.value.message


def test_join_with_wrong_password_fails_before_sending(client: Client, fake) -> None:
    invite = client.fed_invitation("p1", "s3cret")
    sent = len(fake.seen)
    with pytest.raises(CryptoError, match="wrong password"):
        client.fed_join("node1", invite, "guess")
    assert len(fake.seen) == sent
