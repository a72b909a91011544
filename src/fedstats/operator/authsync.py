"""The NATS pod's sidecar: the operator's auth Secret, written where nats-server reads it.

    python -m fedstats.operator.authsync --secret NS/NAME --file PATH --pid-file PATH [--once]

Why a watch of the API server rather than a mounted Secret: the kubelet refreshes a
mounted Secret only on its sync period (a minute or more), and a deleted Peer's user must
be refused within seconds. So the sidecar (its ServiceAccount may get and watch that one
Secret) writes the file the moment the Secret changes, then sends the server SIGHUP (its
reload signal; the pod shares one process namespace) through its pid file. `--once` is
the init container: the file exists before the server starts, and without the Secret it
is the locked placeholder, so the server never starts without authentication.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import kopf

from .errors import KubeNotFound, KubeUnavailable, RetryLater
from .kube import Kube
from .natsauth import AUTH_FILE, render_auth
from .types import Body

log = logging.getLogger("fedstats.operator.authsync")
RETRY_S = 1.0


def auth_text(secret: Body | None) -> str:
    """The file the Secret holds; the locked placeholder when there is none. Pure."""
    data = (secret or {}).get("data") or {}
    if AUTH_FILE in data:
        return base64.b64decode(data[AUTH_FILE]).decode()
    return render_auth({})


def write_if_changed(path: Path, text: str) -> bool:
    """Atomically replaces the file (a reader never sees half of it); False if unchanged."""
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.replace(tmp, path)
    return True


def signal_reload(pid_file: Path) -> bool:
    """SIGHUP to the server named by its pid file; False when it is not running yet."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True


class AuthSync:
    def __init__(self, kube: Kube, namespace: str, name: str, path: Path,
                 pid_file: Path) -> None:  # fmt: skip
        self.kube, self.namespace, self.name = kube, namespace, name
        self.path, self.pid_file = path, pid_file
        self.reloads = 0

    def apply(self, secret: Body | None) -> None:
        if write_if_changed(self.path, auth_text(secret)):
            reloaded = signal_reload(self.pid_file)
            self.reloads += reloaded
            log.info("auth file written%s", ", server reloaded" if reloaded else "")

    async def once(self) -> str:
        """Reads the Secret, writes the file; the resourceVersion to watch from."""
        secret = await self.kube.get("Secret", self.namespace, self.name)
        self.apply(secret)
        return str(((secret or {}).get("metadata") or {}).get("resourceVersion") or "0")

    async def run(self) -> None:
        while True:
            try:
                version = await self.once()
                async for kind, obj in self.kube.watch_one("Secret", self.namespace,
                                                           self.name, version):
                    if kind in ("ADDED", "MODIFIED"):
                        self.apply(obj)
                    elif kind == "DELETED":
                        self.apply(None)
                    elif kind == "ERROR":  # 410 Gone: too old a version, read afresh
                        break
            except (KubeUnavailable, KubeNotFound, RetryLater) as e:
                log.warning("watching Secret %s/%s: %s", self.namespace, self.name, e)
                await asyncio.sleep(RETRY_S)  # the API server is away: nothing to await


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fedstats.operator.authsync",
                                description=__doc__)
    p.add_argument("--secret", required=True, metavar="NAMESPACE/NAME")
    p.add_argument("--file", required=True, type=Path)
    p.add_argument("--pid-file", required=True, type=Path)
    p.add_argument("--once", action="store_true", help="write the file once and exit")
    return p


async def _main(args: argparse.Namespace) -> None:
    settings = kopf.OperatorSettings()
    info = (kopf.login_with_service_account(settings=settings)
            or kopf.login_with_kubeconfig(settings=settings))
    if info is None:
        raise SystemExit("authsync: no Kubernetes credentials")
    namespace, _, name = str(args.secret).partition("/")
    kube = Kube(info)
    try:
        sync = AuthSync(kube, namespace, name, args.file, args.pid_file)
        await (sync.once() if args.once else sync.run())
    finally:
        await kube.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_main(parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
