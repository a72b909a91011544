"""Operator benchmark: `kubectl apply` of a Federation to Ready, and of N Peers to all Ready.

Runs a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok fake
nodes), a real nats-server and the operator as its own process (`python -m
fedstats.operator`), then prints the figures. Ready includes the Deployments rolling out
onto kwok's nodes and, since the operator checks the federation through the nodes' REST
API, the nodes themselves: `LocalKubelet` runs each rendered pod as a local `fedstats node`
process (started as soon as its Deployment and the Secrets it reads exist, which it learns
from watches, pods in parallel as a kubelet starts them), so a Federation is Ready once its
admin node created the federation, and a Peer once the admin lists it as joined.

The figure is the operator, Kubernetes' controllers and the nodes' start-up together, so
beside each one the bench prints the node processes' own start measured in the same run:
the same program started the same way (the pod's entry point and arguments, N at once
from N threads, each probed at its readiness path as the stand-in kubelet probes a pod),
with no operator and no Kubernetes, measured before and after the operator's run; the
ratio is against the lower (min) and the median of those. For each Peer the bench also
records when each step was seen (watches on the API server; the stand-in kubelet's own
timeline) and prints their median and last, relative to the apply: where the time goes.

With `--auth` NATS runs as the chart's pod does with `nats.auth.enabled`: an included auth
file kept by the `authsync` sidecar from the operator's Secret, each node its own user.

    python bench/operator_ready.py [--peers 50] [--retry-seconds 5] [--auth]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import yaml

from fedstats.node.security.keys import new_secret_key
from fedstats.operator.authstore import SETTING as AUTH_SETTING
from fedstats.operator.nodeapi import URLS_SETTING
from fedstats_harness.controlplane import ControlPlane, binaries
from fedstats_harness.kubelet import Informer, LocalKubelet, api_client
from fedstats_harness.natsproc import LISTENING, READY, NatsServer, nats_server_binary
from fedstats_harness.ports import free_port
from fedstats_harness.process import ChildProcess, probe_ok, stop_all

REPO = Path(__file__).resolve().parents[1]
Obj = dict[str, Any]
# Seconds between readiness probes, of the pods and of the nodes alone alike: 50 pods probed
# ten times a second would take a share of 2 cores from the nodes they wait for.
PROBE_S = 0.25


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system, with its waited-for children's) a live process has used;
    0 for one gone or never started."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class CpuUse:
    """CPU seconds each group of processes used between `__init__` and `stop()`: where a
    run's time went when every process shares the same cores."""

    def __init__(self, groups: Callable[[], dict[str, list[int | None]]]) -> None:
        self.groups = groups
        self.before = self._now()

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids)
                for name, pids in self.groups().items()}

    def stop(self) -> None:
        self.used = {k: v - self.before.get(k, 0.0) for k, v in self._now().items()}

    def report(self, took: float, alone: float | None = None) -> str:
        used = self.used
        total = sum(used.values())
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{k} {v:.1f}" for k, v in used.items())
        return (f"  CPU seconds used meanwhile: {parts}; in all {total:.1f}, "
                f"{total / cores:.1f} s of {cores} cores over the {took:.1f} s"
                + (f" (the same node processes alone: {alone:.1f})" if alone is not None else ""))


WRITES = ("POST", "PUT", "PATCH", "DELETE")


def api_writes(cp: ControlPlane) -> dict[str, int]:
    """The API server's write requests so far, by `verb resource` (its own metrics)."""
    with api_client(cp) as api:
        text = api.get("/metrics", headers={"Accept": "text/plain"}).text
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(part.split("=", 1) for part in
                      line[line.index("{") + 1:line.index("}")].split(","))
        verb = labels.get("verb", "").strip('"')
        if verb in WRITES:
            key = f"{verb} {labels.get('resource', '').strip(chr(34))}"
            counts[key] = counts.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


def writes_report(before: dict[str, int], after: dict[str, int], peers: int) -> str:
    made = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
    top, total = sorted(made.items(), key=lambda kv: -kv[1]), sum(made.values())
    return (f"  API writes meanwhile ({total}, {total / peers:.1f} a "
            "Peer, every client): " + ", ".join(f"{k} {n}" for k, n in top))


