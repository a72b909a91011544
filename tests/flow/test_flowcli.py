"""`fedstats flow -f ...` (the reference CLI's syntax, signed): upload, info, history,
delete; a wrong key is refused; a restarted node still has its tables."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import cast

import pytest

from fedstats.cli import main as fedstats_main
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve


def _call(capsys: pytest.CaptureFixture[str], url: str, cid: str, key: str, *args: str) -> dict:
    port = url.rsplit(":", 1)[1]
    fedstats_main(["flow", "--ip", "127.0.0.1", "--port", port, "--app-key", cid,
                   "--secret-key", key, *args])
    out = capsys.readouterr().out
    assert out.startswith("{\n    ")  # indented by 4, as FATE's CLI prints
    return json.loads(out)


def test_the_flow_function_cli_and_a_restart(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys = {"c1": new_secret_key()}
    csv = tmp_path / "t.csv"
    csv.write_text("id,y,x0\n" + "".join(f"{i},{i % 2},{i * 0.5}\n" for i in range(100)))
    conf = tmp_path / "up.json"
    conf.write_text(json.dumps({"file": str(csv), "head": 1, "partition": 2,
                                "namespace": "cli", "table_name": "t"}))
    os.environ.pop("FEDSTATS_FLOW_ROOT", None)
    gen = cast(Generator[Node, None, None], serve(Settings(data_dir=data), keys))
    node = next(gen)
    try:
        up = _call(capsys, node.url, "c1", keys["c1"], "-f", "upload", "-c", str(conf))
        assert up["retcode"] == 0, up
        info = _call(capsys, node.url, "c1", keys["c1"], "-f", "table_info", "-n", "cli", "-t", "t")
        assert (info["data"]["exist"], info["data"]["count"]) == (1, 100)
        bad = _call(capsys, node.url, "c1", new_secret_key(), "-f", "table_info", "-n", "cli", "-t", "t")
        assert bad["retcode"] == 109
    finally:
        gen.close()
    gen = cast(Generator[Node, None, None], serve(Settings(data_dir=data), keys))
    node = next(gen)
    try:
        info = _call(capsys, node.url, "c1", keys["c1"], "-f", "table_info", "-n", "cli", "-t", "t")
        assert (info["data"]["exist"], info["data"]["count"]) == (1, 100)
        hist = _call(capsys, node.url, "c1", keys["c1"], "-f", "upload_history", "-limit", "3")
        assert [next(iter(h)) for h in hist["data"]] == [up["jobId"]]
        gone = _call(capsys, node.url, "c1", keys["c1"], "-f", "table_delete", "-n", "cli", "-t", "t")
        assert gone["retcode"] == 0
    finally:
        gen.close()


def test_the_flow_function_cli_runs_a_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    """FATE's homo LR example through `fedstats flow -f`: upload both parties' tables,
    submit_job (-c conf -d dsl), query_job until it ends, its tasks and metrics, its log
    and output data as tar.gz into -o, and the model deployed."""
    import tarfile
    import time

    from fedstats_harness.fateflow import breast_split, serve_job_node

    data, root = tmp_path / "data", tmp_path / "root"
    data.mkdir()
    root.mkdir()
    keys = {"c1": new_secret_key()}
    gen = serve_job_node(data, root, keys)
    node = next(gen)
    try:
        def call(*args: str) -> dict:
            return _call(capsys, node.url, "c1", keys["c1"], *args)

        guest, host, _ = breast_split(tmp_path)
        for path in (guest, host):
            conf = tmp_path / f"up_{path.stem}.json"
            conf.write_text(json.dumps({"file": str(path), "head": 1, "partition": 4,
                                        "namespace": "experiment", "table_name": path.stem}))
            assert call("-f", "upload", "-c", str(conf))["retcode"] == 0
        examples = Path(__file__).parent / "data"
        job = call("-f", "submit_job", "-c", str(examples / "homo_lr_train_conf.json"),
                   "-d", str(examples / "homo_lr_train_dsl.json"))
        assert job["retcode"] == 0, job
        job_id = job["jobId"]
        deadline = time.monotonic() + 120
        while True:
            q = call("-f", "query_job", "-j", job_id, "-r", "guest", "-p", "9999")
            status = q["data"][0]["f_status"]
            if status not in ("waiting", "running"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status == "success", q
        tasks = call("-f", "query_task", "-j", job_id, "-r", "guest", "-p", "9999")
        assert {t["f_component_name"] for t in tasks["data"]} >= {"homo_lr_0"}
        metrics = call("-f", "component_metric_all", "-j", job_id, "-r", "guest",
                       "-p", "9999", "-cpn", "homo_lr_0")
        assert metrics["retcode"] == 0, metrics
        out = tmp_path / "out"
        log = call("-f", "job_log", "-j", job_id, "-o", str(out))
        assert log["retcode"] == 0, log
        assert tarfile.is_tarfile(log["directory"])
        output = call("-f", "component_output_data", "-j", job_id, "-r", "guest",
                      "-p", "9999", "-cpn", "homo_lr_0", "-o", str(out))
        assert output["retcode"] == 0 and tarfile.is_tarfile(output["directory"]), output
        model = job.get("data", {}).get("model_info", {})
        deployed = call("-f", "deploy", "-m", model["model_id"], "-v", model["model_version"])
        assert deployed["retcode"] == 0, deployed
        missing = call("-f", "job_log", "-j", job_id)
        assert missing["retcode"] != 0 and "-o" in missing["retmsg"]
    finally:
        gen.close()
