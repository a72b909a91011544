"""Fixtures of the delivery tests: helm, built from its Go module (skipped without Go).

The control plane and nats-server fixtures are the suite's own (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedstats_harness.helm import HelmUnavailable, helm


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    try:
        return helm()
    except HelmUnavailable as e:
        pytest.skip(str(e))
