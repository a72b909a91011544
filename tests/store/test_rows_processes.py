"""The row store in child processes: kill -9 mid-append/forget, and memory at 10 M rows.

A child appends (and sometimes forgets) in a loop, printing an ack line after each call
returns; the parent kills it with SIGKILL at some ack, reopens the store and checks that
every acknowledged change is there exactly once and nothing half-done is visible. The
memory test measures the child's own peak RSS (`getrusage`), never a time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedstats.node.store.db import open_database
from fedstats.node.store.rows import RowStore

# size(k), rows(k), forgets(k) are shared by the child and the parent's checks
COMMON = """
import numpy as np
from fedstats.node.engine.frame import Batch

def size(k):
    return 20 + k % 7 if k % 5 < 3 else 3000 + k % 101

def values(k, i):
    return np.sin(k * 7919.0 + i) * 1e3

def batch(k, lo=0):
    i = np.arange(lo, size(k), dtype=np.float64)
    return Batch.from_array(np.column_stack([np.full(i.size, float(k)), i, values(k, i)]),
                            ["k", "i", "v"])

def forgotten_from(k):
    return (size(k) * 3) // 5  # rows i < this of batch k are forgotten: mostly, so compacted

def forget(k):
    b = batch(k)
    return Batch(b.columns, b.values[: forgotten_from(k)], b.types, b.binary, b.parents)
"""

CHILD = COMMON + """
import os, signal, sys
from pathlib import Path
from fedstats.node.store.db import open_database
from fedstats.node.store.rows import catalog, store as store_module
from fedstats.node.store.rows.pins import FilePins
from fedstats.node.store.rows.store import RowStore

root, k = Path(sys.argv[1]), int(sys.argv[2])
if len(sys.argv) > 3:
    # die by SIGKILL at the n-th call of one step made from one method: after the call
    # for catalog statements (so inside their transaction) and segment writes, before it
    # for retiring a file
    where, name, caller, nth = sys.argv[3].split(":")
    owner = {"catalog": catalog, "store": store_module, "FilePins": FilePins}[where]
    real, calls = getattr(owner, name), [0]
    def dying(*args, **kwargs):
        mine = sys._getframe(1).f_code.co_name == caller
        calls[0] += mine
        if mine and calls[0] == int(nth) and name == "retire":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if mine and calls[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, dying)
db = open_database(root / "node.db")
store = RowStore(db, root / "rows", "s", inline_max_bytes=8192, inline_merge_bytes=4096,
                 chunk_bytes=24 * 500)
print("open", flush=True)
for k in range(k, k + 200):
    store.append(batch(k))
    print(f"ack {k}", flush=True)
    if k % 4 == 3:
        store.delete_matching(forget(k - 1))
        print(f"forgot {k - 1}", flush=True)