def manifest(name: str) -> dict:
    obj = yaml.safe_load((REPO / "examples" / name).read_text())
    obj["spec"].pop("storage", None)  # no volume provisioner on a bare control plane
    obj["spec"].get("admin", {}).pop("storage", None)
    return obj


class Seen:
    """When each object was first seen in a state, by watches on the API server."""

    def __init__(self, kubelet: LocalKubelet, namespace: str) -> None:
        self.at: dict[tuple[str, str], float] = {}  # (step, object name) -> time.time()
        self.ready: set[str] = set()
        self.changed = threading.Condition()
        paths = {"secret": f"/api/v1/namespaces/{namespace}/secrets",
                 "deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments",
                 "peer": f"/apis/fedstats.io/v1alpha1/namespaces/{namespace}/peers",
                 "federation": f"/apis/fedstats.io/v1alpha1/namespaces/{namespace}/federations"}
        self.informers = [Informer(kubelet.cp, path, threading.Condition(),
                                   on_event=self._recorder(kind)).start()
                          for kind, path in paths.items()]

    def _recorder(self, kind: str) -> Callable[[str, Obj, float], None]:
        def record(event: str, obj: Obj, when: float) -> None:
            name = obj["metadata"]["name"]
            if event == "DELETED":
                return
            self.at.setdefault((kind, name), when)
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (obj.get("status") or {}).get("conditions") or [])
            if kind in ("peer", "federation") and ready:
                self.at.setdefault((f"{kind} Ready", name), when)
                with self.changed:
                    self.ready.add(f"{kind}/{name}")
                    self.changed.notify_all()
        return record

    def wait_ready(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while missing := [n for n in names if n not in self.ready]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"not Ready after {timeout} s: {missing[:5]} "
                                       f"({len(missing)} of {len(names)})")
                self.changed.wait(min(left, 1.0))

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()


def timed_apply(cp: ControlPlane, kubelet: LocalKubelet, seen: Seen, objs: list[dict],
                pods: list[str], ready: list[str], timeout: int,
                ) -> tuple[float, float, float]:  # fmt: skip
    """Seconds from `kubectl apply` to every one of `ready` Ready, `pods` run as they
    appear; to the last of those pods answering its readiness probe; and the wall time of
    the apply (for the timeline)."""
    body = orjson.dumps({"apiVersion": "v1", "kind": "List", "items": objs}).decode()
    wall, start = time.time(), time.perf_counter()
    cp.kubectl("apply", "-f", "-", input=body)

    def run(pod: str) -> float:
        kubelet.start(pod, timeout)
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
        nodes_up = max(pool.map(run, pods))
    seen.wait_ready(ready, timeout)
    return time.perf_counter() - start, nodes_up, wall


