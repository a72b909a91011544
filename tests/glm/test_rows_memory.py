"""A keepRows project's memory stays flat however many rows it keeps: 10 M rows learned
into a `fedstats node` process in 200,000-row Arrow batches, its peak memory (VmHWM,
from /proc) after the last batch within 64 MB of its peak after the first million."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fedstats.node.client import Client
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.localnet import NodeProcess

BATCH = 200_000
TOTAL = 10_000_000
ARROW = "application/vnd.apache.arrow.stream"


def _peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024


def _arrow_batch() -> bytes:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(BATCH, 2))
    table = pa.table({"a": x[:, 0], "b": x[:, 1],
                      "y": (x[:, 0] + rng.normal(size=BATCH) > 0).astype(np.float64)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_ten_million_kept_rows_leave_memory_flat(tmp_path: Path) -> None:
    keys = {"c1": new_secret_key()}
    node = NodeProcess("rows", tmp_path, keys).start()
    client = Client(node.url, "c1", keys["c1"])
    try:
        pid = node.child.pid
        assert pid is not None
        client.request("POST", client._rest("projects"), params={"pid": "big", "keepRows": "true"})
        body = _arrow_batch()
        path = client._rest("projects", "big", "learn")
        after_first_million = 0.0
        for i in range(TOTAL // BATCH):
            answer = client.request("POST", path, params={"types": "C,C,B"}, content=body,
                                    headers={"Content-Type": ARROW})
            assert answer["values"]["rows"] == BATCH
            if (i + 1) * BATCH == 1_000_000:
                after_first_million = _peak_mb(pid)
        info = client.project_info("big")
        assert info["rows"] == TOTAL and info["keepRows"] is True
        peak = _peak_mb(pid)
        print(f"node peak {after_first_million:.0f} MB after 1 M kept rows, "
              f"{peak:.0f} MB after 10 M")
        assert peak <= after_first_million + 64, (after_first_million, peak)
    finally:
        client.close()
        node.stop()
