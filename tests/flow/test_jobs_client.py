"""FATE's own homo LR example through fate-client 1.11.3's `flow` CLI: upload the guest's
and the host's tables, submit the example conf and DSL unchanged, poll the job, read its
tasks, metrics, model and output data, download its log, deploy the model and run a
predict job on it. The fitted HomoLR is scikit-learn's LogisticRegression on the pooled,
standardized rows (FATE's objective: mean log-loss + alpha/2 ||w||^2, so C = 1/(alpha N)).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fedstats_harness.fateflow import breast_split, flow_cli, wait_for_end
from fedstats_harness.inprocess import Node

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def trained(flow_bin: Path, job_node: Node, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, str, np.ndarray]:
    work = tmp_path_factory.mktemp("work")
    port = job_node.url.rsplit(":", 1)[1]
    assert flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
                 "--secret-key", job_node.keys["c1"], cwd=work)["retcode"] == 0
    guest, host, rows = breast_split(work)
    for path in (guest, host):
        conf = work / f"upload_{path.stem}.json"
        conf.write_text(json.dumps({"file": str(path), "head": 1, "partition": 4,
                                    "namespace": "experiment", "table_name": path.stem}))
        assert flow_cli(flow_bin, "data", "upload", "-c", str(conf), cwd=work)["retcode"] == 0
    sub = flow_cli(flow_bin, "job", "submit", "-c", str(DATA / "homo_lr_train_conf.json"),
                "-d", str(DATA / "homo_lr_train_dsl.json"), cwd=work)
    assert sub["retcode"] == 0, sub
    assert sub["data"]["model_info"]["model_id"] == "arbiter-10000#guest-9999#host-10000#model"
    return work, sub["jobId"], rows


def test_the_homo_lr_example_runs_to_success(flow_bin: Path, trained: tuple[Path, str, np.ndarray]
                                             ) -> None:
    work, job_id, _ = trained
    row = wait_for_end(flow_bin, job_id, work)
    assert row["f_status"] == "success", row
    assert row["f_progress"] == 100
    tasks = flow_cli(flow_bin, "task", "query", "-j", job_id, cwd=work)["data"]
    status = {(t["f_component_name"], t["f_role"]): t["f_status"] for t in tasks}
    assert status[("homo_lr_0", "guest")] == "success"
    assert status[("evaluation_0", "host")] == "pass"  # need_run: false in FATE's conf
    comps = flow_cli(flow_bin, "component", "list", "-j", job_id, cwd=work)["data"]["components"]
    assert comps == ["reader_0", "data_transform_0", "scale_0", "homo_lr_0", "evaluation_0"]


def test_homo_lr_equals_scikit_learn_on_the_pooled_rows(
        flow_bin: Path, trained: tuple[Path, str, np.ndarray]) -> None:
    work, job_id, rows = trained
    wait_for_end(flow_bin, job_id, work)
    out = flow_cli(flow_bin, "tracking", "output-model", "-j", job_id, "-r", "guest", "-p", "9999",
                "-cpn", "homo_lr_0", cwd=work)
    model = out["data"]
    assert model["isConverged"] is True
    assert out["meta"]["meta_data"]["notNeeded"]["optimizer"] == "sgd"
    x, y = StandardScaler().fit_transform(rows[:, 2:]), rows[:, 1]
    ref = LogisticRegression(C=1.0 / (0.01 * len(y)), tol=1e-14, max_iter=10_000,
                             solver="newton-cholesky").fit(x, y)
    weights = np.array([model["weight"][f"x{j}"] for j in range(x.shape[1])])
    np.testing.assert_allclose(weights, ref.coef_[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model["intercept"], ref.intercept_[0], rtol=1e-8, atol=1e-10)
    host = flow_cli(flow_bin, "tracking", "output-model", "-j", job_id, "-r", "arbiter", "-p",
                 "10000", "-cpn", "homo_lr_0", cwd=work)["data"]
    assert host["weight"] == model["weight"]  # the arbiter holds the global model


def test_metrics_output_data_and_the_log(flow_bin: Path, trained: tuple[Path, str, np.ndarray]
                                         ) -> None:
    work, job_id, _ = trained
    wait_for_end(flow_bin, job_id, work)
    loss = flow_cli(flow_bin, "tracking", "metric-all", "-j", job_id, "-r", "guest", "-p", "9999",
                 "-cpn", "homo_lr_0", cwd=work)["data"]["train"]["loss"]
    assert loss["meta"]["metric_type"] == "LOSS" and len(loss["data"]) >= 2
    ev = flow_cli(flow_bin, "tracking", "metric-all", "-j", job_id, "-r", "guest", "-p", "9999",
               "-cpn", "evaluation_0", cwd=work)["data"]["train"]
    summary = dict(ev["homo_lr_0"]["data"])
    assert summary["auc"] > 0.99 and set(summary) >= {"ks", "accuracy", "precision", "recall"}
    assert ev["homo_lr_0_roc"]["data"][0] == [0.0, 0.0]
    got = flow_cli(flow_bin, "tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                "-cpn", "homo_lr_0", "-o", str(work / "out"), cwd=work)
    assert got["retcode"] == 0, got
    csv = next(Path(got["directory"]).glob("*.csv")).read_text().splitlines()
    assert csv[0] == "id,label,predict_result,predict_score,predict_detail,type"
    assert len(csv) == 1 + 300
    view = flow_cli(flow_bin, "job", "view", "-j", job_id, "-r", "host", "-p", "10000", cwd=work)
    assert {v["f_component_name"] for v in view["data"]} == {
        "reader_0", "data_transform_0", "scale_0", "homo_lr_0"}
    logs = flow_cli(flow_bin, "job", "log", "-j", job_id, "-o", str(work / "logs"), cwd=work)
    assert logs["retcode"] == 0, logs
    info = (Path(logs["directory"]) / "guest" / "9999" / "INFO.log").read_text()
    assert "homo_lr_0 (HomoLR): success" in info


def test_deploy_and_a_predict_job(flow_bin: Path, trained: tuple[Path, str, np.ndarray]) -> None:
    work, job_id, _ = trained
    wait_for_end(flow_bin, job_id, work)
    model_id = "arbiter-10000#guest-9999#host-10000#model"
    dep = flow_cli(flow_bin, "model", "deploy", "--model-id", model_id, "--model-version", job_id,
                cwd=work)
    assert dep["retcode"] == 0, dep
    version = dep["data"]["model_version"]
    assert version != job_id
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    conf["job_parameters"] = {"common": {"job_type": "predict", "model_id": model_id,
                                         "model_version": version}}
    path = work / "predict_conf.json"
    path.write_text(json.dumps(conf))
    dsl = flow_cli(flow_bin, "model", "get-predict-dsl", "--model-id", model_id, "--model-version",
                version, "-o", str(work / "pdsl"), cwd=work)
    assert dsl["retcode"] == 0, dsl
    sub = flow_cli(flow_bin, "job", "submit", "-c", str(path), cwd=work)
    assert sub["retcode"] == 0, sub
    row = wait_for_end(flow_bin, sub["jobId"], work)
    assert row["f_status"] == "success", row
    out = flow_cli(flow_bin, "tracking", "metric-all", "-j", sub["jobId"], "-r", "guest", "-p",
                "9999", "-cpn", "evaluation_0", cwd=work)
    assert dict(out["data"]["test"]["homo_lr_0"]["data"])["auc"] > 0.99
    undeployed = conf | {"job_parameters": {"common": {"job_type": "predict", "model_id": model_id,
                                                        "model_version": job_id}}}
    path.write_text(json.dumps(undeployed))
    refused = flow_cli(flow_bin, "job", "submit", "-c", str(path), cwd=work)
    assert refused["retcode"] != 0 and "deployed" in refused["retmsg"]


def test_a_model_exported_and_imported_again(flow_bin: Path,
                                             trained: tuple[Path, str, np.ndarray]) -> None:
    work, job_id, _ = trained
    wait_for_end(flow_bin, job_id, work)
    conf = {"role": "guest", "party_id": 9999, "model_id": "arbiter-10000#guest-9999#host-10000#model",
            "model_version": job_id, "output_path": str(work / "export")}
    path = work / "export.json"
    path.write_text(json.dumps(conf))
    out = flow_cli(flow_bin, "model", "export", "-c", str(path), cwd=work)
    assert out["retcode"] == 0, out
    zipped = Path(out["file"])
    assert zipped.name == f"guest#9999#arbiter-10000#guest-9999#host-10000#model_{job_id}.zip"
    imp = work / "import.json"
    imp.write_text(json.dumps({**conf, "file": str(zipped), "force_update": 0}))
    refused = flow_cli(flow_bin, "model", "import", "-c", str(imp), cwd=work)
    assert refused["retcode"] == 409 and refused["retmsg"] == "Model already exists.", refused
    imp.write_text(json.dumps({**conf, "file": str(zipped), "force_update": 1}))
    done = flow_cli(flow_bin, "model", "import", "-c", str(imp), cwd=work)
    assert done["retcode"] == 0 and done["data"]["model_version"] == job_id, done
    model = flow_cli(flow_bin, "tracking", "output-model", "-j", job_id, "-r", "guest", "-p", "9999",
                  "-cpn", "homo_lr_0", cwd=work)["data"]
    assert model["isConverged"] is True
