"""fate-client 1.11.3's `FlowClient` (the SDK pipeline uses) against a node: upload, submit
FATE's homo LR example, poll `job.query`, list tasks and components, read the model and
metrics, download output data (GET with a JSON body, tar.gz) and the job log, list jobs.
The SDK runs in fate-client's own virtual environment; this test reads what it prints."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from fedstats_harness.fateflow import breast_split
from fedstats_harness.inprocess import Node

DATA = Path(__file__).parent / "data"

SCRIPT = textwrap.dedent('''
    import json, sys, time
    from flow_sdk.client import FlowClient
    a = json.loads(sys.argv[1])
    c = FlowClient("127.0.0.1", a["port"], "v1", app_key="c1", secret_key=a["key"])
    out = {}
    for table, path in a["tables"].items():
        out["upload_" + table] = c.data.upload({"file": path, "head": 1, "partition": 1,
                                               "namespace": "experiment", "table_name": table})
    conf, dsl = json.load(open(a["conf"])), json.load(open(a["dsl"]))
    sub = c.job.submit(conf, dsl)
    out["submit"] = sub
    job = sub["jobId"]
    for _ in range(600):
        q = c.job.query(job_id=job, role="guest", party_id=9999)
        if q["data"][0]["f_status"] not in ("waiting", "running"):
            break
        time.sleep(0.1)
    out["query"] = q
    out["tasks"] = c.task.query(job_id=job, component_name="homo_lr_0")
    out["list"] = c.component.list(job_id=job)
    out["model"] = c.component.output_model(job, "guest", 9999, "homo_lr_0")
    out["metrics"] = c.component.metric_all(job, "guest", 9999, "evaluation_0")
    out["summary"] = c.component.get_summary(job, "guest", 9999, "homo_lr_0")
    out["output_data"] = c.component.output_data(job, "host", 10000, "homo_lr_0", a["out"])
    out["log"] = c.job.log(job, a["out"])
    out["jobs"] = c.job.list(limit=5)
    print(json.dumps(out))
''')


def test_the_sdk_drives_a_homo_lr_job(flow_bin: Path, job_node: Node, tmp_path: Path) -> None:
    guest, host, _ = breast_split(tmp_path)
    args = {"port": int(job_node.url.rsplit(":", 1)[1]), "key": job_node.keys["c1"],
            "tables": {"breast_homo_guest": str(guest), "breast_homo_host": str(host)},
            "conf": str(DATA / "homo_lr_train_conf.json"),
            "dsl": str(DATA / "homo_lr_train_dsl.json"), "out": str(tmp_path / "out")}
    r = subprocess.run([str(flow_bin.parent / "python"), "-c", SCRIPT, json.dumps(args)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["upload_breast_homo_host"]["retcode"] == 0, out["upload_breast_homo_host"]
    assert out["submit"]["retcode"] == 0, out["submit"]
    assert out["query"]["data"][0]["f_status"] == "success"
    assert {t["f_role"] for t in out["tasks"]["data"]} == {"guest", "host", "arbiter"}
    assert "homo_lr_0" in out["list"]["data"]["components"]
    assert out["model"]["data"]["isConverged"] is True
    assert out["model"]["meta"]["module_name"] == "HomoLR"
    assert dict(out["metrics"]["data"]["train"]["homo_lr_0"]["data"])["auc"] > 0.99
    assert out["summary"]["data"]["is_converged"] is True
    assert out["output_data"]["retcode"] == 0, out["output_data"]
    rows = next(Path(out["output_data"]["directory"]).glob("*.csv")).read_text().splitlines()
    assert len(rows) == 1 + 269  # the host's rows
    assert out["log"]["retcode"] == 0, out["log"]
    assert out["submit"]["jobId"] in {j["job_id"] for j in out["jobs"]["data"]["jobs"]}
