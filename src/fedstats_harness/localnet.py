"""Node processes on this machine: `fedstats node` children for the demo, tests and benches.

Each node is a real process (`fedstats node --host --port --data-dir --customers`), so
what runs is what users run: separate interpreters, separate SQLite files, REST only
between them. A node is told its port (its URL is handed to others before it starts:
`ports.free_port`) and is ready when `/healthz` answers; uvicorn says nothing at the
default log level, so that is a probe. `kill()` is a kill -9; `start()` again reuses the
data directory. `env` adds variables to the child's environment (the `FEDSTATS_*`
bootstrap, for one) and may be changed between runs.

`LocalNodes` is several of them started together (their interpreters start in parallel)
with a signed `Client` each, and one `stop()` for everything.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from fedstats.node.client import ApiError, Client

from .ports import free_port
from .process import ChildProcess, probe_ok, stop_all


class NodeProcess:
    """One `fedstats node` child process."""

    def __init__(
        self,
        name: str,
        workdir: str | os.PathLike[str],
        customers: dict[str, str],
        host: str = "127.0.0.1",
        port: int | None = None,
        log_level: str = "warning",
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.customers_file = self.dir / "customers.json"
        self.customers_file.write_text(json.dumps(customers))
        self.host, self.port = host, port or free_port(host)
        self.log_level = log_level
        self.env = dict(env or {})
        self.args = list(args)
        self.child = ChildProcess(self.command(), self.log_path, name=f"node {name}")

    @property
    def log_path(self) -> Path:
        return self.dir / "node.log"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def log_text(self) -> str:
        return self.child.log_text()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.child.running

    def command(self) -> list[str]:
        return [
            sys.executable, "-c", "import sys; from fedstats.cli import main; sys.exit(main())",
            "node", "--host", self.host, "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--customers", str(self.customers_file),
            "--log-level", self.log_level, *self.args,
        ]  # fmt: skip

    def spawn(self) -> NodeProcess:
        """Starts the process without waiting for it (see `wait_ready`)."""
        self.child.argv = self.command()
        self.child.env = {**os.environ, **self.env}
        self.child.start()
        return self

    def wait_ready(self, timeout: float = 60.0) -> NodeProcess:
        try:
            self.child.wait_until(self._healthy, timeout, what="answering /healthz")
        except BaseException:
            self.child.stop()
            raise
        return self

    def _healthy(self) -> bool:
        return probe_ok(f"{self.url}/healthz")

    def start(self, timeout: float = 60.0) -> NodeProcess:
        return self.spawn().wait_ready(timeout)

    def stop(self) -> None:
        self.child.stop(grace=15)

    def kill(self) -> None:
        """kill -9: no shutdown hooks run."""
        self.child.kill()


class LocalNodes:
    """Nodes of one customer key (one per name), started together; a context manager."""

    def __init__(self, root: str | os.PathLike[str], names: Iterable[str], customer: str,
                 key: str, env: dict[str, dict[str, str]] | None = None) -> None:  # fmt: skip
        self.root, self.customer, self.key = Path(root), customer, key
        env = env or {}
        self.nodes = {n: NodeProcess(n, root, {customer: key}, env=env.get(n)) for n in names}
        self.clients: dict[str, Client] = {}

    def start(self, timeout: float = 90.0) -> LocalNodes:
        try:
            for node in self.nodes.values():
                node.spawn()
            for name, node in self.nodes.items():
                node.wait_ready(timeout)
                self.clients[name] = Client(node.url, self.customer, self.key)
        except BaseException:
            self.stop()
            raise
        return self

    def add(self, name: str, env: dict[str, str] | None = None) -> NodeProcess:
        """One more node, started now; it is stopped with the others."""
        node = NodeProcess(name, self.root, {self.customer: self.key}, env=env)
        self.nodes[name] = node
        node.start()
        self.clients[name] = Client(node.url, self.customer, self.key)
        return node

    def stop(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()
        stop_all(node.child for node in self.nodes.values())

    def __enter__(self) -> LocalNodes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kill_mid_stream(node: NodeProcess, client: Client, pid: str,
                    frame_of: Callable[[int], Mapping[str, object]], acked_first: int = 40
                    ) -> list[int]:
    """Learn batch 0, 1, 2, ... into `pid` from a thread and kill -9 the node once
    `acked_first` were acknowledged, while the stream still sends; the batches the node
    acknowledged (each once: a crash test checks none is lost or doubled)."""
    acked: list[int] = []
    enough = threading.Event()

    def stream() -> None:
        for i in range(10_000):
            try:
                client.learn(pid, frame_of(i))
            except (ConnectionError, ApiError):
                return
            acked.append(i)
            if len(acked) == acked_first:
                enough.set()

    t = threading.Thread(target=stream)
    t.start()
    if not enough.wait(120):
        raise TimeoutError(f"the node acknowledged only {len(acked)} batches in 120 s")
    node.kill()
    t.join(30)
    return acked
