"""Real nodes for the abuse tests: uvicorn on a free port in a thread, as in tests/node.

`abuse_node` is one node with the default limits shared by a module; `limited_node(data_dir, **limits)`
starts one with some limits changed, on a fresh or given data dir (stopped at teardown). Customers `c1` and `c2`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import cast

import pytest

from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve

_ids = itertools.count()


def _keys() -> dict[str, str]:
    return {"c1": new_secret_key(), "c2": new_secret_key()}


def _serve(settings: Settings) -> Generator[Node, None, None]:
    return cast(Generator[Node, None, None], serve(settings, _keys()))


@pytest.fixture(scope="module")
def abuse_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    gen = _serve(Settings(data_dir=tmp_path_factory.mktemp("abuse")))
    yield next(gen)
    gen.close()


@pytest.fixture
def limited_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    running: list[Generator[Node, None, None]] = []

    def start(data_dir: Path | None = None, **limits: int) -> Node:
        from fedstats.node.limits import Limits

        d = data_dir or tmp_path / f"node{len(running)}"
        d.mkdir(exist_ok=True)
        gen = _serve(Settings(data_dir=d, limits=Limits().replace(**limits)))
        running.append(gen)
        return next(gen)

    yield start
    for gen in reversed(running):
        gen.close()


@pytest.fixture
def fresh_pid() -> Callable[[], str]:
    """Project ids unique within the test run (the module's node is shared)."""
    return lambda: f"p{next(_ids)}"
