"""kill -9 while learns into a keepRows project are acknowledged: after the restart the kept
rows and the statistics agree, and hold every acknowledged batch exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from fedstats.node.client import ApiError, Client
from fedstats_harness.frames import frame
from fedstats_harness.localnet import NodeProcess

ROWS = 10  # per batch


def batch(i: int) -> np.ndarray:
    """Batch i: values that identify it (a lost or doubled batch shows in the sums), and a
    0/1 target column."""
    base = np.arange(ROWS, dtype=float)[:, None]
    return np.hstack([base + 1000.0 * i, (base + 1.0) * (i + 1), (base + i) % 2])


def test_sigkill_mid_learn_on_kept_rows_loses_and_doubles_nothing(
        spawn: Callable[[], tuple[NodeProcess, Client]]) -> None:
    node, client = spawn()
    client.request("POST", client._rest("projects"), params={"pid": "p", "keepRows": "true"})
    acked: list[int] = []
    enough = threading.Event()

    def stream() -> None:
        for i in range(10_000):
            try:
                client.learn("p", frame(batch(i), ["a", "b", "y"], "CCB"))
            except (ConnectionError, ApiError):
                return
            acked.append(i)
            if len(acked) == 40:
                enough.set()

    t = threading.Thread(target=stream)
    t.start()
    assert enough.wait(120)
    node.kill()  # while the stream is still sending
    t.join(30)

    _, again = spawn()
    n = again.project_info("p")["rows"]
    k = len(acked)
    assert n in (k * ROWS, (k + 1) * ROWS)  # the batch in flight may have been committed
    uni = again.explore("p", "uni", {})
    expected = np.vstack([batch(i) for i in range(n // ROWS)])
    for j, col in enumerate(["a", "b"]):
        assert uni[col]["count"] == n
        assert uni[col]["mean"] * n == pytest.approx(expected[:, j].sum(), rel=1e-12)
    # a fit reads the kept rows themselves: exactly as many as the statistics count
    info = again.build("p", "m", "lr", {"targetAttributeNames": ["y"], "inputAttributeNames":
                                        ["b"], "extraParameters": {"maxIter": "1"}})
    assert info["n"] == n
