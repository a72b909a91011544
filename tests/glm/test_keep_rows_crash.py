"""kill -9 while learns into a keepRows project are acknowledged: after the restart the kept
rows and the statistics agree, and hold every acknowledged batch exactly once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fedstats.node.client import Client
from fedstats_harness.frames import frame
from fedstats_harness.localnet import NodeProcess, kill_mid_stream

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
    acked = kill_mid_stream(node, client, "p", lambda i: frame(batch(i), ["a", "b", "y"], "CCB"))

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
