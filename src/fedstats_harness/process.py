"""One supervisor for every child process the harness runs (nats-server, nodes, Kubernetes).

A `ChildProcess` starts a command with its environment and working folder, copies what
it prints (stdout and stderr together) into its log file line by line, and offers the two
ways a parent learns that a child is ready: an event read from the child's own output
(`wait_for_output`, as nats-server says "Server is ready") or, for a child that prints
nothing useful, a probe retried until it answers (`wait_until`, an HTTP readiness check).
Both give up at once when the child exits, with the tail of its log in the error. It is
stopped as an init system stops it (SIGTERM, then SIGKILL after a grace period), killed
with `kill()` for fault tests (kill -9: no shutdown hook runs), and started again with the
same command, environment and log.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit


class ChildExited(RuntimeError):
    """The child ended while its parent waited for it to become ready."""


class ChildProcess:
    """A command run as a child process, its output in `log`; a context manager."""

    def __init__(
        self,
        argv: Sequence[str],
        log: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.name = name or Path(self.argv[0]).name
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []  # what this run printed, for wait_for_output
        self._changed = threading.Condition()
        self._eof = threading.Event()
        self._reader: threading.Thread | None = None

    # ---- running

    def start(self) -> ChildProcess:
        """Spawns the command (again, after a stop); readiness is the caller's to await."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._changed:
            self._lines = []
        self._eof.clear()
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, text=True, errors="replace", bufsize=1,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._copy, args=(self.proc.stdout,),
                                        name=f"{self.name}-output", daemon=True)  # fmt: skip
        self._reader.start()
        return self

    def _copy(self, stream: IO[str]) -> None:
        """The reader thread: each line to the log file and to the waiters, until EOF."""
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in stream:
                log.write(line)
                log.flush()
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        stream.close()
        with self._changed:
            self._eof.set()
            self._changed.notify_all()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # ---- readiness

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first line of this run matching `pattern` (an event: no polling)."""
        regex = re.compile(pattern)
        seen = 0
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self._lines)
                if self._eof.is_set():
                    raise ChildExited(self._exited(f"before printing {regex.pattern!r}"))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name} printed no {regex.pattern!r} within "
                                       f"{timeout}s; see {self.log_path}")  # fmt: skip
                self._changed.wait(left)

    def wait_until(self, probe: Callable[[], bool], timeout: float, *, what: str = "ready",
                   interval: float = 0.1) -> None:  # fmt: skip
        """Retries `probe` until it is true, for a child whose output says nothing useful.

        The pause between tries is a wait on the child's exit, so a child that dies is
        reported at once rather than after the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ChildExited(self._exited(f"before it was {what}"))
            if probe():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} was not {what} within {timeout}s; "
                                   f"see {self.log_path}")  # fmt: skip
            self._eof.wait(interval)

    def _exited(self, when: str) -> str:
        code: int | str | None = None
        if self.proc is not None:
            try:  # its output ended; its exit follows (or it closed stdout and lives on)
                code = self.proc.wait(5)
            except subprocess.TimeoutExpired:
                code = "its output closed"
        return f"{self.name} exited ({code}) {when}:\n{self.log_tail()}"

    # ---- stopping

    def terminate(self) -> None:
        """Sends SIGTERM (the polite half of `stop`, for stopping many at once)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, grace: float = 15.0) -> None:
        """Waits `grace` seconds for the child to end, then SIGKILLs it."""
        if self.proc is None:
            return
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(10)  # a grandchild holding the pipe open must not hang us
        self.proc = None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; nothing when not running."""
        self.terminate()
        self.wait_stopped(grace)

    def kill(self) -> None:
        """kill -9: the child runs no shutdown hook (what fault tests need)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
        self.wait_stopped()

    def restart(self, grace: float = 15.0) -> ChildProcess:
        self.stop(grace)
        return self.start()

    # ---- its log

    def log_text(self) -> str:
        """Everything the child printed, every run (the log file is appended to)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(children: Iterable[ChildProcess], grace: float = 15.0) -> None:
    """Stops several children together: SIGTERM to each first, then wait for each."""
    children = list(children)
    for child in children:
        child.terminate()
    for child in children:
        child.wait_stopped(grace)


def probe_ok(url: str) -> bool:
    """A kubelet's HTTP readiness probe: 200 within a second (it polls too). One GET on a
    fresh plain connection, as a kubelet's: no client object per probe (an httpx client
    builds a TLS context each time it is made, ~20 ms of CPU; 50 pods probed four times a
    second made the probes take a core from the nodes they wait for)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"a readiness probe is an http:// URL, not {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=1)
    try:
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