"""

SHARED: dict[str, Any] = {}
exec(COMMON, SHARED)  # the child's size(k), values(k, i), forgotten_from(k)


def run_child(root: Path, first: int, *, acks: int | None = None, die_at: str | None = None) -> list[str]:
    """Run the child from batch `first` until it is killed: by us with SIGKILL after
    `acks` acks, or by itself at `die_at`. Answers every line it printed."""
    args = [sys.executable, "-c", CHILD, str(root), str(first), *([die_at] if die_at else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    try:
        while acks is not None and sum(line.startswith("ack") for line in lines) < acks:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"child ended early: {proc.stderr.read()}")
            lines.append(line.strip())
        if acks is not None:
            os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed: {err}"
    return lines + rest.split("\n")


class Ledger:
    """What the children acknowledged, and the check that the store holds exactly that."""

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.forgot: set[int] = set()

    def record(self, lines: list[str]) -> None:
        self.acked |= {int(x.split()[1]) for x in lines if x.startswith("ack")}
        self.forgot |= {int(x.split()[1]) for x in lines if x.startswith("forgot")}

    def check(self, root: Path) -> None:
        db = open_database(root / "node.db")
        try:
            with RowStore(db, root / "rows", "s") as store:
                rows = list(store.scan(50_000))
                assert store.count() == sum(rb.num_rows for rb in rows)
        finally:
            db.close()
        k = np.concatenate([rb.column("k").to_numpy() for rb in rows]).astype(np.int64)
        i = np.concatenate([rb.column("i").to_numpy() for rb in rows]).astype(np.int64)
        v = np.concatenate([rb.column("v").to_numpy() for rb in rows])
        assert np.array_equal(v, SHARED["values"](k, i))
        for batch in np.unique(k).tolist():
            held = np.sort(i[k == batch])
            n = SHARED["size"](batch)
            whole = np.arange(n)
            after_forget = np.arange(SHARED["forgotten_from"](batch), n)
            if batch in self.forgot:
                assert np.array_equal(held, after_forget), f"batch {batch}: acked forget not applied"
            elif batch in self.acked:
                # a forget of it may have been under way when the child died: then all of
                # the forget or none of it
                in_flight = batch % 4 == 2 and batch + 1 == max(self.acked)
                assert np.array_equal(held, whole) or (
                    in_flight and np.array_equal(held, after_forget)
                ), f"batch {batch}: {held.size} rows, {n} acknowledged"
                if not np.array_equal(held, whole):
                    self.forgot.add(batch)
            else:
                # the one append under way at the kill: all of it or nothing
                assert batch == max(self.acked) + 1, f"batch {batch} was never appended"
                assert np.array_equal(held, whole), f"batch {batch}: a partial append"
                self.acked.add(batch)  # committed after all: later checks expect it
        missing = self.acked - set(np.unique(k).tolist())
        assert not missing, f"acknowledged batches missing: {sorted(missing)}"
        assert not [p for p in (root / "rows").iterdir() if p.name.startswith(".tmp-")]


def test_kill_9_at_random_moments_loses_and_doubles_no_acknowledged_change(tmp_path: Path) -> None:
    ledger = Ledger()
    rng = np.random.default_rng(15)
    for round_ in range(4):
        ledger.record(run_child(tmp_path, round_ * 1000, acks=int(rng.integers(4, 40))))
        ledger.check(tmp_path)  # the next round goes on with the same store


CRASH_POINTS = {
    "an append's file durable, not committed": "store:write_file:append:2",
    "inside an inline append's transaction": "catalog:insert:append:5",
    "inside a file append's transaction": "catalog:insert:append:4",
    "a merge's file durable, not committed": "store:write_file:_rewrite:1",
    "inside a merge's transaction, segments removed": "catalog:insert:_rewrite:1",
    "inside a forget's transaction": "catalog:set_deleted:delete_matching:2",
    "inside a compaction's transaction": "catalog:remove:_rewrite:9",
    "compaction committed, old file not yet removed": "FilePins:retire:_rewrite:1",
}


@pytest.mark.parametrize("die_at", CRASH_POINTS.values(), ids=CRASH_POINTS.keys())
def test_a_crash_at_each_step_loses_and_doubles_no_acknowledged_change(
    tmp_path: Path, die_at: str
) -> None:
    ledger = Ledger()
    ledger.record(run_child(tmp_path, 0, die_at=die_at))
    ledger.check(tmp_path)
    ledger.record(run_child(tmp_path, 1000, acks=5))  # the store goes on from there
    ledger.check(tmp_path)


MEMORY_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from fedstats.node.engine.frame import Batch
from fedstats.node.store.db import open_database
from fedstats.node.store.rows import RowStore

BATCHES, ROWS = 100, 100_000
COLUMNS = ["a", "b", "c", "d", "t$p", "t$q", "t$r"]

def batch(j):
    rng = np.random.default_rng(j)
    x = np.zeros((ROWS, 7))
    x[:, :4] = rng.standard_normal((ROWS, 4))
    x[np.arange(ROWS), 4 + rng.integers(0, 3, ROWS)] = 1.0
    return Batch(COLUMNS, x, {"a": "C", "b": "C", "c": "C", "d": "C", "t": "T"},
                 frozenset(COLUMNS[4:]), {c: "t" for c in COLUMNS[4:]})

def peak_mb():
    # VmHWM belongs to this process's own memory map; ru_maxrss would carry the forking
    # parent's (pytest's) high-water mark over into this child
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024

root = Path(sys.argv[1])
db = open_database(root / "node.db")
store = RowStore(db, root / "rows", "big")
at_start = peak_mb()
want = 0.0
for j in range(BATCHES):
    b = batch(j)
    store.append(b)
    want += float(b.values[:, 0].sum())
after_append = peak_mb()
scanned, got = 0, 0.0
for rb in store.scan(65536):
    scanned += rb.num_rows
    got += float(np.asarray(rb.column("a")).sum())
b = batch(50)
forgot = store.delete_matching(Batch(b.columns, b.values[::100], b.types, b.binary, b.parents))
files = sum(p.stat().st_size for p in (root / "rows").iterdir())
print(json.dumps({"start": at_start, "append": after_append, "peak": peak_mb(),
                  "count": store.count(), "scanned": scanned, "want": want, "got": got,
                  "forgot": forgot, "bytes": files}))
"""


@pytest.mark.slow
def test_memory_stays_flat_while_10_million_rows_are_appended_scanned_and_forgotten(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(tmp_path)],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["scanned"] == 10_000_000
    assert seen["forgot"] == 1000 and seen["count"] == 10_000_000 - 1000
    assert seen["got"] == pytest.approx(seen["want"], rel=1e-9, abs=1e-6)
    assert seen["bytes"] > 300 * 2**20  # the rows are more than the bound below
    assert seen["peak"] < 300, seen
