"""A stand-in kubelet for tests and benches: a Deployment's pod run as local processes.

kwok makes pods Running without running anything; this runs what the pod spec says, as a
kubelet would, so a test can show the operator's rendered pods actually work: the
container's command and args, its env with `valueFrom.secretKeyRef` read from the API
server (waiting, as a kubelet does, until the Secret and key exist), secret, configMap and
emptyDir volumes materialized under a work folder, the readiness probe awaited. What
cannot be the same on one machine is rewritten and only that: mount paths become folders,
the container port a free local port (`--port`), `0.0.0.0` becomes loopback, and a
Service's cluster DNS name in an env value becomes the local URL of the process standing
for it.

Like a kubelet it learns of objects by watching, not by asking: one `Informer` per kind
(Deployments, Secrets, ConfigMaps of the namespace) lists once and then follows the API
server's watch, keeping every object in memory. A pod waiting for its Deployment or a
Secret waits on that cache and starts the moment the object arrives; reading a Secret is
a dictionary lookup. Pods are independent: `start` may be called from many threads at
once and each starts its process as soon as its own objects exist, as a kubelet starts
pods in parallel. `timeline` records, per Deployment, when each step happened (wall clock,
to compare with other processes' logs): a bench's profile of where the time goes.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from fedstats.operator.names import NODE_PORT

from .controlplane import ControlPlane
from .ports import free_port
from .process import ChildProcess, probe_ok, stop_all

Obj = dict[str, Any]
OnEvent = Callable[[str, Obj, float], None]


def api_client(cp: ControlPlane) -> httpx.Client:
    """An HTTP client of the control plane's API server, as its admin (thread-safe)."""
    ctx = ssl.create_default_context(cafile=str(cp.dir / "ca.crt"))
    return httpx.Client(base_url=cp.server, verify=ctx, timeout=30,
                        headers={"Authorization": f"Bearer {cp.token}",
                                 "Accept": "application/json"})


class Informer:
    """Every object of one collection (an API path), kept current by list and watch.

    A thread lists the collection, then follows its watch from that resourceVersion
    (listing again after the server ends a watch with 410 Gone, or on a connection
    error). `changed` is notified on every event; `on_event(type, object, wall time)` is
    called for each one, from the thread.

    The informer has its own API client, which only its thread uses and closes when it
    ends: a client closed from another thread while a watch streams on it would take that
    connection back into a closed pool, never to be closed (an unclosed socket, reported
    at some later test's garbage collection).
    """

    def __init__(self, cp: ControlPlane, path: str, changed: threading.Condition,
                 on_event: OnEvent | None = None) -> None:  # fmt: skip
        self.http, self.path, self.changed = api_client(cp), path, changed
        self.on_event = on_event
        self.objects: dict[str, Obj] = {}
        self.synced = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"informer {path}")

    def start(self, timeout: float = 30.0) -> Informer:
        self._thread.start()
        if not self.synced.wait(timeout):
            raise TimeoutError(f"listing {self.path} took over {timeout} s")
        return self

    def get(self, name: str) -> Obj | None:
        with self.changed:
            return self.objects.get(name)

    def _event(self, kind: str, obj: Obj) -> None:
        name = obj.get("metadata", {}).get("name", "")
        with self.changed:
            if kind == "DELETED":
                self.objects.pop(name, None)
            else:
                self.objects[name] = obj
            self.changed.notify_all()
        if self.on_event is not None:
            self.on_event(kind, obj, time.time())

    def _list(self) -> str:
        resp = self.http.get(self.path)
        resp.raise_for_status()
        listed = orjson.loads(resp.content)
        items = {o["metadata"]["name"]: o for o in listed.get("items", [])}
        with self.changed:
            gone = set(self.objects) - set(items)
            self.objects = items
            self.changed.notify_all()
        if self.on_event is not None:
            now = time.time()
            for name in gone:
                self.on_event("DELETED", {"metadata": {"name": name}}, now)
            for obj in items.values():
                self.on_event("ADDED", obj, now)
        self.synced.set()
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> None:
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "60"}
        while not self._done.is_set():
            with self.http.stream("GET", self.path, params=params, timeout=90) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines():
                    if self._done.is_set():
                        return
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        return  # 410 Gone, most likely: list afresh
                    params["resourceVersion"] = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self._event(str(kind), obj)

    def _run(self) -> None:
        try:
            while not self._done.is_set():
                try:
                    self._watch(self._list())
                except Exception:  # the API server away
                    if self._done.wait(0.5):
                        return
        finally:
            self.http.close()

    def stop(self) -> None:
        self._done.set()  # the thread ends at its next event or when the watch times out


