"""Build (202 + job), list, info, predict (REST), delete; explore; and their error answers."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.client import ApiError, Client
from fedstats_harness.frames import frame

NAMES = ["x1", "x2", "y"]


@pytest.fixture
def trained(client: Client, pid: str) -> str:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = 1.5 + 2.0 * x[:, 0] - 3.0 * x[:, 1]
    client.learn(pid, frame(np.column_stack([x, y]), NAMES))
    return pid


CONTEXT = {"targetAttributeNames": ["y"], "inputAttributeNames": ["x1", "x2"]}


def test_build_answers_202_with_the_job_location_then_the_model(client: Client,
                                                                trained: str) -> None:
    resp, env = client._send("POST", f"/symetry/rest/c1/projects/{trained}/build",
                             params={"modelid": "m1", "algo": "mlr"}, json=CONTEXT)
    assert resp.status_code == 202 and env["statusCode"] == "ACCEPTED"
    assert resp.headers["Location"].startswith("/symetry/rest/c1/jobs/")
    done = client.wait_job(resp.headers["Location"])
    assert done["jobinfo"]["status"] == "done"
    assert done["modelInfo"]["algo"] == "mlr"
    assert client.models(trained) == ["m1"]
    assert client.model(trained, "m1")["targets"] == ["y"]
    assert client.project_info(trained)["models"] == ["m1"]


def test_predict_answers_a_ksvsmap_of_exact_predictions(client: Client, trained: str) -> None:
    client.build(trained, "lin", "mlr", CONTEXT)
    out = client.predict(trained, "lin", frame([[1.0, 1.0], [0.0, 2.0]], ["x1", "x2"]))
    rows = out["values"]["KSVSMap"]["values"]
    np.testing.assert_allclose([float(r["res"]) for r in rows], [0.5, -4.5], atol=1e-9)


def test_predict_with_a_frame_lacking_a_model_attribute_is_400_naming_it(client: Client,
                                                                         trained: str) -> None:
    client.build(trained, "lin2", "mlr", CONTEXT)
    with pytest.raises(ApiError) as e:
        client.predict(trained, "lin2", frame([[1.0]], ["x1"]))
    assert e.value.http_status == 400 and "x2" in e.value.message


def test_an_unknown_algo_is_400_at_once(client: Client, trained: str) -> None:
    with pytest.raises(ApiError) as e:
        client.build(trained, "m", "deep-net", CONTEXT)
    assert e.value.http_status == 400 and "deep-net" in e.value.message


def test_a_build_the_statistics_cannot_satisfy_fails_its_job_with_400(client: Client,
                                                                      trained: str) -> None:
    with pytest.raises(ApiError) as e:
        client.build(trained, "m", "mlr", {"targetAttributeNames": ["nope"]})
    assert e.value.http_status == 400
    assert e.value.values["jobinfo"]["status"] == "failed"
    assert "nope" in e.value.message


@pytest.mark.parametrize("call", ["info", "predict", "delete"])
def test_an_unknown_model_is_400(client: Client, trained: str, call: str) -> None:
    actions = {
        "info": lambda: client.model(trained, "ghost"),
        "predict": lambda: client.predict(trained, "ghost", frame([[1.0, 2.0]], ["x1", "x2"])),
        "delete": lambda: client.delete_model(trained, "ghost"),
    }
    with pytest.raises(ApiError) as e:
        actions[call]()
    assert e.value.http_status == 400 and "ghost" in e.value.message


def test_a_deleted_model_is_gone(client: Client, trained: str) -> None:
    client.build(trained, "gone", "mlr", CONTEXT)
    client.delete_model(trained, "gone")
    assert client.models(trained) == []


@pytest.mark.parametrize("job", ["123456789", "abc"], ids=["never-issued", "not-a-number"])
def test_an_unknown_job_is_400(client: Client, job: str) -> None:
    with pytest.raises(ApiError) as e:
        client.job(job)
    assert e.value.http_status == 400


def test_a_job_of_another_customer_is_unknown(node, client: Client, trained: str) -> None:  # type: ignore[no-untyped-def]
    resp, _ = client._send("POST", f"/symetry/rest/c1/projects/{trained}/build",
                           params={"modelid": "m9", "algo": "mlr"}, json=CONTEXT)
    job_id = resp.headers["Location"].rsplit("/", 1)[1]
    with pytest.raises(ApiError) as e:
        node.client("c2").job(job_id)
    assert e.value.http_status == 400


def test_explore_uni_bi_and_pca_answer_from_the_statistics(client: Client, trained: str) -> None:
    stats = client.explore(trained, "uni", {"values": [{"inputAttributeNames": ["x1", "y"]}]})
    assert set(stats) == {"x1", "y"}
    assert stats["x1"]["count"] == 200
    bi = client.explore(trained, "bi", {})
    assert bi["linCorr"][0][0] == pytest.approx(1.0)
    pca = client.explore_pca(trained, {})
    assert len(pca["pcaValues"]) == 3 and len(pca["pcaVectors"]) == 3
    assert pca["pcaValues"][-1] == pytest.approx(0.0, abs=1e-9)  # y is a linear function


def test_an_unknown_explore_metric_is_400(client: Client, trained: str) -> None:
    with pytest.raises(ApiError) as e:
        client.explore(trained, "tri", {})
    assert e.value.http_status == 400


@pytest.mark.parametrize("job_id", ["%C2%B9", "%D9%A3", "12x", "1" * 19],
                         ids=["superscript-one", "arabic-three", "not-digits", "too-long"])
def test_a_job_id_that_is_not_ascii_digits_is_400_not_found(client: Client,
                                                             job_id: str) -> None:
    with pytest.raises(ApiError) as e:
        client.request("GET", f"/symetry/rest/c1/jobs/{job_id}")
    assert e.value.http_status == 400 and "Cannot find job id" in e.value.message
