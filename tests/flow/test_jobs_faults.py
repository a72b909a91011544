"""Jobs that go wrong, against a `fedstats node` process and fate-client's `flow` CLI:
bad submissions answered in FATE's shape naming the defect, a running job stopped and
rerun, and a node killed (-9) mid-job: after the restart the job is `failed` with the
reason, and the tables and the earlier job's model are intact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedstats.node.security.keys import new_secret_key
from fedstats_harness.fateflow import breast_split, flow_cli, job_node_env, wait_for_end
from fedstats_harness.localnet import NodeProcess

BIG_ROWS = 100_000

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def proc(flow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, Path]]:
    d = tmp_path_factory.mktemp("faults")
    (d / "root").mkdir()
    node = NodeProcess("flow", d, {"c1": new_secret_key()}, env=job_node_env(d / "root"))
    node.start()
    work = d / "work"
    work.mkdir()
    flow_cli(flow_bin, "init", "--ip", node.host, "--port", str(node.port), "--app-key", "c1",
          "--secret-key", json.loads(node.customers_file.read_text())["c1"], cwd=work)
    guest, host, _ = breast_split(work)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(BIG_ROWS, 20))
    y = (x[:, 0] + rng.normal(size=BIG_ROWS) > 0).astype(float)
    big = work / "big.csv"
    np.savetxt(big, np.column_stack([np.arange(BIG_ROWS), y, x]), delimiter=",", fmt="%.6g",
               header="id,y," + ",".join(f"x{j}" for j in range(20)), comments="")
    for path, name in ((guest, "breast_homo_guest"), (host, "breast_homo_host"),
                       (big, "big_guest"), (big, "big_host")):
        conf = work / f"up_{name}.json"
        conf.write_text(json.dumps({"file": str(path), "head": 1, "partition": 1,
                                    "namespace": "experiment", "table_name": name}))
        assert flow_cli(flow_bin, "data", "upload", "-c", str(conf), cwd=work)["retcode"] == 0
    yield node, work
    node.stop()


def _submit(flow_bin: Path, work: Path, conf: dict[str, Any], dsl: dict[str, Any]) -> dict[str, Any]:
    (work / "c.json").write_text(json.dumps(conf))
    (work / "d.json").write_text(json.dumps(dsl))
    return flow_cli(flow_bin, "job", "submit", "-c", str(work / "c.json"), "-d", str(work / "d.json"),
                 cwd=work)


def _example(tables: tuple[str, str] = ("breast_homo_guest", "breast_homo_host")
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    for role, name in zip(("guest", "host"), tables, strict=True):
        conf["component_parameters"]["role"][role]["0"]["reader_0"]["table"]["name"] = name
    return conf, json.loads((DATA / "homo_lr_train_dsl.json").read_text())


def _big() -> tuple[dict[str, Any], dict[str, Any]]:
    conf, dsl = _example(("big_guest", "big_host"))
    conf["component_parameters"]["common"]["homo_lr_0"]["tol"] = 1e-12
    return conf, dsl


@pytest.mark.parametrize(("edit", "code", "words"), [
    pytest.param(lambda c, d: d["components"]["reader_0"].update(
        input={"data": {"data": ["evaluation_0.data"]}}), 101, "cycle", id="cyclic-dsl"),
    pytest.param(lambda c, d: c["component_parameters"]["role"]["host"]["0"]["reader_0"][
        "table"].update(name="nope"), 103, "experiment.nope of host 10000 does not exist",
        id="unknown-table"),
    pytest.param(lambda c, d: c["role"].update(host=[12345]), 103,
                 "party 12345 is not in the federation", id="party-not-served"),
    pytest.param(lambda c, d: d["components"]["homo_lr_0"].update(module="HeteroSecureBoost"),
                 101, "HeteroSecureBoost", id="hetero-module"),
    pytest.param(lambda c, d: d.update(components=[]), 101, "job_dsl must be", id="malformed-dsl"),
])
def test_bad_submissions_are_named(flow_bin: Path, proc: tuple[NodeProcess, Path], edit: Any,
                                   code: int, words: str) -> None:
    conf, dsl = _example()
    edit(conf, dsl)
    out = _submit(flow_bin, proc[1], conf, dsl)
    assert out["retcode"] == code and words in out["retmsg"], out


def test_a_running_job_is_stopped_then_rerun(flow_bin: Path, proc: tuple[NodeProcess, Path]) -> None:
    work = proc[1]
    sub = _submit(flow_bin, work, *_big())
    assert sub["retcode"] == 0, sub
    stop = flow_cli(flow_bin, "job", "stop", "-j", sub["jobId"], cwd=work)
    assert stop["retcode"] == 0, stop
    row = wait_for_end(flow_bin, sub["jobId"], work)
    assert row["f_status"] == "canceled" and "stopped" in row["f_reason"]
    again = flow_cli(flow_bin, "job", "stop", "-j", sub["jobId"], cwd=work)
    assert again.get("retcode") == 101 and "already canceled" in again["retmsg"], again
    rerun = flow_cli(flow_bin, "job", "rerun", "-j", sub["jobId"], cwd=work)
    assert rerun["retcode"] == 0, rerun
    assert wait_for_end(flow_bin, sub["jobId"], work, limit=300)["f_status"] == "success"
    tasks = flow_cli(flow_bin, "task", "query", "-j", sub["jobId"], "-cpn", "homo_lr_0", cwd=work)
    assert {t["f_task_version"] for t in tasks["data"]} == {1}


def test_a_node_killed_mid_job_fails_the_job_and_keeps_the_rest(
        flow_bin: Path, proc: tuple[NodeProcess, Path]) -> None:
    node, work = proc
    done = _submit(flow_bin, work, *_example())
    assert wait_for_end(flow_bin, done["jobId"], work)["f_status"] == "success"
    sub = _submit(flow_bin, work, *_big())
    assert sub["retcode"] == 0, sub
    q = flow_cli(flow_bin, "job", "query", "-j", sub["jobId"], "-r", "guest", "-p", "9999", cwd=work)
    assert q["data"][0]["f_status"] in ("waiting", "running")
    node.kill()
    node.start()
    row = wait_for_end(flow_bin, sub["jobId"], work)
    assert row["f_status"] == "failed" and "node stopped" in row["f_reason"], row
    jobs = flow_cli(flow_bin, "job", "list", "-l", "50", cwd=work)["data"]["jobs"]
    assert {done["jobId"], sub["jobId"]} <= {j["job_id"] for j in jobs}
    info = flow_cli(flow_bin, "table", "info", "-n", "experiment", "-t", "big_host", cwd=work)
    assert info["data"]["count"] == BIG_ROWS
    model = flow_cli(flow_bin, "tracking", "output-model", "-j", done["jobId"], "-r", "guest", "-p",
                  "9999", "-cpn", "homo_lr_0", cwd=work)["data"]
    assert model["isConverged"] is True


def test_a_job_past_its_timeout_ends_timeout(flow_bin: Path, proc: tuple[NodeProcess, Path]) -> None:
    conf, dsl = _example()
    conf["job_parameters"] = {"common": {"timeout": 1e-6}}
    sub = _submit(flow_bin, proc[1], conf, dsl)
    assert sub["retcode"] == 0, sub
    row = wait_for_end(flow_bin, sub["jobId"], proc[1])
    assert row["f_status"] == "timeout" and "timeout of 1e-06 s" in row["f_reason"], row