# What a pod reads, each kind's collection in a namespace.
COLLECTIONS = {"deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
               "secret": "/api/v1/namespaces/{ns}/secrets",
               "configmap": "/api/v1/namespaces/{ns}/configmaps"}


class LocalKubelet:
    """Runs the pods of Deployments in one namespace; a context manager that stops them."""

    def __init__(self, cp: ControlPlane, namespace: str, workdir: Path,
                 probe_interval: float = 0.1) -> None:  # fmt: skip
        self.cp = cp
        self.probe_interval = probe_interval  # seconds between readiness probes of a pod
        self.namespace = namespace
        self.dir = Path(workdir)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, ChildProcess] = {}
        self.timeline: dict[str, dict[str, float]] = {}  # deployment -> step -> time.time()
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._done = threading.Event()
        self.informers = {kind: Informer(cp, path.format(ns=namespace), self._changed)
                          for kind, path in COLLECTIONS.items()}
        for informer in self.informers.values():
            informer.start()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Stops a process once its Deployment is gone or scaled to zero, as pods are."""
        while not self._done.is_set():
            with self._changed:
                self._changed.wait(0.5)
            for name in list(self.procs):
                dep = self._get("deployment", name)
                if dep is None or dep["spec"].get("replicas", 1) == 0 \
                        or dep["metadata"].get("deletionTimestamp"):
                    self.stop(name)

    # ---- where each Service's process listens

    def url(self, service: str) -> str:
        """The local URL standing for `service` (its port chosen on first ask)."""
        with self._lock:
            if service not in self.ports:
                self.ports[service] = free_port()
            return f"http://127.0.0.1:{self.ports[service]}"

    def url_map(self, *services: str) -> dict[str, str]:
        """`{"<namespace>/<service>": url}`, the operator's FEDSTATS_OPERATOR_NODE_URLS."""
        return {f"{self.namespace}/{s}": self.url(s) for s in services}

    def _local_names(self, value: str) -> str:
        pattern = re.compile(rf"(?:https?://)?([a-z0-9-]+)\.{re.escape(self.namespace)}"
                             rf"\.svc(?:\.cluster\.local)?(?::{NODE_PORT})?")
        return pattern.sub(lambda m: self.url(m.group(1)) if m.group(1) in self.ports
                           else m.group(0), value)

    # ---- the API server's view, as the informers keep it

    def _get(self, kind: str, name: str) -> Obj | None:
        return self.informers[kind].get(name)

    def _await(self, what: str, found: Callable[[], Any], deadline: float) -> Any:
        """The first non-None `found()`, re-evaluated on every watch event until `deadline`."""
        with self._changed:
            while (value := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._done.is_set():
                    raise TimeoutError(what)
                self._changed.wait(min(left, 1.0))
            return value

    def _data(self, kind: str, name: str, deadline: float, key: str | None = None,
              ) -> dict[str, str]:  # fmt: skip
        """A Secret's (decoded) or ConfigMap's data, waiting until it exists (and has `key`)."""
        def found() -> dict[str, str] | None:
            obj = self.informers[kind].objects.get(name)
            if obj is None:
                return None
            if kind == "secret":
                data = {k: base64.b64decode(v).decode()
                        for k, v in (obj.get("data") or {}).items()}
            else:
                data = dict(obj.get("data") or {})
            return data if key is None or key in data else None
        missing = f"{kind} {name}" + (f" has no key {key}" if key else " does not exist")
        value: dict[str, str] = self._await(f"{missing} (CreateContainerConfigError)", found,
                                            deadline)
        return value

    def pod_template(self, deployment: str, timeout: float = 60.0) -> Obj:
        deadline = time.monotonic() + timeout
        dep = self._await(f"Deployment {deployment} was never created",
                          lambda: self.informers["deployment"].objects.get(deployment),
                          deadline)
        template: Obj = dep["spec"]["template"]
        return template

    # ---- running one pod

    def env(self, container: Obj, deadline: float) -> dict[str, str]:
        """The container's environment as a kubelet resolves it."""
        out: dict[str, str] = {}
        for var in container.get("env", []):
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source or "configMapKeyRef" in source:
                kind = "secret" if "secretKeyRef" in source else "configmap"
                ref = source.get("secretKeyRef") or source["configMapKeyRef"]
                out[var["name"]] = self._data(kind, ref["name"], deadline, ref["key"])[ref["key"]]
            elif source:
                raise NotImplementedError(f"env {var['name']}: only secret and configMap "
                                          "keys are resolved")
            else:
                out[var["name"]] = self._local_names(str(var.get("value", "")))
        return out

    def _volumes(self, pod: Obj, container: Obj, root: Path, deadline: float) -> dict[str, str]:
        """Each mountPath -> the local file or folder standing for it."""
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts: dict[str, str] = {}
        for mount in container.get("volumeMounts", []):
            vol = volumes[mount["name"]]
            folder = root / "volumes" / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            source = vol.get("secret") or vol.get("configMap")
            if source is not None:  # one read of the object, every key (or `items`) written
                kind = "secret" if "secret" in vol else "configmap"
                name = source.get("secretName") or source["name"]
                data = self._data(kind, name, deadline)
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (folder / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (folder / item["path"]).write_text(data[item["key"]])
            elif "emptyDir" not in vol and "persistentVolumeClaim" not in vol:
                raise NotImplementedError(f"volume {mount['name']}: {sorted(vol)}")
            path = folder / mount["subPath"] if mount.get("subPath") else folder
            mounts[mount["mountPath"]] = str(path)
        return mounts

    def command(self, container: Obj, mounts: dict[str, str], port: int) -> list[str]:
        argv = [*container.get("command", []), *container.get("args", [])]
        out = []
        for i, arg in enumerate(argv):
            if i > 0 and argv[i - 1] == "--port":
                arg = str(port)
            elif i > 0 and argv[i - 1] == "--host" and arg == "0.0.0.0":
                arg = "127.0.0.1"
            else:
                for path, local in mounts.items():
                    if arg == path or arg.startswith(path + "/"):
                        arg = local + arg[len(path):]
            out.append(arg)
        if out and out[0] == "fedstats":  # the image's entry point is this environment's
            out[0] = str(Path(sys.executable).with_name("fedstats"))
        return out

    def _mark(self, deployment: str, step: str) -> None:
        self.timeline.setdefault(deployment, {}).setdefault(step, time.time())

    def start(self, deployment: str, timeout: float = 90.0) -> ChildProcess:
        """Runs the Deployment's pod (one container) and waits for its readiness probe."""
        deadline = time.monotonic() + timeout
        self.timeline.pop(deployment, None)
        pod = self.pod_template(deployment, timeout)["spec"]
        self._mark(deployment, "deployment seen")
        [container] = pod["containers"]
        root = self.dir / deployment
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSTATS_")}
        env.update(self.env(container, deadline))
        port = int(self.url(deployment).rsplit(":", 1)[1])
        argv = self.command(container, self._volumes(pod, container, root, deadline), port)
        self._mark(deployment, "secrets read")
        child = ChildProcess(argv, root / "pod.log", env=env, cwd=root, name=deployment)
        self.procs[deployment] = child.start()
        self._mark(deployment, "process started")
        probe = container.get("readinessProbe", {}).get("httpGet", {}).get("path", "/")
        child.wait_until(lambda: probe_ok(self.url(deployment) + probe),
                         max(deadline - time.monotonic(), 0.0), what="ready",
                         interval=self.probe_interval)
        self._mark(deployment, "ready")
        return child

    def log(self, deployment: str) -> str:
        path = self.dir / deployment / "pod.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, deployment: str) -> None:
        child = self.procs.pop(deployment, None)
        if child is not None:
            child.stop(grace=15)

    def __enter__(self) -> LocalKubelet:
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        with self._changed:
            self._changed.notify_all()
        self._watcher.join()
        for informer in self.informers.values():
            informer.stop()
        stop_all(self.procs.values())
        self.procs.clear()