def nodes_alone(n: int, root: Path, cpu: list[float] | None = None) -> float:
    """Seconds for `n` node processes, started at once from `n` threads with nothing else,
    to pass the readiness probe: the pod's program (`fedstats node`, its arguments) started
    as the stand-in kubelet starts it, with no Kubernetes and no federation to join. The
    CPU seconds they used to get there go to `cpu`."""
    fedstats = str(Path(sys.executable).with_name("fedstats"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSTATS_")}
    env["FEDSTATS_ENGINE"] = "numpy"
    children: list[ChildProcess] = []

    def run(i: int) -> float:
        home = root / f"n{i:03d}"
        (home / "data").mkdir(parents=True)
        customers = home / "customers.json"
        customers.write_text(orjson.dumps({"operator": new_secret_key()}).decode())
        port = free_port()
        child = ChildProcess([fedstats, "node", "--host", "127.0.0.1", "--port", str(port),
                              "--data-dir", str(home / "data"), "--customers", str(customers)],
                             home / "node.log", env=env, cwd=home, name=f"alone {i}")
        children.append(child.start())
        child.wait_until(lambda: probe_ok(f"http://127.0.0.1:{port}/readyz"), 300,
                         what="ready", interval=PROBE_S)
        return time.perf_counter() - start

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            took = max(pool.map(run, range(n)))
        if cpu is not None:
            cpu.append(sum(cpu_seconds(c.pid) for c in children))
        return took
    finally:
        stop_all(children)


def fed_timeline(seen: Seen, kubelet: LocalKubelet, fed: str, wall: float) -> None:
    """The Federation's steps, seconds after the apply."""
    pod = kubelet.timeline.get(f"{fed}-admin", {})
    steps = [("Federation seen by a watch", seen.at.get(("federation", fed))),
             ("its admin's NATS-user Secret", seen.at.get(("secret", f"{fed}-admin-nats"))),
             ("its admin's Deployment", seen.at.get(("deployment", f"{fed}-admin"))),
             *((f"kubelet: {step}", pod.get(step))
               for step in ("secrets read", "process started", "ready")),
             ("Federation Ready", seen.at.get(("federation Ready", fed)))]
    print("  step (seconds after the apply)")
    for label, at in steps:
        if at is not None:
            print(f"  {label:<34} {at - wall:6.2f}")
    seen_at, ready_at = seen.at.get(("federation", fed)), seen.at.get(("federation Ready", fed))
    if seen_at and ready_at and "process started" in pod and "ready" in pod:
        own = (pod["process started"] - seen_at) + (ready_at - pod["ready"])
        print(f"  the operator's own part {own:.2f} s (the Federation seen -> its pod started, "
              f"and its pod ready -> Ready); kubectl until the object existed "
              f"{seen_at - wall:.2f} s; the node's start under the kubelet "
              f"{pod['ready'] - pod['process started']:.2f} s")


def timeline(seen: Seen, kubelet: LocalKubelet, peers: list[str], wall: float) -> None:
    """Each Peer's steps, seconds after the apply: median and last over the Peers."""
    steps = [("Peer seen by a watch", lambda p: seen.at.get(("peer", p))),
             ("its NATS-user Secret", lambda p: seen.at.get(("secret", f"{p}-peer-nats"))),
             ("its Deployment", lambda p: seen.at.get(("deployment", f"{p}-peer"))),
             ("its invitation Secret",
              lambda p: seen.at.get(("secret", f"{p}-peer-invitation"))),
             ("kubelet: secrets read", lambda p: kubelet.timeline.get(f"{p}-peer", {}).get(
                 "secrets read")),
             ("kubelet: process started", lambda p: kubelet.timeline.get(f"{p}-peer", {}).get(
                 "process started")),
             ("kubelet: node ready", lambda p: kubelet.timeline.get(f"{p}-peer", {}).get(
                 "ready")),
             ("Peer Ready", lambda p: seen.at.get(("peer Ready", p)))]
    print("  step (seconds after the apply)      median    last")
    for label, at in steps:
        times = [t - wall for p in peers if (t := at(p)) is not None]
        if times:
            print(f"  {label:<34} {statistics.median(times):6.2f}  {max(times):6.2f}"
                  + ("" if len(times) == len(peers) else f"  ({len(times)} seen)"))


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

    def reloads(self) -> int:
        return self.sidecar.log_text().count("server reloaded")

    def stop(self) -> None:
        self.sidecar.stop()
        self.server.stop()


def ratio(took: float, alone: list[float]) -> str:
    return (f"ratio {took / min(alone):.2f} to the min, {took / statistics.median(alone):.2f}"
            f" to the median of {len(alone)} (" + ", ".join(f"{a:.2f}" for a in alone) + " s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", type=int, default=10,
                    help="peers, each a local node process (memory and cores bound this)")
    ap.add_argument("--retry-seconds", type=float, default=5.0,
                    help="the most an unready resource waits for an event before a retry")
    ap.add_argument("--auth", action="store_true",
                    help="NATS users made by the operator, applied by the authsync sidecar")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="run in DIR (made anew) and keep its logs; default: a temporary one")
    args = ap.parse_args()

    if args.keep is not None:
        args.keep.mkdir(parents=True)
    with (contextlib.nullcontext(str(args.keep)) if args.keep is not None
          else tempfile.TemporaryDirectory(prefix="fedstats-bench-")) as tmp:
        t0 = time.perf_counter()
        alone_one = [nodes_alone(1, Path(tmp) / "alone-1a")]
        alone_cpu: list[float] = []
        alone_n = [nodes_alone(args.peers, Path(tmp) / "alone-na", alone_cpu)]
        cp = ControlPlane(Path(tmp) / "k8s", binaries()).start()
        nats: NatsServer | SecuredNats = (SecuredNats(cp, Path(tmp) / "nats", "default")
                                          if args.auth else NatsServer(Path(tmp) / "nats").start())
        kubelet = LocalKubelet(cp, "default", Path(tmp) / "pods", PROBE_S)
        seen: Seen | None = None
        try:
            cp.start_workers()
            cp.kubectl("apply", "-f", str(REPO / "crds"))
            cp.kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"))
            seen = Seen(kubelet, "default")
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
                took, up, wall = timed_apply(cp, kubelet, seen, [fed], ["demo-admin"],
                                             ["federation/demo"], 300)
                alone_one.append(nodes_alone(1, Path(tmp) / "alone-1b"))
                print(f"Federation apply -> Ready (admin node up, federation configured): "
                      f"{took:.2f} s; the admin node's own start alone: "
                      f"{min(alone_one):.2f} s (the operator adds "
                      f"{took - min(alone_one):.2f} s; {ratio(took, alone_one)}); its pod "
                      f"up under the stand-in kubelet at {up:.2f} s, Ready {took - up:.2f} s "
                      "after")
                fed_timeline(seen, kubelet, "demo", wall)
                peers = []
                for name in peer_names:
                    peer = manifest("peer-cpu.yaml")
                    peer["metadata"]["name"] = name
                    peers.append(peer)
                reloads = nats.reloads() if isinstance(nats, SecuredNats) else 0

                def groups() -> dict[str, list[int | None]]:
                    return {
                        "peer nodes": [kubelet.procs[n].pid for n in nodes[1:]
                                       if n in kubelet.procs],
                        "admin node": [kubelet.procs["demo-admin"].pid],
                        "operator": [op.pid],
                        "control plane": [c.pid for c in cp.procs.values()],
                        "NATS": ([nats.server.pid, nats.sidecar.pid]
                                 if isinstance(nats, SecuredNats) else [nats.child.pid]),
                        "this bench (stand-in kubelet, watches, kubectl)": [os.getpid()]}
                cpu = CpuUse(groups)
                writes = api_writes(cp)
                took, up, wall = timed_apply(cp, kubelet, seen, peers, nodes[1:],
                                             [f"peer/{p}" for p in peer_names], 900)
                reloads = (nats.reloads() - reloads) if isinstance(nats, SecuredNats) else 0
                cpu.stop()
                writes_line = writes_report(writes, api_writes(cp), args.peers)
                stop_all(kubelet.procs.values())  # the baseline runs alone again
                kubelet.procs.clear()
                alone_n.append(nodes_alone(args.peers, Path(tmp) / "alone-nb", alone_cpu))
                print(f"{args.peers} Peers apply -> all Ready (invited, node up, joined): "
                      f"{took:.2f} s ({took / args.peers * 1000:.0f} ms a peer); their "
                      f"{args.peers} node processes started in parallel alone: "
                      f"{ratio(took, alone_n)}; the last pod up under the stand-in kubelet "
                      f"at {up:.2f} s, all Ready {took - up:.2f} s after"
                      + (f"; {reloads} NATS reloads" if args.auth else ""))
                timeline(seen, kubelet, peer_names, wall)
                print(cpu.report(took, statistics.median(alone_cpu)))
                print(writes_line)
                print(f"(NATS auth {'on' if args.auth else 'off'}; longest event wait "
                      f"{args.retry_seconds} s; {os.cpu_count()} CPUs seen, shared with every "
                      "node process)")
            finally:
                op.stop(grace=30)
        finally:
            if seen is not None:
                seen.stop()
            kubelet.__exit__()
            nats.stop()
            cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
