"""fedstats' exact homo components in one DSL, through fate-client's `flow` CLI: min-max
FeatureScale, DataStatistics, HomoMLR, HomoRidge and HomoLasso on scikit-learn's diabetes
rows split between guest and host equal scikit-learn on the pooled rows; an unknown
parameter fails the job naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, LinearRegression, Ridge
from sklearn.preprocessing import MinMaxScaler

from fedstats_harness.fateflow import flow_cli, wait_for_end
from fedstats_harness.inprocess import Node

ROLES = {"guest": [9999], "host": [10000], "arbiter": [10000]}


def _dsl() -> dict[str, Any]:
    def c(module: str, data: dict[str, list[str]] | None = None, model: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"module": module, "output": {"data": ["data"]}}
        if model:
            out["output"]["model"] = ["model"]
        if data:
            out["input"] = {"data": data}
        return out
    return {"components": {
        "reader_0": c("Reader", model=False),
        "data_transform_0": c("DataTransform", {"data": ["reader_0.data"]}),
        "scale_0": c("FeatureScale", {"data": ["data_transform_0.data"]}),
        "statistics_0": c("DataStatistics", {"data": ["data_transform_0.data"]}),
        "mlr_0": c("HomoMLR", {"train_data": ["scale_0.data"]}),
        "ridge_0": c("HomoRidge", {"train_data": ["scale_0.data"]}),
        "lasso_0": c("HomoLasso", {"train_data": ["scale_0.data"]}),
        "evaluation_0": c("Evaluation", {"data": ["ridge_0.data"]}, model=False),
    }}


def _conf(**extra: Any) -> dict[str, Any]:
    common = {"data_transform_0": {"with_label": True, "label_name": "y", "label_type": "float"},
              "scale_0": {"method": "min_max_scale"}, "ridge_0": {"alpha": 1.5},
              "lasso_0": {"alpha": 0.01}, "evaluation_0": {"eval_type": "regression"}, **extra}
    tables = {"guest": "diabetes_guest", "host": "diabetes_host"}
    return {"dsl_version": 2, "initiator": {"role": "guest", "party_id": 9999}, "role": ROLES,
            "component_parameters": {"common": common, "role": {
                r: {"0": {"reader_0": {"table": {"name": t, "namespace": "exact"}}}}
                for r, t in tables.items()}}}


@pytest.fixture(scope="module")
def diabetes(flow_bin: Path, job_node: Node, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, np.ndarray, np.ndarray]:
    work = tmp_path_factory.mktemp("exact")
    port = job_node.url.rsplit(":", 1)[1]
    flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
          "--secret-key", job_node.keys["c1"], cwd=work)
    x, y = load_diabetes(return_X_y=True)
    x = x * 100.0 + 1e4  # large offsets: the pooled statistics must stay exact
    rows = np.column_stack([np.arange(len(y)), y, x])
    header = "id,y," + ",".join(f"x{j}" for j in range(x.shape[1]))
    for name, part in (("diabetes_guest", rows[:150]), ("diabetes_host", rows[150:])):
        path = work / f"{name}.csv"
        np.savetxt(path, part, delimiter=",", header=header, comments="", fmt="%.17g")
        conf = work / f"{name}.json"
        conf.write_text(json.dumps({"file": str(path), "head": 1, "partition": 1,
                                    "namespace": "exact", "table_name": name}))
        assert flow_cli(flow_bin, "data", "upload", "-c", str(conf), cwd=work)["retcode"] == 0
    return work, x, y


def _submit(flow_bin: Path, work: Path, conf: dict[str, Any]) -> dict[str, Any]:
    (work / "conf.json").write_text(json.dumps(conf))
    (work / "dsl.json").write_text(json.dumps(_dsl()))
    sub = flow_cli(flow_bin, "job", "submit", "-c", str(work / "conf.json"), "-d",
                str(work / "dsl.json"), cwd=work)
    assert sub["retcode"] == 0, sub
    return wait_for_end(flow_bin, sub["jobId"], work)


def _model(flow_bin: Path, work: Path, job_id: str, cpn: str) -> dict[str, Any]:
    out: dict[str, Any] = flow_cli(flow_bin, "tracking", "output-model", "-j", job_id, "-r", "host",
                                "-p", "10000", "-cpn", cpn, cwd=work)["data"]
    return out


def test_scale_statistics_and_linear_models_equal_scikit_learn(
        flow_bin: Path, diabetes: tuple[Path, np.ndarray, np.ndarray]) -> None:
    work, x, y = diabetes
    row = _submit(flow_bin, work, _conf())
    assert row["f_status"] == "success", row
    job_id = row["f_job_id"]
    names = [f"x{j}" for j in range(x.shape[1])]
    scaler = MinMaxScaler().fit(x)
    scale = _model(flow_bin, work, job_id, "scale_0")["col_scale_param"]
    np.testing.assert_array_equal([scale[n]["column_lower"] for n in names], scaler.data_min_)
    np.testing.assert_array_equal([scale[n]["column_upper"] for n in names], scaler.data_max_)
    st = _model(flow_bin, work, job_id, "statistics_0")["statistics"]
    np.testing.assert_allclose([st["mean"][n] for n in names], x.mean(0), rtol=1e-12)
    np.testing.assert_allclose([st["variance"][n] for n in names], x.var(0, ddof=1), rtol=1e-9)
    np.testing.assert_allclose([st["skewness"][n] for n in names], stats.skew(x), rtol=1e-7)
    np.testing.assert_allclose([st["kurtosis"][n] for n in names], stats.kurtosis(x), rtol=1e-7)
    xs = scaler.transform(x)
    for cpn, ref in (("mlr_0", LinearRegression()), ("ridge_0", Ridge(alpha=1.5)),
                     ("lasso_0", Lasso(alpha=0.01, tol=1e-12, max_iter=100_000))):
        ref.fit(xs, y)
        m = _model(flow_bin, work, job_id, cpn)
        np.testing.assert_allclose([m["weight"][n] for n in names], ref.coef_, rtol=1e-8,
                                   atol=1e-8, err_msg=cpn)
        np.testing.assert_allclose(m["intercept"], ref.intercept_, rtol=1e-9, err_msg=cpn)
    ev = flow_cli(flow_bin, "tracking", "metric-all", "-j", job_id, "-r", "guest", "-p", "9999",
               "-cpn", "evaluation_0", cwd=work)["data"]["train"]["ridge_0"]
    assert set(dict(ev["data"])) == {"rmse", "mae", "r2_score", "explained_variance"}


def test_an_unknown_model_parameter_fails_the_job_naming_it(
        flow_bin: Path, diabetes: tuple[Path, np.ndarray, np.ndarray]) -> None:
    work, _, _ = diabetes
    row = _submit(flow_bin, work, _conf(ridge_0={"alpha": 1.0, "alhpa": 2}))
    assert row["f_status"] == "failed"
    assert "ridge_0" in row["f_reason"] and "'alhpa'" in row["f_reason"], row["f_reason"]
    tasks = flow_cli(flow_bin, "task", "query", "-j", row["f_job_id"], "-cpn", "ridge_0",
                  cwd=work)["data"]
    assert {t["f_status"] for t in tasks} == {"failed"}
    assert "'alhpa'" in tasks[0]["f_error_report"]


def test_fedstats_classifiers_and_pcr_run_as_homo_components(
        flow_bin: Path, diabetes: tuple[Path, np.ndarray, np.ndarray]) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.naive_bayes import GaussianNB

    work, _, _ = diabetes
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :8]
    rows = np.column_stack([np.arange(len(y)), y, x])
    header = "id,y," + ",".join(f"x{j}" for j in range(8))
    for name, part in (("breast_guest", rows[:250]), ("breast_host", rows[250:])):
        path = work / f"{name}.csv"
        np.savetxt(path, part, delimiter=",", header=header, comments="", fmt="%.17g")
        up = work / f"{name}.json"
        up.write_text(json.dumps({"file": str(path), "head": 1, "partition": 1, "drop": 1,
                                  "namespace": "exact", "table_name": name}))
        assert flow_cli(flow_bin, "data", "upload", "-c", str(up), cwd=work)["retcode"] == 0
    comps: dict[str, Any] = {
        "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
        "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                             "output": {"data": ["data"], "model": ["model"]}}}
    for cpn, module in (("lda_0", "HomoLDA"), ("bayes_0", "HomoBayes"), ("mqda_0", "HomoMQDA"),
                        ("enet_0", "HomoElasticNet"), ("pcr_0", "HomoPCR")):
        comps[cpn] = {"module": module, "input": {"data": {"train_data": ["data_transform_0.data"]}},
                      "output": {"data": ["data"], "model": ["model"]}}
    comps["evaluation_0"] = {"module": "Evaluation", "input": {"data": {"data": ["lda_0.data"]}},
                             "output": {"data": ["data"]}}
    conf = _conf()
    conf["component_parameters"] = {
        "common": {"data_transform_0": {"with_label": True}, "enet_0": {"alpha": 0.01, "l1_ratio": 0.5},
                   "evaluation_0": {"eval_type": "binary"}},
        "role": {r: {"0": {"reader_0": {"table": {"name": f"breast_{r}", "namespace": "exact"}}}}
                 for r in ("guest", "host")}}
    (work / "conf.json").write_text(json.dumps(conf))
    (work / "dsl.json").write_text(json.dumps({"components": comps}))
    sub = flow_cli(flow_bin, "job", "submit", "-c", str(work / "conf.json"), "-d",
                str(work / "dsl.json"), cwd=work)
    assert sub["retcode"] == 0, sub
    row = wait_for_end(flow_bin, sub["jobId"], work)
    assert row["f_status"] == "success", row
    for cpn, ref in (("lda_0", LinearDiscriminantAnalysis()), ("bayes_0", GaussianNB())):
        got = flow_cli(flow_bin, "tracking", "output-data", "-j", sub["jobId"], "-r", "guest", "-p",
                    "9999", "-cpn", cpn, "-o", str(work / cpn), cwd=work)
        lines = next(Path(got["directory"]).glob("*.csv")).read_text().splitlines()[1:]
        predicted = np.array([float(line.split(",")[2]) for line in lines])
        np.testing.assert_array_equal(predicted, ref.fit(x, y).predict(x[:250]), err_msg=cpn)
    auc = dict(flow_cli(flow_bin, "tracking", "metric-all", "-j", sub["jobId"], "-r", "guest", "-p",
                     "9999", "-cpn", "evaluation_0", cwd=work)["data"]["train"]["lda_0"]["data"])
    assert auc["auc"] > 0.9


def test_a_failed_job_is_fixed_by_parameter_update_and_rerun(
        flow_bin: Path, diabetes: tuple[Path, np.ndarray, np.ndarray]) -> None:
    work, x, y = diabetes
    row = _submit(flow_bin, work, _conf(ridge_0={"alpha": -1}))
    assert row["f_status"] == "failed" and "ridge_0" in row["f_reason"], row
    job_id = row["f_job_id"]
    update = work / "update.json"
    update.write_text(json.dumps({"component_parameters": {"common": {"ridge_0": {"alpha": 2.0}}}}))
    out = flow_cli(flow_bin, "job", "parameter-update", "-j", job_id, "-c", str(update), cwd=work)
    assert out["retcode"] == 0 and out["data"]["components"] == ["ridge_0"], out
    assert flow_cli(flow_bin, "job", "rerun", "-j", job_id, cwd=work)["retcode"] == 0
    assert wait_for_end(flow_bin, job_id, work)["f_status"] == "success"
    ref = Ridge(alpha=2.0).fit(MinMaxScaler().fit_transform(x), y)
    m = _model(flow_bin, work, job_id, "ridge_0")
    np.testing.assert_allclose([m["weight"][f"x{j}"] for j in range(x.shape[1])], ref.coef_,
                               rtol=1e-8, atol=1e-8)
