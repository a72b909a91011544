"""Federation figures: learn-to-model latency, full sync time and bytes on the wire.

Peers are simulated: N `Agent`s in this one process, each with its own SQLite state and
NATS connection, on one embedded nats-server (JetStream, memory streams). Peers do not
merge (the centralized topology), so the figures are the admin's: what it takes for the
admin to hold every peer's newest snapshot. The REST layer is not in these numbers (see
bench/node.py for it); the merge and the model solve are.

    python bench/federation.py                      # 10/50/100 peers at d=50 and 200
    python bench/federation.py --peers 10 --dims 50 # one quick point

Comparisons with other frameworks plug in through `BASELINES` (a Flower FedAvg run, say):
each is a callable returning rows to print beside ours.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.federation.agent import Agent
from fedstats.node.federation.state import FedConfig, FedState
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.natsproc import NatsServer

# Hook for comparisons (Flower and others): callables returning {"label": ..., ...} rows.
BASELINES: list[Callable[[], list[dict[str, Any]]]] = []


class Sim:
    """One simulated node: an accumulator and its agent."""

    def __init__(self, root: Path, name: str, fed: str, key: str, url: str) -> None:
        self.acc = Accumulator()
        state = FedState(root / name / "federation.sqlite")
        config = FedConfig(
            fed_name=fed,
            fed_secret_key=key,
            peer_id=name,
            role="admin" if name == "admin" else "peer",
            merges=False,
            topology="centralized",
            nats_hosts=[url],
            sync_sched="h1",
            nats_stream_max_memory=64 << 20,
        )
        state.save_config("c", name, config)
        self.agent = Agent("c", name, config, state, lambda: self.acc)


def _rows(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(n, d))


async def _until(agent: Agent, test: Callable[[], bool], timeout: float = 120) -> None:
    async with agent.changed:
        await asyncio.wait_for(agent.changed.wait_for(test), timeout)


def _solve(acc: Accumulator) -> np.ndarray:
    m2 = np.asarray(acc.total.m2)
    return np.linalg.solve(m2[:-1, :-1] + 1e-9 * np.eye(acc.d - 1), m2[:-1, -1])


async def point(url: str, root: Path, peers: int, d: int, trials: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    cols = [f"c{i}" for i in range(d)]
    fed, key = f"bench_{peers}_{d}", new_secret_key()
    sims = [Sim(root / fed, n, fed, key, url) for n in ["admin", *(f"p{i}" for i in range(peers))]]
    admin, others = sims[0], sims[1:]
    await asyncio.gather(*(s.agent.start() for s in sims))
    try:
        for s in others:
            s.acc.learn_array(_rows(2 * d, d, rng), cols)
        for s in others:
            s.agent.start_pulse()  # publishes now, then on wake-ups (the schedule is h1)
        await _until(admin.agent, lambda: len(admin.agent.peers) == peers)

        # latency: one peer learns; how long until the admin's merged model includes it
        latencies = []
        for _ in range(trials):
            p = others[0]
            want = p.acc.n + 2 * d  # an increment above the floor (d + 5 rows)
            t0 = time.perf_counter()
            p.acc.learn_array(_rows(2 * d, d, rng), cols)
            p.agent.wake()
            await _until(
                admin.agent,
                lambda p=p, want=want: admin.agent.peers[p.agent.config.peer_id][1].n == want,
            )
            merged = Accumulator.merged([admin.acc, *admin.agent.peer_accumulators()])
            _solve(merged)
            latencies.append(time.perf_counter() - t0)

        # full sync: the admin asks, every peer republishes, the admin holds them all again
        syncs, wire = [], 0
        for _ in range(trials):
            before = {k: v for k, (v, _) in admin.agent.peers.items()}
            sent0 = sum(s.agent.counters["sndCount"] for s in others)
            t0 = time.perf_counter()
            await admin.agent.full_sync_request()
            await _until(
                admin.agent, lambda b=before: all(admin.agent.peers[k][0] > v for k, v in b.items())
            )
            syncs.append(time.perf_counter() - t0)
            assert sum(s.agent.counters["sndCount"] for s in others) - sent0 == peers
            wire = sum(
                len(s.agent.state.sent("c", s.agent.config.peer_id)[0] or b"") + 96 for s in others
            )
        return {
            "peers": peers,
            "d": d,
            "learn_to_model_ms": 1000 * statistics.median(latencies),
            "full_sync_s": statistics.median(syncs),
            "full_sync_MB": wire / 1e6,
            "snapshot_kB": wire / peers / 1e3,
        }
    finally:
        # memory streams reserve their limit on the server: free them for the next point
        for stream in (admin.agent.names.stats_stream, admin.agent.names.ctl_stream):
            with contextlib.suppress(Exception):
                await admin.agent.js.delete_stream(stream)
        await asyncio.gather(*(s.agent.stop() for s in sims))


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            print(
                f"{'peers':>5} {'d':>4} {'learn->model ms':>16} {'full sync s':>12} "
                f"{'wire MB':>8} {'snapshot kB':>12}"
            )
            for d in args.dims:
                for peers in args.peers:
                    r = await point(server.url, Path(tmp), peers, d, args.trials)
                    print(
                        f"{r['peers']:5d} {r['d']:4d} {r['learn_to_model_ms']:16.1f} "
                        f"{r['full_sync_s']:12.3f} {r['full_sync_MB']:8.1f} "
                        f"{r['snapshot_kB']:12.1f}",
                        flush=True,
                    )
        finally:
            server.stop()
    for baseline in BASELINES:
        for row in baseline():
            print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peers", type=lambda s: [int(x) for x in s.split(",")], default=[10, 50, 100]
    )
    parser.add_argument("--dims", type=lambda s: [int(x) for x in s.split(",")], default=[50, 200])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--no-flower", action="store_true",
                        help="skip the Flower FedAvg comparison (bench/compare_flower.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if not args.no_flower:
        BASELINES.append(_flower)
    asyncio.run(main_async(args))


def _flower() -> list[dict[str, Any]]:
    """Flower FedAvg beside fedstats on the same split (bench/compare_flower.py), this run."""
    import importlib.util

    if importlib.util.find_spec("flwr") is None:
        print("\n(Flower comparison skipped: pip install 'flwr[simulation]' to run it)")
        return []
    sys.path.insert(0, str(Path(__file__).parent))
    import compare_flower

    print("\n== Flower FedAvg vs fedstats' one sync, same split (bench/compare_flower.py) ==")
    compare_flower.main(["--quick", "--sites", "3", "10"])
    return []


if __name__ == "__main__":
    main()
