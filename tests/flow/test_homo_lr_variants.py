"""HomoLR beyond FATE's binary L2 example, through fate-client's `flow` CLI on one node:
L1 equals scikit-learn's L1 logistic regression on the pooled rows; a three-class label
is FATE's one-vs-rest, each class's fit equal to scikit-learn's `OneVsRestClassifier`,
with per-class probabilities in the output data and a multi-class evaluation."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from fedstats.node.client import ksvs_columns
from fedstats_harness.inprocess import Node

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.slow


def _cli(flow_bin: Path, work: Path, *args: str) -> dict[str, Any]:
    r = subprocess.run([str(flow_bin), *args], capture_output=True, text=True, cwd=work,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout[r.stdout.index("{"):])
    return out


@pytest.fixture(scope="module")
def work(flow_bin: Path, job_node: Node, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("variants")
    port = job_node.url.rsplit(":", 1)[1]
    _cli(flow_bin, work, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
         "--secret-key", job_node.keys["c1"])
    for name, (x, y) in (("cancer", load_breast_cancer(return_X_y=True)),
                         ("wine", load_wine(return_X_y=True))):
        rows = np.column_stack([np.arange(len(y)), y, x])
        header = "id,y," + ",".join(f"x{j}" for j in range(x.shape[1]))
        cut = len(y) // 2
        for role, part in (("guest", rows[:cut]), ("host", rows[cut:])):
            path = work / f"{name}_{role}.csv"
            np.savetxt(path, part, delimiter=",", header=header, comments="", fmt="%.17g")
            conf = work / f"{name}_{role}.json"
            conf.write_text(json.dumps({"file": str(path), "head": 1, "partition": 1,
                                        "namespace": "variants", "table_name": f"{name}_{role}"}))
            assert _cli(flow_bin, work, "data", "upload", "-c", str(conf))["retcode"] == 0
    return work


def _run(flow_bin: Path, work: Path, data: str, lr: dict[str, Any], eval_type: str) -> str:
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    common = conf["component_parameters"]["common"]
    common["homo_lr_0"].update(lr)
    common["evaluation_0"]["eval_type"] = eval_type
    for role in ("guest", "host"):
        conf["component_parameters"]["role"][role]["0"]["reader_0"]["table"] = {
            "name": f"{data}_{role}", "namespace": "variants"}
    (work / "c.json").write_text(json.dumps(conf))
    sub = _cli(flow_bin, work, "job", "submit", "-c", str(work / "c.json"), "-d",
               str(DATA / "homo_lr_train_dsl.json"))
    assert sub["retcode"] == 0, sub
    end = time.monotonic() + 180
    while True:
        row = _cli(flow_bin, work, "job", "query", "-j", sub["jobId"], "-r", "guest", "-p",
                   "9999")["data"][0]
        if row["f_status"] not in ("waiting", "running"):
            break
        assert time.monotonic() < end
        time.sleep(0.2)
    assert row["f_status"] == "success", row
    return str(sub["jobId"])


def _model(flow_bin: Path, work: Path, job_id: str) -> dict[str, Any]:
    out = _cli(flow_bin, work, "tracking", "output-model", "-j", job_id, "-r", "guest", "-p",
               "9999", "-cpn", "homo_lr_0")
    model: dict[str, Any] = out["data"]
    return model


def test_l1_homo_lr_equals_scikit_learn_l1_on_the_pooled_rows(flow_bin: Path, work: Path) -> None:
    alpha = 0.05
    job_id = _run(flow_bin, work, "cancer", {"penalty": "L1", "alpha": alpha, "tol": 1e-12,
                                              "max_iter": 200}, "binary")
    model = _model(flow_bin, work, job_id)
    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    ref = LogisticRegression(C=1 / (alpha * len(y)), l1_ratio=1.0, solver="saga", tol=1e-14,
                             max_iter=100_000).fit(x, y)
    weights = np.array([model["weight"][f"x{j}"] for j in range(x.shape[1])])
    assert (weights == 0).sum() >= 10  # L1 sets coefficients to exactly zero
    np.testing.assert_allclose(weights, ref.coef_[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model["intercept"], ref.intercept_[0], rtol=1e-6, atol=1e-9)


def test_three_classes_are_one_vs_rest_each_exact(flow_bin: Path, work: Path) -> None:
    alpha = 0.01
    job_id = _run(flow_bin, work, "wine", {"penalty": "L2", "alpha": alpha, "tol": 1e-12},
                  "multi")
    model = _model(flow_bin, work, job_id)
    assert model["needOneVsRest"] is True
    ovr = model["one_vs_rest_result"]
    assert ovr["one_vs_rest_classes"] == [0, 1, 2]
    x, y = load_wine(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    ref = OneVsRestClassifier(LogisticRegression(C=1 / (alpha * len(y)), tol=1e-14,
                                                 max_iter=10_000, solver="newton-cholesky")
                              ).fit(x, y)
    for fit, est in zip(ovr["completed_models"], ref.estimators_, strict=True):
        weights = np.array([fit["weight"][f"x{j}"] for j in range(x.shape[1])])
        np.testing.assert_allclose(weights, est.coef_[0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(fit["intercept"], est.intercept_[0], rtol=1e-8, atol=1e-10)
    ev = _cli(flow_bin, work, "tracking", "metric-all", "-j", job_id, "-r", "guest", "-p",
              "9999", "-cpn", "evaluation_0")["data"]["train"]
    assert dict(ev["homo_lr_0"]["data"])["accuracy"] > 0.95
    got = _cli(flow_bin, work, "tracking", "output-data", "-j", job_id, "-r", "guest", "-p",
               "9999", "-cpn", "homo_lr_0", "-o", str(work / "out"))
    lines = next(Path(got["directory"]).glob("*.csv")).read_text().splitlines()
    first = lines[1].split(",", 4)
    detail = json.loads(first[4].rsplit(",", 1)[0].strip('"').replace('""', '"'))
    assert set(detail) == {"0", "1", "2"}
    assert float(first[2]) == float(max(detail, key=lambda k: float(detail[k])))


def test_a_model_stored_and_restored_through_the_database_flags(
        flow_bin: Path, work: Path, job_node: Node) -> None:
    job_id = _run(flow_bin, work, "cancer", {"tol": 1e-10}, "binary")
    model_id = "arbiter-10000#guest-9999#host-10000#model"
    key = {"role": "guest", "party_id": 9999, "model_id": model_id, "model_version": job_id}
    conf = work / "store.json"
    conf.write_text(json.dumps(key))
    stored = _cli(flow_bin, work, "model", "export", "-c", str(conf), "--to-database")
    assert stored["retcode"] == 0 and len(stored["data"]["sha256"]) == 64, stored
    again = _cli(flow_bin, work, "model", "export", "-c", str(conf), "--to-database")
    assert again["retcode"] == 103 and "force_update" in again["retmsg"], again
    before = _model(flow_bin, work, job_id)
    # the party's model rows and outputs go; the restore brings exactly them back
    with job_node.app.state.db.transaction() as c:
        c.execute("DELETE FROM flow_outputs WHERE job_id = ? AND role = 'guest'", (job_id,))
    assert _model(flow_bin, work, job_id) != before
    restored = _cli(flow_bin, work, "model", "import", "-c", str(conf), "--from-database")
    assert restored["retcode"] == 0 and restored["data"]["sha256"] == stored["data"]["sha256"]
    assert _model(flow_bin, work, job_id) == before
    conf.write_text(json.dumps({**key, "sha256": "0" * 64}))
    wrong = _cli(flow_bin, work, "model", "import", "-c", str(conf), "--from-database")
    assert wrong["retcode"] == 101 and "is not the stored model's" in wrong["retmsg"], wrong
    with job_node.app.state.db.transaction() as c:  # corrupted in the storage: refused
        c.execute("UPDATE flow_model_store SET doc = CAST('{}' AS BLOB) WHERE model_version = ?",
                  (job_id,))
    conf.write_text(json.dumps(key))
    bad = _cli(flow_bin, work, "model", "import", "-c", str(conf), "--from-database")
    assert bad["retcode"] == 103 and "does not match its SHA-256" in bad["retmsg"], bad
    conf.write_text(json.dumps({**key, "model_version": "nope"}))
    missing = _cli(flow_bin, work, "model", "import", "-c", str(conf), "--from-database")
    assert missing["retcode"] == 102 and "not in the model storage" in missing["retmsg"]


def test_a_bound_service_id_serves_predictions_on_raw_rows(flow_bin: Path, work: Path,
                                                           job_node: Node) -> None:
    job_id = _run(flow_bin, work, "cancer", {"tol": 1e-12}, "binary")
    model_id = "arbiter-10000#guest-9999#host-10000#model"
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    bind = {"service_id": "cancer-svc", "initiator": conf["initiator"], "role": conf["role"],
            "job_parameters": {"model_id": model_id, "model_version": job_id}}
    path = work / "bind.json"
    path.write_text(json.dumps(bind))
    out = _cli(flow_bin, work, "model", "bind", "-c", str(path))
    assert out["retcode"] == 0 and out["retmsg"] == "service id is cancer-svc", out
    x, y = load_breast_cancer(return_X_y=True)
    frame = {"attributeNames": [f"x{j}" for j in range(30)], "attributeTypes": ["C"] * 30,
             "data": [[repr(float(v)) for v in row] for row in x[:50]]}
    got = ksvs_columns(job_node.client().predict("cancer-svc", "cancer-svc", frame)["values"]
                       ["KSVSMap"])
    scaler = StandardScaler().fit(x)  # the pooled FeatureScale, folded into the weights
    ref = LogisticRegression(C=1 / (0.01 * len(y)), tol=1e-14, max_iter=10_000,
                             solver="newton-cholesky").fit(scaler.transform(x), y)
    np.testing.assert_allclose([float(v) for v in got["proba_1"]],
                               ref.predict_proba(scaler.transform(x[:50]))[:, 1],
                               rtol=1e-8, atol=1e-12)
    assert got["res"] == [str(int(v)) for v in ref.predict(scaler.transform(x[:50]))]
    ovr = _run(flow_bin, work, "wine", {"tol": 1e-10}, "multi")
    path.write_text(json.dumps({**bind, "service_id": "wine-svc", "job_parameters": {
        "model_id": model_id, "model_version": ovr}}))
    refused = _cli(flow_bin, work, "model", "bind", "-c", str(path))
    assert refused["retcode"] == 103 and "one-vs-rest" in refused["retmsg"], refused
