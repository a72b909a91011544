"""Projects over REST: create / list / info / delete, and their error answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fedstats.node.client import ApiError, Client
from fedstats.node.engine.xp import gpu_available
from fedstats.node.settings import Settings
from fedstats_harness.frames import frame
from fedstats_harness.inprocess import Node


def test_create_answers_201_and_lists_the_project(client: Client) -> None:
    env = client.request("POST", "/symetry/rest/c1/projects", params={"pid": "created-one"})
    assert env["statusCode"] == "CREATED"
    assert "created-one" in client.list_projects()


def test_creating_an_existing_project_is_a_409_conflict(client: Client, pid: str) -> None:
    with pytest.raises(ApiError) as e:
        client.create_project(pid)
    assert (e.value.http_status, e.value.status_string) == (409, "CONFLICT")
    assert pid in e.value.message


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_a_gpu_project_on_a_node_without_gpu_is_a_clear_400(client: Client) -> None:
    with pytest.raises(ApiError) as e:
        client.create_project("wants-gpu", type="gpu")
    assert e.value.http_status == 400
    assert "GPU" in e.value.message


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 200, "-lead"],
                         ids=["empty", "space", "slash", "too-long", "leading-dash"])
def test_a_malformed_project_id_is_refused_with_400(client: Client, bad: str) -> None:
    with pytest.raises(ApiError) as e:
        client.request("POST", "/symetry/rest/c1/projects", params={"pid": bad})
    assert e.value.http_status in (400, 404)  # a slash can make it another route


def test_an_unknown_project_type_is_400(client: Client) -> None:
    with pytest.raises(ApiError) as e:
        client.create_project("typed", type="tpu")
    assert (e.value.http_status, e.value.status_string) == (400, "BAD_REQUEST")


def test_info_reports_rows_attributes_and_columns(client: Client, pid: str) -> None:
    rows = [[1, 2, "a"], [3, 4, "b"], [5, 6, "a"]]
    client.learn(pid, frame(rows, ["x", "y", "t"], "CCT"))
    info = client.project_info(pid)
    assert info["rows"] == 3
    assert info["attributes"] == {"x": "C", "y": "C", "t": "T"}
    assert info["columns"] == ["x", "y", "t$a", "t$b"]
    assert info["version"] == 1
    assert info["models"] == []


def test_deleted_project_is_gone_and_its_id_reusable(client: Client, pid: str) -> None:
    client.learn(pid, frame([[1.0], [2.0]]))
    client.delete_project(pid)
    assert pid not in client.list_projects()
    with pytest.raises(ApiError) as e:
        client.project_info(pid)
    assert e.value.http_status == 400
    client.create_project(pid)
    assert client.project_info(pid)["rows"] == 0


@pytest.mark.parametrize("call", ["info", "delete", "learn", "forget", "explore", "models"])
def test_an_unknown_project_is_400_with_the_specs_message(client: Client, call: str) -> None:
    actions = {
        "info": lambda: client.project_info("nope"),
        "delete": lambda: client.delete_project("nope"),
        "learn": lambda: client.learn("nope", frame([[1.0]])),
        "forget": lambda: client.forget("nope", frame([[1.0]])),
        "explore": lambda: client.explore("nope", "uni", {}),
        "models": lambda: client.models("nope"),
    }
    with pytest.raises(ApiError) as e:
        actions[call]()
    assert (e.value.http_status, e.value.status_string) == (400, "BAD_REQUEST")
    assert "Cannot find project id [nope]" in e.value.message
    assert e.value.values["error"] == e.value.message


def test_customers_see_only_their_own_projects(node: Node, pid: str) -> None:
    other = node.client("c2")
    assert pid not in other.list_projects()
    with pytest.raises(ApiError) as e:
        other.project_info(pid)
    assert e.value.http_status == 400


def test_a_gpu_default_engine_falls_back_to_cpu_on_a_node_without_a_gpu(
        node_factory: Callable[..., Node]) -> None:
    # FEDSTATS_ENGINE=cupy is what the operator sets on GPU peers: a project created without
    # `type` takes it, and runs on cpu (with a warning) where no GPU is present.
    node = node_factory(default_engine="gpu")
    c = node.client()
    c.create_project("p-default")
    assert c.project_info("p-default")["type"] == (
        "gpu" if gpu_available() else "cpu")
    with pytest.raises(ApiError) as e:
        if gpu_available():
            pytest.skip("this node has a GPU: an explicit gpu project is accepted")
        c.create_project("p-explicit", type="gpu")
    assert e.value.http_status == 400 and "GPU" in e.value.message


def test_fedstats_engine_in_the_environment_sets_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDSTATS_ENGINE", "cupy")
    assert Settings.from_env().default_engine == "gpu"
    monkeypatch.setenv("FEDSTATS_ENGINE", "numpy")
    assert Settings.from_env().default_engine == "cpu"
