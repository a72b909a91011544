"""Forget refuses what would corrupt a project: a frame lacking the project's attributes,
and rows that were never learned (a negative variance); the project stays as it was."""

from __future__ import annotations

import pytest

from fedstats.node.client import ApiError, Client
from fedstats_harness.frames import frame


def test_forget_without_every_attribute_is_refused(client: Client, pid: str) -> None:
    client.learn(pid, frame([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], names=["a", "b"]))
    with pytest.raises(ApiError) as e:
        client.forget(pid, frame([[1.0]], names=["a"]))
    assert e.value.http_status == 400 and "'b'" in e.value.message
    assert client.project_info(pid)["rows"] == 3


def test_forgetting_rows_never_learned_is_refused(client: Client, pid: str) -> None:
    rows = [[1.0, 0], [2.0, 1], [3.0, 1], [4.0, 0], [5.0, 1]]
    client.learn(pid, frame(rows, names=["a", "b"], types="CB"))
    before = client.explore(pid, "uni", {})
    with pytest.raises(ApiError) as e:
        client.forget(pid, frame([[100.0, 1], [-100.0, 0]], names=["a", "b"], types="CB"))
    assert e.value.http_status == 400 and "were not learned" in e.value.message
    # a conditional variance alone going negative is refused too
    with pytest.raises(ApiError) as e:
        client.forget(pid, frame([[2.0, 1], [50.0, 1], [3.0, 0]], names=["a", "b"],
                                 types="CB"))
    assert e.value.http_status == 400 and "were not learned" in e.value.message
    assert client.explore(pid, "uni", {}) == before
    client.forget(pid, frame([[2.0, 1], [4.0, 0]], names=["a", "b"], types="CB"))
    uni = client.explore(pid, "uni", {})["a"]
    assert uni["count"] == 3 and uni["variance"] == pytest.approx(4.0)
