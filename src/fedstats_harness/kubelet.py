"""A stand-in kubelet for tests and benches: a Deployment's pod run as local processes.

kwok makes pods Running without running anything; this runs what the pod spec says, as a
kubelet would, so a test can show the operator's rendered pods actually work: the
container's command and args, its env with `valueFrom.secretKeyRef` read from the API
server (waiting, as a kubelet does, until the Secret and key exist), secret and emptyDir
volumes materialized under a work folder, the readiness probe awaited. What cannot be the
same on one machine is rewritten and only that: mount paths become folders, the container
port a free local port (`--port`), `0.0.0.0` becomes loopback, and a Service's cluster DNS
name in an env value becomes the local URL of the process standing for it.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from fedstats.operator.names import NODE_PORT

from .controlplane import ControlPlane
from .ports import free_port
from .process import ChildProcess, stop_all

Obj = dict[str, Any]


class LocalKubelet:
    """Runs the pods of Deployments in one namespace; a context manager that stops them."""

    def __init__(self, cp: ControlPlane, namespace: str, workdir: Path) -> None:
        self.cp = cp
        self.namespace = namespace
        self.dir = Path(workdir)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, ChildProcess] = {}
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Stops a process once its Deployment is gone or scaled to zero, as pods are."""
        while not self._done.wait(0.2):
            for name in list(self.procs):
                dep = self._get("deployment", name)
                if dep is None or dep["spec"].get("replicas", 1) == 0 \
                        or dep["metadata"].get("deletionTimestamp"):
                    self.stop(name)

    # ---- where each Service's process listens

    def url(self, service: str) -> str:
        """The local URL standing for `service` (its port chosen on first ask)."""
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

    # ---- the API server's view

    def _get(self, kind: str, name: str) -> Obj | None:
        done = self.cp.kubectl("get", "-n", self.namespace, kind, name, "-o", "json",
                               check=False)
        return orjson.loads(done.stdout) if done.returncode == 0 else None

    def _secret_value(self, name: str, key: str, deadline: float) -> str:
        while True:
            secret = self._get("secret", name)
            data = (secret or {}).get("data") or {}
            if key in data:
                return base64.b64decode(data[key]).decode()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Secret {name} has no key {key} (CreateContainerConfigError)")
            time.sleep(0.25)  # a kubelet retries a missing Secret the same way

    def pod_template(self, deployment: str, timeout: float = 60.0) -> Obj:
        deadline = time.monotonic() + timeout
        while (dep := self._get("deployment", deployment)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Deployment {deployment} was never created")
            time.sleep(0.25)  # waiting on the operator: nothing to subscribe to here
        template: Obj = dep["spec"]["template"]
        return template

    # ---- running one pod

    def env(self, container: Obj, deadline: float) -> dict[str, str]:
        """The container's environment as a kubelet resolves it."""
        out: dict[str, str] = {}
        for var in container.get("env", []):
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                out[var["name"]] = self._secret_value(ref["name"], ref["key"], deadline)
            elif "valueFrom" in var:
                raise NotImplementedError(f"env {var['name']}: only secretKeyRef is resolved")
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
            if "secret" in vol:
                name = vol["secret"]["secretName"]
                secret = self._get("secret", name) or {}
                for key in (secret.get("data") or {}):
                    (folder / key).write_text(self._secret_value(name, key, deadline))
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

    def start(self, deployment: str, timeout: float = 90.0) -> ChildProcess:
        """Runs the Deployment's pod (one container) and waits for its readiness probe."""
        deadline = time.monotonic() + timeout
        pod = self.pod_template(deployment, timeout)["spec"]
        [container] = pod["containers"]
        root = self.dir / deployment
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSTATS_")}
        env.update(self.env(container, deadline))
        port = int(self.url(deployment).rsplit(":", 1)[1])
        argv = self.command(container, self._volumes(pod, container, root, deadline), port)
        child = ChildProcess(argv, root / "pod.log", env=env, cwd=root, name=deployment)
        self.procs[deployment] = child.start()
        probe = container.get("readinessProbe", {}).get("httpGet", {}).get("path", "/")

        def ready() -> bool:  # a kubelet's readiness probe polls too
            try:
                return httpx.get(self.url(deployment) + probe, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        child.wait_until(ready, max(deadline - time.monotonic(), 0.0), what="ready")
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
        self._watcher.join()
        stop_all(self.procs.values())
        self.procs.clear()
