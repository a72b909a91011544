"""Operator benchmark: `kubectl apply` of a Federation to Ready, and of N Peers to all Ready.

Runs a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok fake
nodes), a real nats-server and the operator as its own process (`python -m
fedstats.operator`), then prints the figures. Ready includes the Deployments rolling out
onto kwok's nodes, so the figure is the operator plus Kubernetes' own controllers.

    python bench/operator_ready.py [--peers 50] [--retry-seconds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml
from fedstats.node.federation.natsproc import NatsServer
from fedstats.operator.testing import ControlPlane, binaries

REPO = Path(__file__).resolve().parents[1]


def manifest(name: str) -> dict:
    obj = yaml.safe_load((REPO / "examples" / name).read_text())
    obj["spec"].pop("storage", None)  # no volume provisioner on a bare control plane
    obj["spec"].get("admin", {}).pop("storage", None)
    return obj


def timed_apply(cp: ControlPlane, objs: list[dict], wait_for: list[str], timeout: int) -> float:
    body = orjson.dumps({"apiVersion": "v1", "kind": "List", "items": objs}).decode()
    start = time.perf_counter()
    cp.kubectl("apply", "-f", "-", input=body)
    cp.kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", *wait_for)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", type=int, default=50)
    ap.add_argument("--retry-seconds", type=float, default=5.0,
                    help="how soon the operator looks again at an unready resource")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedstats-bench-") as tmp:
        t0 = time.perf_counter()
        cp = ControlPlane(Path(tmp) / "k8s", binaries()).start()
        nats = NatsServer(Path(tmp) / "nats").start()
        try:
            cp.start_workers()
            cp.kubectl("apply", "-f", str(REPO / "crds"))
            cp.kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"))
            print(f"control plane up in {time.perf_counter() - t0:.1f} s")
            env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig),
                   "FEDSTATS_OPERATOR_RETRY_SECONDS": str(args.retry_seconds)}
            log = open(Path(tmp) / "operator.log", "wb")  # noqa: SIM115
            op = subprocess.Popen([sys.executable, "-m", "fedstats.operator", "--metrics-port",
                                   "0", "--liveness", "", "-n", "default"],
                                  env=env, stdout=log, stderr=log)
            try:
                fed = manifest("federation.yaml")
                fed["spec"]["nats"]["url"] = nats.url
                took = timed_apply(cp, [fed], ["federation/demo"], 300)
                print(f"Federation apply -> Ready: {took:.2f} s")
                peers = []
                for i in range(args.peers):
                    peer = manifest("peer-cpu.yaml")
                    peer["metadata"]["name"] = f"peer-{i:03d}"
                    peers.append(peer)
                took = timed_apply(cp, peers, ["peer", "--all"], 900)
                print(f"{args.peers} Peers apply -> all Ready: {took:.2f} s "
                      f"({took / args.peers * 1000:.0f} ms a peer)")
                print(f"(operator retry delay {args.retry_seconds} s; 2-core machine: "
                      f"{os.cpu_count()} CPUs seen)")
            finally:
                op.terminate()
                op.wait(30)
                log.close()
        finally:
            nats.stop()
            cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
