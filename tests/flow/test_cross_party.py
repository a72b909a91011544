"""FATE jobs across parties on two `fedstats node` processes federated over a real nats-server.

The admin node is party 10000 (host and arbiter, as in FATE's homo LR example), a member
node party 9999 (guest); each has only its own table. fate-client 1.11.3's `flow` CLI
talks to the guest's node only: the job submitted there runs at the admin, each party's
rows at its own node, and the guest's node answers every query about it. The HomoLR
equals scikit-learn on the pooled rows; a guest killed mid-job fails the job naming the
party, and the restarted guest still has its tables and the earlier job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fedstats.node.security.keys import new_secret_key
from fedstats_harness.fateflow import breast_split
from fedstats_harness.localnet import LocalNodes, NodeProcess
from fedstats_harness.natsproc import NatsServer

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"
MODEL_ID = "arbiter-10000#guest-9999#host-10000#model"


@dataclass
class Net:
    nodes: LocalNodes
    flow: Path
    work: Path
    key: str
    rows: np.ndarray
    current: str = ""

    def cli(self, node: str, *args: str) -> dict[str, Any]:
        """`flow ...` against `node` (fate-client keeps one server in its settings)."""
        if self.current != node:
            n = self.nodes.nodes[node]
            self._run("init", "--ip", n.host, "--port", str(n.port), "--app-key", "c1",
                      "--secret-key", self.key)
            self.current = node
        return self._run(*args)

    def _run(self, *args: str) -> dict[str, Any]:
        r = subprocess.run([str(self.flow), *args], capture_output=True, text=True,
                           cwd=self.work, timeout=120)
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout[r.stdout.index("{"):])
        return out

    def job(self, node: str, job_id: str, role: str = "guest", party: str = "9999"
            ) -> dict[str, Any]:
        rows = self.cli(node, "job", "query", "-j", job_id, "-r", role, "-p", party)["data"]
        assert rows, f"no job {job_id} at {node}"
        row: dict[str, Any] = rows[0]
        return row

    def wait(self, node: str, job_id: str, limit: float = 180, **who: str) -> dict[str, Any]:
        end = time.monotonic() + limit
        while True:
            row = self.job(node, job_id, **who)
            if row["f_status"] in ("success", "failed", "canceled", "timeout"):
                return row
            assert time.monotonic() < end, f"job {job_id} still {row['f_status']}"
            time.sleep(0.3)


@pytest.fixture(scope="module")
def net(flow_bin: Path, nats_server: NatsServer, local_nodes: Callable[..., LocalNodes],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    key = new_secret_key()
    env = {"admin": {"FEDSTATS_FLOW_PARTY_ID": "10000", "FEDSTATS_FLOW_CALL_TIMEOUT": "6"},
           "guest": {"FEDSTATS_FLOW_PARTY_ID": "9999"}}
    nodes = local_nodes(["admin", "guest"], "c1", key, env)
    admin, guest = nodes.clients["admin"], nodes.clients["guest"]
    admin.fed_create("fl", {"fed_name": "fl", "nats_hosts": nats_server.url,
                            "sync_sched": "h1", "nats_req_timeout": 6})
    guest.fed_join("fl", admin.fed_invitation("fl", "pw", fed_peer_id="guest"), "pw")
    work = tmp_path_factory.mktemp("cross")
    guest_csv, host_csv, rows = breast_split(work)
    n = Net(nodes, flow_bin, work, key, rows)
    for node, path, name in (("guest", guest_csv, "breast_homo_guest"),
                             ("admin", host_csv, "breast_homo_host")):
        conf = work / f"up_{name}.json"
        conf.write_text(json.dumps({"file": str(path), "head": 1, "partition": 1,
                                    "namespace": "experiment", "table_name": name}))
        assert n.cli(node, "data", "upload", "-c", str(conf))["retcode"] == 0
    yield n


@pytest.fixture(scope="module")
def trained(net: Net) -> str:
    sub = net.cli("guest", "job", "submit", "-c", str(DATA / "homo_lr_train_conf.json"),
                  "-d", str(DATA / "homo_lr_train_dsl.json"))
    assert sub["retcode"] == 0, sub
    assert sub["data"]["model_info"]["model_id"] == MODEL_ID
    row = net.wait("guest", sub["jobId"])
    assert row["f_status"] == "success", row
    return str(sub["jobId"])


def test_a_job_submitted_at_the_guest_runs_across_both_nodes_exactly(net: Net, trained: str
                                                                     ) -> None:
    tasks = net.cli("guest", "task", "query", "-j", trained)["data"]
    status = {(t["f_component_name"], t["f_role"], t["f_party_id"]): t["f_status"] for t in tasks}
    assert status[("homo_lr_0", "guest", "9999")] == "success"
    assert status[("homo_lr_0", "host", "10000")] == "success"
    assert status[("evaluation_0", "host", "10000")] == "pass"
    out = net.cli("guest", "tracking", "output-model", "-j", trained, "-r", "guest", "-p", "9999",
                  "-cpn", "homo_lr_0")
    model = out["data"]
    x, y = StandardScaler().fit_transform(net.rows[:, 2:]), net.rows[:, 1]
    ref = LogisticRegression(C=1.0 / (0.01 * len(y)), tol=1e-14, max_iter=10_000,
                             solver="newton-cholesky").fit(x, y)
    weights = np.array([model["weight"][f"x{j}"] for j in range(x.shape[1])])
    np.testing.assert_allclose(weights, ref.coef_[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model["intercept"], ref.intercept_[0], rtol=1e-8, atol=1e-10)
    listed = net.cli("guest", "job", "list", "-l", "50")["data"]["jobs"]
    assert trained in {j["job_id"] for j in listed}  # the guest lists the job it submitted
    # the same job, asked at the admin for its own party
    host = net.cli("admin", "tracking", "output-model", "-j", trained, "-r", "host", "-p",
                   "10000", "-cpn", "homo_lr_0")["data"]
    assert host["weight"] == model["weight"]


def test_tracking_output_data_and_the_log_are_served_at_the_guest(net: Net, trained: str) -> None:
    metrics = net.cli("guest", "tracking", "metric-all", "-j", trained, "-r", "guest", "-p",
                      "9999", "-cpn", "evaluation_0")["data"]["train"]
    assert dict(metrics["homo_lr_0"]["data"])["auc"] > 0.99
    got = net.cli("guest", "tracking", "output-data", "-j", trained, "-r", "guest", "-p", "9999",
                  "-cpn", "homo_lr_0", "-o", str(net.work / "out"))
    assert got["retcode"] == 0, got
    csv = next(Path(got["directory"]).glob("*.csv")).read_text().splitlines()
    assert len(csv) == 1 + 300  # the guest's own rows, written and served at the guest
    logs = net.cli("guest", "job", "log", "-j", trained, "-o", str(net.work / "logs"))
    assert logs["retcode"] == 0, logs
    info = (Path(logs["directory"]) / "host" / "10000" / "INFO.log").read_text()
    assert "homo_lr_0 (HomoLR): success" in info


def test_deploy_and_predict_through_the_guest(net: Net, trained: str) -> None:
    dep = net.cli("guest", "model", "deploy", "--model-id", MODEL_ID, "--model-version", trained)
    assert dep["retcode"] == 0, dep
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    conf["job_parameters"] = {"common": {"job_type": "predict", "model_id": MODEL_ID,
                                         "model_version": dep["data"]["model_version"]}}
    path = net.work / "predict.json"
    path.write_text(json.dumps(conf))
    sub = net.cli("guest", "job", "submit", "-c", str(path))
    assert sub["retcode"] == 0, sub
    assert net.wait("guest", sub["jobId"])["f_status"] == "success"
    out = net.cli("guest", "tracking", "metric-all", "-j", sub["jobId"], "-r", "guest", "-p",
                  "9999", "-cpn", "evaluation_0")
    assert dict(out["data"]["test"]["homo_lr_0"]["data"])["auc"] > 0.99


def test_a_party_not_in_the_federation_and_another_members_job_are_refused(
        net: Net, trained: str) -> None:
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    conf["role"]["host"] = [12345]
    conf["component_parameters"]["role"]["host"] = {"0": {"reader_0": {"table": {
        "name": "breast_homo_host", "namespace": "experiment"}}}}
    path = net.work / "stranger.json"
    path.write_text(json.dumps(conf))
    out = net.cli("guest", "job", "submit", "-c", str(path), "-d",
                  str(DATA / "homo_lr_train_dsl.json"))
    assert out["retcode"] != 0 and "party 12345 is not in the federation" in out["retmsg"], out
    conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
    conf["initiator"] = {"role": "host", "party_id": 10000}  # not the guest's own party
    path.write_text(json.dumps(conf))
    out = net.cli("guest", "job", "submit", "-c", str(path), "-d",
                  str(DATA / "homo_lr_train_dsl.json"))
    assert out["retcode"] != 0 and "initiator must be one of its own parties" in out["retmsg"]


def test_a_guest_killed_mid_job_fails_it_naming_the_party_and_keeps_the_rest(
        net: Net, trained: str) -> None:
    guest: NodeProcess = net.nodes.nodes["guest"]
    sub = net.cli("guest", "job", "submit", "-c", str(DATA / "homo_lr_train_conf.json"),
                  "-d", str(DATA / "homo_lr_train_dsl.json"))
    assert sub["retcode"] == 0, sub
    pid = guest.child.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # frozen before the admin's job can have finished with it
    end = time.monotonic() + 60
    while net.job("admin", sub["jobId"], "host", "10000")["f_status"] != "running":
        assert time.monotonic() < end
        time.sleep(0.05)
    guest.kill()  # kill -9 while the admin waits on it, mid-job
    row = net.wait("admin", sub["jobId"], role="host", party="10000")
    assert row["f_status"] == "failed", row
    assert "party 9999 (member guest)" in row["f_reason"], row
    guest.start()
    net.current = ""  # a restarted node: sign in again
    info = net.cli("guest", "table", "info", "-n", "experiment", "-t", "breast_homo_guest")
    assert info["data"]["count"] == 300, info
    assert net.job("guest", trained)["f_status"] == "success"  # the earlier job, still there
    assert net.job("guest", sub["jobId"])["f_status"] == "failed"
    host = net.cli("admin", "table", "info", "-n", "experiment", "-t", "breast_homo_host")
    assert host["data"]["count"] == 269, host
