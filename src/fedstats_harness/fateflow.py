"""fate-client's `flow` CLI and FATE-style nodes for the FATE-Flow tests and benches.

`flow_cli` runs fate-client 1.11.3's real `flow` (its own venv) and parses the JSON it
prints; `wait_for_end` polls `flow job query` as FATE's own pollers do; `breast_split`
writes scikit-learn's breast cancer rows as FATE's homo example tables (guest, host);
`serve_job_node` serves an in-process node FATE-standalone style (guest 9999, host and
arbiter 10000), with `job_node_env` its environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
from sklearn.datasets import load_breast_cancer

from fedstats.node.settings import Settings

from .inprocess import Node, serve


def flow_cli(flow_bin: Path, *args: str, cwd: Path) -> dict[str, Any]:
    r = subprocess.run([str(flow_bin), *args], capture_output=True, text=True, cwd=cwd,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout[r.stdout.index("{"):])
    return out


def wait_for_end(flow_bin: Path, job_id: str, cwd: Path, limit: float = 120) -> dict[str, Any]:
    """`flow job query` until the job ends, as FATE's own pollers do."""
    end = time.monotonic() + limit
    while True:
        q = flow_cli(flow_bin, "job", "query", "-j", job_id, "-r", "guest", "-p", "9999", cwd=cwd)
        row: dict[str, Any] = q["data"][0]
        if row["f_status"] in ("success", "failed", "canceled", "timeout"):
            return row
        assert row["f_status"] in ("waiting", "running")
        assert time.monotonic() < end, f"job {job_id} still {row['f_status']}"
        time.sleep(0.2)


@contextmanager
def scoped_env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def job_node_env(root: Path) -> dict[str, str]:
    """FATE's standalone layout: this node serves guest 9999 and host/arbiter 10000."""
    return {"FEDSTATS_FLOW_ROOT": str(root), "FEDSTATS_FLOW_PARTY_ID": "9999",
            "FEDSTATS_FLOW_LOCAL_PARTIES": "10000"}


def serve_job_node(data: Path, root: Path, keys: dict[str, str]
                   ) -> Generator[Node, None, None]:
    with scoped_env(**job_node_env(root)):
        gen = cast(Generator[Node, None, None], serve(Settings(data_dir=data), keys))
        node = next(gen)
    try:
        yield node
    finally:
        gen.close()


def breast_split(directory: Path) -> tuple[Path, Path, np.ndarray]:
    """scikit-learn's breast cancer rows (id, y, x0..x29) split between guest and host."""
    x, y = load_breast_cancer(return_X_y=True)
    rows = np.column_stack([np.arange(len(y)), y, x])
    header = "id,y," + ",".join(f"x{j}" for j in range(x.shape[1]))
    paths = []
    for name, part in (("breast_homo_guest", rows[:300]), ("breast_homo_host", rows[300:])):
        path = directory / f"{name}.csv"
        np.savetxt(path, part, delimiter=",", header=header, comments="", fmt="%.17g")
        paths.append(path)
    return paths[0], paths[1], rows
