"""Node processes on this machine: `fedstats node` children for the demo, tests and benches.

Each node is a real process (`fedstats node --host --port --data-dir --customers`) on a
free port, so what runs is what users run: separate interpreters, separate SQLite files,
REST only between them. `kill()` is a kill -9; `start()` again reuses the data directory.
`env` adds variables to the child's environment (the `FEDSTATS_*` bootstrap, for one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .natsproc import free_port


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
    ) -> None:
        self.name = name
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.customers_file = self.dir / "customers.json"
        self.customers_file.write_text(json.dumps(customers))
        self.host, self.port = host, port or free_port(host)
        self.log_level = log_level
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "node.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-c", "import sys; from fedstats.cli import main; sys.exit(main())",
            "node", "--host", self.host, "--port", str(self.port),
            "--data-dir", str(self.dir / "data"), "--customers", str(self.customers_file),
            "--log-level", self.log_level,
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> NodeProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited; see {self.dir / 'node.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling a port: a child process has no readiness event
        self.stop()
        raise TimeoutError(f"node {self.name} not ready within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """kill -9: no shutdown hooks run."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
