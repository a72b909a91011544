"""A real nats-server per test module (JetStream, free port), as nats.py's own tests do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedstats_harness.natsproc import NatsServer


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    with server:
        yield server


@pytest.fixture
def nats_dir(tmp_path: Path) -> Path:
    return tmp_path / "nats"
