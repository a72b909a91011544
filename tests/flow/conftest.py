"""A node serving FATE-Flow's /v1, and fate-client 1.11.3's real `flow` CLI beside it.

The CLI lives in its own virtual environment (it pins click < 8 and needs urllib3 < 2),
created here when missing, under ~/.cache/fedstats/fateclient (or $FEDSTATS_FATE_VENV).
Without PyPI the client tests are skipped with that reason; the rest still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import cast

import pytest

from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.fateflow import serve_job_node
from fedstats_harness.inprocess import Node, serve

VENV = Path(os.environ.get("FEDSTATS_FATE_VENV",
                           Path.home() / ".cache" / "fedstats" / "fateclient"))


@pytest.fixture(scope="session")
def flow_bin() -> Path:
    """The `flow` executable of fate-client 1.11.3 (the venv made when missing)."""
    flow = VENV / "bin" / "flow"
    if not flow.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        r = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "fate-client==1.11.3",
                            "urllib3<2"], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.skip(f"fate-client 1.11.3 could not be installed from PyPI: {r.stderr[-400:]}")
    return flow


@pytest.fixture(scope="module")
def flow_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node with customers c1, c2 and a server root for `use_local_data: 0` paths."""
    d = tmp_path_factory.mktemp("flownode")
    root = d / "root"
    root.mkdir()
    (d / "data").mkdir()
    old = os.environ.get("FEDSTATS_FLOW_ROOT")
    os.environ["FEDSTATS_FLOW_ROOT"] = str(root)
    try:
        gen = cast(Generator[Node, None, None],
                   serve(Settings(data_dir=d / "data"), {"c1": new_secret_key(), "c2": new_secret_key()}))
        node = next(gen)
    finally:
        if old is None:
            del os.environ["FEDSTATS_FLOW_ROOT"]
        else:
            os.environ["FEDSTATS_FLOW_ROOT"] = old
    yield node
    gen.close()


@pytest.fixture(scope="module")
def job_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node running FATE jobs for party ids 9999 and 10000 (FATE standalone style)."""
    d = tmp_path_factory.mktemp("jobnode")
    (d / "root").mkdir()
    (d / "data").mkdir()
    yield from serve_job_node(d / "data", d / "root", {"c1": new_secret_key()})
