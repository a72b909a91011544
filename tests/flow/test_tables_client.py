"""Tables through fate-client 1.11.3's own `flow` CLI: init, upload (multipart, the conf in
the query string), table info, the existing-table refusal and --drop, upload history,
delete; and server-side paths confined to the configured root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from fedstats_harness.inprocess import Node


def flow_cli(flow_bin: Path, *args: str, cwd: Path) -> dict[str, Any]:
    r = subprocess.run([str(flow_bin), *args], capture_output=True, text=True, cwd=cwd,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout[r.stdout.index("{"):])  # after its torch notice
    return out


@pytest.fixture(scope="module")
def breast_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    rows = np.column_stack([np.arange(len(y)), y, x[:, :10]])
    path = tmp_path_factory.mktemp("data") / "breast_homo_guest.csv"
    header = "id,y," + ",".join(f"x{j}" for j in range(10))
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.17g")
    return path, rows


def test_upload_info_history_and_delete_with_the_real_client(
        flow_bin: Path, flow_node: Node, breast_csv: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    csv, rows = breast_csv
    port = flow_node.url.rsplit(":", 1)[1]
    init = flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
                 "--secret-key", flow_node.keys["c1"], cwd=tmp_path)
    assert init["retcode"] == 0
    conf = tmp_path / "upload.json"
    conf.write_text(json.dumps({"file": str(csv), "id_delimiter": ",", "head": 1,
                                "partition": 4, "namespace": "experiment",
                                "table_name": "breast_homo_guest"}))
    up = flow_cli(flow_bin, "data", "upload", "-c", str(conf), cwd=tmp_path)
    assert up["retcode"] == 0, up
    assert up["data"]["table_name"] == "breast_homo_guest"
    assert len(up["jobId"]) == 21 and up["data"]["job_id"] == up["jobId"]

    info = flow_cli(flow_bin, "table", "info", "-n", "experiment", "-t", "breast_homo_guest", cwd=tmp_path)
    assert info["data"]["exist"] == 1
    assert info["data"]["count"] == len(rows)
    assert info["data"]["schema"] == {"sid": "id", "header": "y," + ",".join(f"x{j}" for j in range(10))}
    with flow_node.app.state.flow.tables._store("experiment", "breast_homo_guest") as store:
        stored = np.vstack([np.column_stack([c.to_numpy() for c in b.columns])
                            for b in store.scan(4096)])
    np.testing.assert_array_equal(stored[np.argsort(stored[:, 0])], rows)

    again = flow_cli(flow_bin, "data", "upload", "-c", str(conf), cwd=tmp_path)
    assert again["retcode"] == 100 and "--drop" in again["retmsg"]
    dropped = flow_cli(flow_bin, "data", "upload", "-c", str(conf), "--drop", cwd=tmp_path)
    assert dropped["retcode"] == 0

    hist = flow_cli(flow_bin, "data", "upload-history", "-l", "5", cwd=tmp_path)
    assert [next(iter(h)) for h in hist["data"]] == [dropped["jobId"]]  # the dropped one is gone
    assert hist["data"][0][dropped["jobId"]]["upload_info"]["upload_count"] == len(rows)

    gone = flow_cli(flow_bin, "table", "delete", "-n", "experiment", "-t", "breast_homo_guest", cwd=tmp_path)
    assert gone["data"] == {"namespace": "experiment", "table_name": "breast_homo_guest"}
    info = flow_cli(flow_bin, "table", "info", "-n", "experiment", "-t", "breast_homo_guest", cwd=tmp_path)
    assert info["data"]["exist"] == 0
    again = flow_cli(flow_bin, "table", "delete", "-n", "experiment", "-t", "breast_homo_guest", cwd=tmp_path)
    assert (again["retcode"], again["retmsg"]) == (101, "no find table")


def test_server_paths_are_confined_to_the_root(
        flow_bin: Path, flow_node: Node, breast_csv: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    csv, rows = breast_csv
    port = flow_node.url.rsplit(":", 1)[1]
    flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c2",
          "--secret-key", flow_node.keys["c2"], cwd=tmp_path)
    root = Path(flow_node.app.state.flow.config.root)
    (root / "inside.csv").write_bytes(csv.read_bytes())
    conf = tmp_path / "upload.json"
    for file, ok in [("inside.csv", True), (str(csv), False), ("../data/customers.json", False)]:
        conf.write_text(json.dumps({"file": file, "head": 1, "partition": 1, "use_local_data": 0,
                                    "namespace": "server", "table_name": f"t{int(ok)}"}))
        out = flow_cli(flow_bin, "data", "upload", "-c", str(conf), cwd=tmp_path)
        if ok:
            assert out["retcode"] == 0, out
        else:
            assert out["retcode"] == 101 and "outside the server root" in out["retmsg"], out
    info = flow_cli(flow_bin, "table", "info", "-n", "server", "-t", "t1", cwd=tmp_path)
    assert info["data"]["count"] == len(rows)


def test_bind_a_path_and_download_inside_the_root_only(
        flow_bin: Path, flow_node: Node, breast_csv: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    csv, rows = breast_csv
    port = flow_node.url.rsplit(":", 1)[1]
    flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
          "--secret-key", flow_node.keys["c1"], cwd=tmp_path)
    root = Path(flow_node.app.state.flow.config.root)
    (root / "bound.csv").write_bytes(csv.read_bytes())
    conf = tmp_path / "bind.json"
    for path, ok in [(str(root / "bound.csv"), True), (str(csv), False)]:
        conf.write_text(json.dumps({"engine": "PATH", "address": {"path": path}, "head": 1,
                                    "namespace": "bound", "name": f"b{int(ok)}"}))
        out = flow_cli(flow_bin, "table", "bind", "-c", str(conf), cwd=tmp_path)
        assert (out["retcode"] == 0) == ok, out
        if not ok:
            assert "outside the server root" in out["retmsg"]
    conf.write_text(json.dumps({"engine": "MYSQL", "address": {}, "namespace": "b", "name": "m"}))
    out = flow_cli(flow_bin, "table", "bind", "-c", str(conf), cwd=tmp_path)
    assert out["retcode"] == 100 and "MYSQL" in out["retmsg"]

    down = tmp_path / "down.json"
    for target, ok in [(root / "out" / "b1.csv", True), (tmp_path / "escaped.csv", False)]:
        down.write_text(json.dumps({"namespace": "bound", "table_name": "b1",
                                    "output_path": str(target)}))
        out = flow_cli(flow_bin, "data", "download", "-c", str(down), cwd=tmp_path)
        assert (out["retcode"] == 0) == ok, out
        assert target.exists() == ok
    back = np.loadtxt(root / "out" / "b1.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(back[np.argsort(back[:, 0])], rows)
