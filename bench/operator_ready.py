"""Operator benchmark: `kubectl apply` of a Federation to Ready, and of N Peers to all Ready.

Runs a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok fake
nodes), a real nats-server and the operator as its own process (`python -m
fedstats.operator`), then prints the figures. Ready includes the Deployments rolling out
onto kwok's nodes and, since the operator checks the federation through the nodes' REST
API, the nodes themselves: `LocalKubelet` runs each rendered pod as a local `fedstats node`
process (started as soon as its Deployment exists, a peer once its invitation Secret
does), so a Federation is Ready once its admin node created the federation, and a Peer
once the admin lists it as joined. The figure is the operator, Kubernetes' controllers and
the nodes' start-up together, so beside each one the bench prints the node processes' own
start measured in the same run (the same `fedstats node` processes started with no
operator and no Kubernetes: one alone, then N in parallel, until each answers /healthz):
the difference is what the operator and the control plane add.

With `--auth` NATS runs as the chart's pod does with `nats.auth.enabled`: an included auth
file kept by the `authsync` sidecar from the operator's Secret, each node its own user.

    python bench/operator_ready.py [--peers 50] [--retry-seconds 5] [--auth]
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

from fedstats.node.security.keys import new_secret_key
from fedstats.operator.authstore import SETTING as AUTH_SETTING
from fedstats.operator.nodeapi import URLS_SETTING
from fedstats_harness.controlplane import ControlPlane, binaries
from fedstats_harness.kubelet import LocalKubelet
from fedstats_harness.localnet import LocalNodes
from fedstats_harness.natsproc import LISTENING, READY, NatsServer, nats_server_binary
from fedstats_harness.process import ChildProcess

REPO = Path(__file__).resolve().parents[1]


def manifest(name: str) -> dict:
    obj = yaml.safe_load((REPO / "examples" / name).read_text())
    obj["spec"].pop("storage", None)  # no volume provisioner on a bare control plane
    obj["spec"].get("admin", {}).pop("storage", None)
    return obj


def timed_apply(cp: ControlPlane, kubelet: LocalKubelet, objs: list[dict], pods: list[str],
                wait_for: list[str], timeout: int) -> tuple[float, float]:
    """Seconds from `kubectl apply` to every `wait_for` Ready, `pods` run as they appear;
    and to the last of those pods answering its readiness probe (as the stand-in kubelet
    runs them: it reads each Secret with kubectl, so this includes its own overhead)."""
    body = orjson.dumps({"apiVersion": "v1", "kind": "List", "items": objs}).decode()
    start = time.perf_counter()
    cp.kubectl("apply", "-f", "-", input=body)

    def run(pod: str) -> float:
        kubelet.start(pod, timeout)
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
        nodes_up = max(pool.map(run, pods))
    cp.kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", *wait_for)
    return time.perf_counter() - start, nodes_up


def nodes_alone(n: int, root: Path) -> float:
    """Seconds for `n` node processes, started in parallel with nothing else, to answer."""
    start = time.perf_counter()
    with LocalNodes(root, [f"n{i:03d}" for i in range(n)], "bench", new_secret_key()):
        took = time.perf_counter() - start
    return took


class SecuredNats:
    """nats-server including the auth file that `authsync` keeps from the operator's Secret."""

    def __init__(self, cp: ControlPlane, root: Path, namespace: str) -> None:
        root.mkdir(parents=True)
        pid, auth = root / "nats.pid", root / "auth.conf"
        (root / "nats.conf").write_text(
            f'host: 127.0.0.1\nport: -1\npid_file: "{pid}"\nmax_payload: 8MB\n'
            f'jetstream {{ store_dir: "{root / "js"}" }}\ninclude "auth.conf"\n')
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
        argv = [sys.executable, "-m", "fedstats.operator.authsync",
                f"--secret={namespace}/nats-auth", f"--file={auth}", f"--pid-file={pid}"]
        ChildProcess([*argv, "--once"], root / "init.log", env=env).start().wait_stopped(60)
        self.server = ChildProcess([nats_server_binary(), "-c", str(root / "nats.conf")],
                                   root / "nats.log").start()
        self.url = f"nats://127.0.0.1:{self.server.wait_for_output(LISTENING, 15)['port']}"
        self.server.wait_for_output(READY, 15)
        self.sidecar = ChildProcess(argv, root / "authsync.log", env=env).start()

    def stop(self) -> None:
        self.sidecar.stop()
        self.server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", type=int, default=10,
                    help="peers, each a local node process (memory and cores bound this)")
    ap.add_argument("--retry-seconds", type=float, default=5.0,
                    help="the most an unready resource waits for an event before a retry")
    ap.add_argument("--auth", action="store_true",
                    help="NATS users made by the operator, applied by the authsync sidecar")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedstats-bench-") as tmp:
        t0 = time.perf_counter()
        alone_one = nodes_alone(1, Path(tmp) / "alone-1")
        alone_n = nodes_alone(args.peers, Path(tmp) / "alone-n")
        cp = ControlPlane(Path(tmp) / "k8s", binaries()).start()
        nats: NatsServer | SecuredNats = (SecuredNats(cp, Path(tmp) / "nats", "default")
                                          if args.auth else NatsServer(Path(tmp) / "nats").start())
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
            if args.auth:
                env[AUTH_SETTING] = "default/nats-auth"
            op = ChildProcess([sys.executable, "-m", "fedstats.operator", "--metrics-port",
                               "0", "--liveness", "", "-n", "default"],
                              Path(tmp) / "operator.log", env=env, name="operator").start()
            try:
                fed = manifest("federation.yaml")
                fed["spec"]["nats"]["url"] = nats.url
                took, up = timed_apply(cp, kubelet, [fed], ["demo-admin"], ["federation/demo"],
                                       300)
                print(f"Federation apply -> Ready (admin node up, federation configured): "
                      f"{took:.2f} s; the admin node's own start alone: {alone_one:.2f} s; "
                      f"its pod up under the stand-in kubelet at {up:.2f} s, Ready "
                      f"{took - up:.2f} s after")
                peers = []
                for name in peer_names:
                    peer = manifest("peer-cpu.yaml")
                    peer["metadata"]["name"] = name
                    peers.append(peer)
                took, up = timed_apply(cp, kubelet, peers, nodes[1:], ["peer", "--all"], 900)
                print(f"{args.peers} Peers apply -> all Ready (invited, node up, joined): "
                      f"{took:.2f} s ({took / args.peers * 1000:.0f} ms a peer); their "
                      f"{args.peers} node processes started in parallel alone: {alone_n:.2f} s "
                      f"(ratio {took / alone_n:.2f}); the last pod up under the stand-in "
                      f"kubelet at {up:.2f} s, all Ready {took - up:.2f} s after")
                print(f"(NATS auth {'on' if args.auth else 'off'}; longest event wait "
                      f"{args.retry_seconds} s; {os.cpu_count()} CPUs seen, shared with every "
                      "node process)")
            finally:
                op.stop(grace=30)
        finally:
            kubelet.__exit__()
            nats.stop()
            cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
