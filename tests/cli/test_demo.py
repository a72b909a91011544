"""`fedstats demo`, the README's main job, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("algo", ["mlr", "lda"])
def test_the_demo_prints_the_federated_model_identical_to_the_pooled_one(algo: str) -> None:
    done = subprocess.run([sys.executable, "-m", "fedstats.cli", "demo", "--algo", algo],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "joined with a one-time invitation" in out
    assert "forgot" in out
    # once on all rows, once more after the forget
    assert out.count("IDENTICAL") == 2, out[-3000:]
    assert "DIFFERENT" not in out
