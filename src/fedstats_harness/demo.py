"""`fedstats demo`: a federation on this machine, end to end, beside scikit-learn on pooled rows.

What runs is what users run: an embedded nats-server, an admin and three peers as separate
`fedstats node` processes, and every step through the signed REST API with the Python
`Client` — create, invite, join, learn, sync, build, predict, then a forget at one peer
and the rebuilt model beside scikit-learn on the remaining rows. The dataset (diabetes for
`mlr`, breast cancer for `lda`) is split between the peers; the admin holds no rows.
Everything started is stopped on exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

PEERS = ("peer1", "peer2", "peer3")
CID = "demo"


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _dataset(algo: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if algo == "mlr":
        x, y = load_diabetes(return_X_y=True)
        types = ["C"] * x.shape[1] + ["C"]
    else:
        x, y = load_breast_cancer(return_X_y=True)
        types = ["C"] * x.shape[1] + ["B"]
    names = [f"x{i}" for i in range(x.shape[1])] + ["y"]
    return x, y.astype(float), names, types


def _frame(x: np.ndarray, y: np.ndarray, names: list[str], types: list[str]) -> dict[str, Any]:
    rows = np.column_stack([x, y])
    data = [[repr(float(v)) for v in row] for row in rows]
    if types[-1] == "B":
        for row in data:
            row[-1] = str(int(float(row[-1])))
    return {"attributeNames": names, "attributeTypes": types, "data": data}


def _pooled(algo: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LinearRegression

    if algo == "mlr":
        return LinearRegression().fit(x, y).predict(x)
    return LinearDiscriminantAnalysis(solver="lsqr").fit(x, y).predict_proba(x)[:, 1]


def run(algo: str, workdir: Path, schedule: str) -> int:
    from fedstats.node.security.keys import new_secret_key

    from .localnet import LocalNodes
    from .natsproc import NatsServer
    from .waiting import eventually

    x, y, names, types = _dataset(algo)
    parts = np.array_split(np.arange(len(y)), len(PEERS))
    key = new_secret_key()
    with ExitStack() as stack:
        nats_server = NatsServer(workdir / "nats").start()
        stack.callback(nats_server.stop)
        _say(f"nats-server (JetStream) listening at {nats_server.url}")
        net = stack.enter_context(LocalNodes(workdir, ("admin", *PEERS), CID, key))
        for name, node in net.nodes.items():
            _say(f"node {name:6s} at {node.url} (data in {node.dir})")
        clients = net.clients
        admin = clients["admin"]

        admin.fed_create(
            "fed",
            {
                "fed_name": "demo",
                "nats_hosts": nats_server.url,
                "sync_sched": schedule,
                "nats_stream_max_memory": 64 << 20,
            },
        )
        _say("admin created federation 'demo' (project 'fed')")
        for peer in PEERS:
            invite = admin.fed_invitation("fed", f"pw-{peer}", fed_peer_id=peer)
            clients[peer].fed_join("fed", invite, f"pw-{peer}")
            _say(f"{peer} joined with a one-time invitation ({len(invite)} chars, sealed)")
        for peer, idx in zip(PEERS, parts, strict=True):
            clients[peer].learn("fed", _frame(x[idx], y[idx], names, types))
            _say(f"{peer} learned {len(idx)} rows locally (they never leave it)")
        for name in ("admin", *PEERS):
            clients[name].start_pulse("fed")
        _say(f"pulse started everywhere (schedule {schedule}); waiting for the admin to merge")

        def rows() -> int:
            return int(admin.project_info("fed")["rows"])

        eventually(lambda: rows() == len(y), 60, "the admin to merge every peer's statistics")
        stats = admin.sync_stats("fed")
        _say(f"admin sees {rows()} rows from {stats['rcvCount']} snapshots; building {algo}")
        # breast cancer's covariance is ill-conditioned (~1e13), so the two solvers' own
        # rounding differs near 1e-9 there; diabetes' regression agrees to ~1e-14
        tol = 1e-9 if algo == "mlr" else 1e-6
        if not _compare(admin, algo, x, y, names, types, tol, show=5):
            return 1

        # Forget: a peer withdraws rows; after the next pulse the admin's model is the
        # pooled model of the remaining rows, with no retraining anywhere. The peer shares
        # no change of fewer rows than columns + 5 (they could be solved back), so it
        # forgets enough rows to clear that floor.
        gone = parts[1][: len(names) + 10]
        clients["peer2"].forget("fed", _frame(x[gone], y[gone], names, types))
        keep = np.setdiff1d(np.arange(len(y)), gone)
        _say(f"peer2 forgot {len(gone)} of its rows; waiting for the next pulse")
        eventually(lambda: rows() == len(keep), 60, "the admin to see the forget")
        _say(f"admin sees {rows()} rows; rebuilding {algo}")
        if not _compare(admin, algo, x[keep], y[keep], names, types, tol, show=0):
            return 1
        return 0


def _compare(admin: Any, algo: str, x: np.ndarray, y: np.ndarray, names: list[str],
             types: list[str], tol: float, show: int) -> bool:
    """Build on the admin, predict every row, print it beside scikit-learn on `x`, `y`."""
    from fedstats.node.client import ApiError

    context = {"inputAttributeNames": names[:-1], "targetAttributeNames": ["y"]}
    try:
        admin.build("fed", "model", algo, context)
    except ApiError as e:
        _say(f"build failed: {e}")
        return False
    values = admin.predict("fed", "model", _frame(x, y, names, types))["values"]["KSVSMap"]
    got = _prediction(values, algo)
    want = _pooled(algo, x, y)
    if algo == "mlr":
        rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-12)))
        measure = "max relative difference"
    else:  # probabilities near 0 make relative differences meaningless: absolute
        rel = float(np.max(np.abs(got - want)))
        measure = "max absolute difference of P(y=1)"
    print()
    if show:
        print(f"  {'row':>4}  {'federated':>22}  {'pooled scikit-learn':>22}")
        for i in range(show):
            print(f"  {i:4d}  {got[i]:22.15g}  {want[i]:22.15g}")
        print()
    print(f"  {measure} over {len(y)} rows: {rel:.3g}")
    print(f"  {f'IDENTICAL (within {tol:g})' if rel < tol else 'DIFFERENT'}\n")
    return rel < tol


def _prediction(values: dict[str, Any], algo: str) -> np.ndarray:
    """From the KSVSMap's row maps: `res` (mlr), or P(y=1) (`proba_1`, a classifier)."""
    rows = values["values"]
    key = "res" if algo == "mlr" else "proba_1"
    if rows and key not in rows[0]:
        raise SystemExit(f"unexpected prediction keys: {sorted(rows[0])}")
    return np.asarray([row[key] for row in rows], dtype=float)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedstats demo", description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["mlr", "lda"], default="mlr")
    parser.add_argument("--schedule", default="s2", help="pulse schedule (default s2)")
    parser.add_argument("--workdir", help="keep the nodes' data here (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        if args.workdir:
            return run(args.algo, Path(args.workdir), args.schedule)
        with tempfile.TemporaryDirectory(prefix="fedstats-demo-") as tmp:
            return run(args.algo, Path(tmp), args.schedule)
    except KeyboardInterrupt:
        _say("interrupted: every process was stopped")
        return 130
    except Exception as e:
        _say(f"demo failed: {e}")
        return 1
