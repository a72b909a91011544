"""Real nodes for the node tests: uvicorn on a free port, in a thread of this process.

`node_factory(tmp_path)` starts one (and stops it at teardown); `node` is one shared by a
module. Customers `c1` and `c2` each have a fresh secret key. Everything talks to the node
over real sockets with the project's own signed clients (`fedstats_harness.inprocess`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fedstats.node.client import Client
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start nodes on fresh (or given) data dirs; all stopped at teardown."""
    running: list[Iterator[Node]] = []

    def start(data_dir: Path | None = None, keys: dict[str, str] | None = None,
              **overrides: Any) -> Node:
        d = data_dir or tmp_path / f"node{len(running)}"
        d.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=d, **overrides)
        gen = serve(settings, keys or {"c1": new_secret_key(), "c2": new_secret_key()})
        running.append(gen)
        return next(gen)

    yield start
    for gen in reversed(running):
        gen.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node shared by a test module (tests use their own project ids)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("node"), max_body_bytes=1 << 20,
                        checkpoint_every=4)
    gen = serve(settings, {"c1": new_secret_key(), "c2": new_secret_key()})
    yield next(gen)
    gen.close()


@pytest.fixture
def client(node: Node) -> Client:
    return node.client("c1")


_counter = itertools.count()


@pytest.fixture
def pid(client: Client) -> str:
    """A fresh project of customer c1 on the shared node."""
    name = f"p{next(_counter)}"
    client.create_project(name)
    return name
