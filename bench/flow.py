"""FATE-Flow facade bench: upload rows/s against pyarrow, and the homo LR job's wall time.

Serves a node in this process (party ids 9999, 10000 and 10001, FATE standalone style)
and prints, in one run:

- `data/upload` of a generated dense CSV (id, y, x0..x9; 1 M rows by default) with
  `fedstats flow -f upload` (signed, multipart, streamed to disk, appended to the row
  store block by block) beside `pyarrow.csv.read_csv` of the same file;
- FATE's homo LR example DSL (Reader, DataTransform, FeatureScale, HomoLR, Evaluation)
  on 3 parties (guest 9999 and host 10000 each holding half of `--job-rows` rows, arbiter
  10001) from `job/submit` to `success` as `job/query` reports it, beside scikit-learn's
  pooled fit (StandardScaler + LogisticRegression, newton-cholesky) and fedstats' direct
  exact fit (engine.glm on the pooled, standardized rows), with the largest coefficient
  difference between the job's model and scikit-learn's.

    .venv/bin/python bench/flow.py [--rows N] [--job-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pyarrow.csv as pacsv
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fedstats.flowcli import run
from fedstats.node.api.flow.auth import signature
from fedstats.node.engine.glm import fit_glm, round_stats
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve

DATA = Path(__file__).resolve().parents[1] / "tests" / "flow" / "data"


def _csv(path: Path, rows: np.ndarray, d: int) -> None:
    np.savetxt(path, rows, delimiter=",", fmt="%.10g",
               header="id,y," + ",".join(f"x{j}" for j in range(d)), comments="")


def _post(base: str, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    ts, nonce = str(round(time.time() * 1000)), str(uuid.uuid1())
    headers = {"Content-Type": "application/json", "TIMESTAMP": ts, "NONCE": nonce,
               "APP_KEY": "b", "SIGNATURE": signature(key, ts, nonce, "b", f"/v1/{path}", raw)}
    out: dict[str, Any] = httpx.post(f"{base}/v1/{path}", content=raw, headers=headers,
                                     timeout=None).json()
    return out


def _upload(port: str, key: str, d: Path, csv: Path, name: str) -> float:
    conf = d / f"{name}.json"
    conf.write_text(json.dumps({"file": str(csv), "head": 1, "partition": 4,
                                "namespace": "bench", "table_name": name}))
    t0 = time.perf_counter()
    out = run(["-f", "upload", "-c", str(conf), "--ip", "127.0.0.1", "--port", port,
               "--app-key", "b", "--secret-key", key])
    assert out["retcode"] == 0, out
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--job-rows", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(args.rows, 10))
        csv = d / "big.csv"
        _csv(csv, np.column_stack([np.arange(args.rows), (x[:, 0] > 0), x]), 10)
        mb = csv.stat().st_size / 1e6
        t0 = time.perf_counter()
        pacsv.read_csv(csv)
        t_arrow = time.perf_counter() - t0

        n = args.job_rows
        xj = rng.normal(size=(n, 10)) * 3.0 + 5.0
        logits = (xj - 5.0) @ np.linspace(-1, 1, 10) * 0.5
        yj = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(float)
        pooled = np.column_stack([np.arange(n), yj, xj])
        _csv(d / "guest.csv", pooled[: n // 2], 10)
        _csv(d / "host.csv", pooled[n // 2:], 10)

        (d / "data").mkdir()
        key = new_secret_key()
        os.environ.update(FEDSTATS_FLOW_PARTY_ID="9999", FEDSTATS_FLOW_LOCAL_PARTIES="10000 10001")
        gen = cast(Generator[Node, None, None],
                   serve(Settings(data_dir=d / "data", max_body_bytes=1 << 34), {"b": key}))
        node = next(gen)
        try:
            port = node.url.rsplit(":", 1)[1]
            t_up = _upload(port, key, d, csv, "big")
            _upload(port, key, d, d / "guest.csv", "lr_guest")
            _upload(port, key, d, d / "host.csv", "lr_host")
            conf = json.loads((DATA / "homo_lr_train_conf.json").read_text())
            conf["role"] = {"guest": [9999], "host": [10000], "arbiter": [10001]}
            tables = conf["component_parameters"]["role"]
            tables["guest"]["0"]["reader_0"]["table"] = {"name": "lr_guest", "namespace": "bench"}
            tables["host"]["0"]["reader_0"]["table"] = {"name": "lr_host", "namespace": "bench"}
            dsl = json.loads((DATA / "homo_lr_train_dsl.json").read_text())
            t0 = time.perf_counter()
            sub = _post(node.url, key, "job/submit", {"job_dsl": dsl, "job_runtime_conf": conf})
            assert sub["retcode"] == 0, sub
            while True:
                row = _post(node.url, key, "job/query", {"job_id": sub["jobId"], "role": "guest",
                                                         "party_id": 9999})["data"][0]
                if row["f_status"] not in ("waiting", "running"):
                    break
                time.sleep(0.05)
            t_job = time.perf_counter() - t0
            assert row["f_status"] == "success", row
            model = _post(node.url, key, "tracking/component/output/model",
                          {"job_id": sub["jobId"], "role": "guest", "party_id": 9999,
                           "component_name": "homo_lr_0"})["data"]
        finally:
            gen.close()

        alpha = conf["component_parameters"]["common"]["homo_lr_0"]["alpha"]
        t0 = time.perf_counter()
        xs = StandardScaler().fit_transform(xj)
        ref = LogisticRegression(C=1.0 / (alpha * n), tol=1e-10, max_iter=1000,
                                 solver="newton-cholesky").fit(xs, yj)
        t_sk = time.perf_counter() - t0
        t0 = time.perf_counter()
        xs = StandardScaler().fit_transform(xj)
        fit_glm(lambda c: round_stats(xs, yj, c, "binomial"), 10, "binomial", "L2", alpha,
                True, 1e-10, 100)
        t_direct = time.perf_counter() - t0
        w = np.array([model["weight"][f"x{j}"] for j in range(10)])
        diff = float(np.max(np.abs(w - ref.coef_[0])))

        print(f"CSV: {args.rows} rows, {mb:.1f} MB")
        print(f"pyarrow read_csv          {t_arrow:8.3f} s  {args.rows / t_arrow:12,.0f} rows/s")
        print(f"flow data/upload (signed) {t_up:8.3f} s  {args.rows / t_up:12,.0f} rows/s")
        print(f"homo LR job, 3 parties, {n} rows (guest {n // 2}, host {n - n // 2}, arbiter):")
        print(f"  job/submit -> success   {t_job:8.3f} s  ({model['iters']} Newton iterations)")
        print(f"  scikit-learn pooled     {t_sk:8.3f} s  (StandardScaler + LogisticRegression)")
        print(f"  fedstats direct lr      {t_direct:8.3f} s  (engine.glm on the pooled rows)")
        print(f"  max |w_job - w_sklearn| {diff:.2e}")


if __name__ == "__main__":
    main()
