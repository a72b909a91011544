"""Operator benchmark: `kubectl apply` of a Federation to Ready, and of N Peers to all Ready.

Runs a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok fake
nodes), a real nats-server and the operator as its own process (`python -m
fedstats.operator`), then prints the figures. Ready includes the Deployments rolling out
onto kwok's nodes and, since the operator checks the federation through the nodes' REST
API, the nodes themselves: `LocalKubelet` runs each rendered pod as a local `fedstats node`
process (started as soon as its Deployment exists, a peer once its invitation Secret
does), so a Federation is Ready once its admin node created the federation, and a Peer
once the admin lists it as joined. The figure is the operator, Kubernetes' controllers and
the nodes' start-up together.

    python bench/operator_ready.py [--peers 10] [--retry-seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import yaml

from fedstats.operator.nodeapi import URLS_SETTING
from fedstats_harness.controlplane import ControlPlane, binaries
from fedstats_harness.kubelet import LocalKubelet
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.process import ChildProcess

REPO = Path(__file__).resolve().parents[1]


def manifest(name: str) -> dict:
    obj = yaml.safe_load((REPO / "examples" / name).read_text())
    obj["spec"].pop("storage", None)  # no volume provisioner on a bare control plane
    obj["spec"].get("admin", {}).pop("storage", None)
    return obj


def timed_apply(cp: ControlPlane, kubelet: LocalKubelet, objs: list[dict], pods: list[str],
                wait_for: list[str], timeout: int) -> float:
    """Seconds from `kubectl apply` to every `wait_for` Ready, `pods` run as they appear."""
    body = orjson.dumps({"apiVersion": "v1", "kind": "List", "items": objs}).decode()
    start = time.perf_counter()
    cp.kubectl("apply", "-f", "-", input=body)
    with ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
        for started in [pool.submit(kubelet.start, pod, timeout) for pod in pods]:
            started.result()
    cp.kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", *wait_for)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", type=int, default=10,
                    help="peers, each a local node process (memory and cores bound this)")
    ap.add_argument("--retry-seconds", type=float, default=5.0,
                    help="how soon the operator looks again at an unready resource or node")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedstats-bench-") as tmp:
        t0 = time.perf_counter()
        cp = ControlPlane(Path(tmp) / "k8s", binaries()).start()
        nats = NatsServer(Path(tmp) / "nats").start()
        kubelet = LocalKubelet(cp, "default", Path(tmp) / "pods")
        try:
            cp.start_workers()
            cp.kubectl("apply", "-f", str(REPO / "crds"))
            cp.kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"))
            print(f"control plane up in {time.perf_counter() - t0:.1f} s")
            peer_names = [f"peer-{i:03d}" for i in range(args.peers)]
            nodes = ["demo-admin", *(f"{p}-peer" for p in peer_names)]
            env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig),
                   "FEDSTATS_OPERATOR_RETRY_SECONDS": str(args.retry_seconds),
                   "FEDSTATS_OPERATOR_NODE_RETRY_SECONDS": str(args.retry_seconds),
                   URLS_SETTING: orjson.dumps(kubelet.url_map(*nodes)).decode()}
            op = ChildProcess([sys.executable, "-m", "fedstats.operator", "--metrics-port",
                               "0", "--liveness", "", "-n", "default"],
                              Path(tmp) / "operator.log", env=env, name="operator").start()
            try:
                fed = manifest("federation.yaml")
                fed["spec"]["nats"]["url"] = nats.url
                took = timed_apply(cp, kubelet, [fed], ["demo-admin"], ["federation/demo"], 300)
                print(f"Federation apply -> Ready (admin node up, federation configured): "
                      f"{took:.2f} s")
                peers = []
                for name in peer_names:
                    peer = manifest("peer-cpu.yaml")
                    peer["metadata"]["name"] = name
                    peers.append(peer)
                took = timed_apply(cp, kubelet, peers, nodes[1:], ["peer", "--all"], 900)
                print(f"{args.peers} Peers apply -> all Ready (invited, node up, joined): "
                      f"{took:.2f} s ({took / args.peers * 1000:.0f} ms a peer)")
                print(f"(operator retry delay {args.retry_seconds} s; {os.cpu_count()} CPUs "
                      "seen, shared with every node process)")
            finally:
                op.stop(grace=30)
        finally:
            kubelet.__exit__()
            nats.stop()
            cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
