"""The harness's child-process supervisor: readiness from output or a probe, stop, kill."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from fedstats_harness.ports import refusing_port
from fedstats_harness.process import ChildExited, ChildProcess, stop_all

# A child that says it is ready, then waits; on SIGTERM it says so and exits 0.
POLITE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(0)))
print("listening on 127.0.0.1:4711", flush=True)
while True:
    time.sleep(60)
"""
# A child that ignores SIGTERM: only SIGKILL ends it.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(60)
"""


def python(code: str, log: Path) -> ChildProcess:
    return ChildProcess([sys.executable, "-c", code], log)


def test_readiness_is_the_line_the_child_prints_and_stop_is_sigterm(tmp_path: Path) -> None:
    child = python(POLITE, tmp_path / "child.log").start()
    match = child.wait_for_output(r"listening on (\S+):(\d+)", 30)
    assert match.groups() == ("127.0.0.1", "4711")
    child.stop(grace=30)
    assert not child.running
    assert "got SIGTERM" in child.log_text()


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    child = python(STUBBORN, tmp_path / "child.log").start()
    child.wait_for_output("ready", 30)
    child.stop(grace=0.5)
    assert not child.running


def test_a_child_that_exits_before_it_is_ready_says_so_with_its_output(tmp_path: Path) -> None:
    child = python("print('bad config: no port'); raise SystemExit(3)", tmp_path / "c.log")
    with pytest.raises(ChildExited, match=r"(?s)exited \(3\).*bad config: no port"):
        child.start().wait_for_output("listening", 30)
    child.start()  # and a probe that never holds gives up as soon as the child is gone
    with pytest.raises(ChildExited, match="before it was ready"):
        child.wait_until(lambda: False, 30)


def test_kill_runs_no_handler_and_a_restart_appends_to_the_same_log(tmp_path: Path) -> None:
    child = python(POLITE, tmp_path / "child.log").start()
    child.wait_for_output("listening", 30)
    child.kill()
    assert "got SIGTERM" not in child.log_text()
    child.start()
    child.wait_for_output("listening", 30)  # this run's line, not the first run's
    stop_all([child], grace=30)
    assert child.log_text().count("listening on") == 2
    assert child.log_text().count("got SIGTERM") == 1


def test_a_refusing_port_refuses_connections_while_held() -> None:
    with refusing_port() as port, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
