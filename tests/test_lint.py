"""The code stays ruff- and mypy-clean (pyproject.toml) and keeps its import contracts (.importlinter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]


@pytest.mark.slow
def test_mypy_finds_nothing_in_the_sources() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "src"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]


def test_the_import_contracts_hold() -> None:
    # .importlinter: the node's layers, a pure core without HTTP/NATS/Kubernetes, a light
    # operator, and shipped modules that never import the harness.
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
