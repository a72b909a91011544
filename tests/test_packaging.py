"""The repository's layout must not break Python for someone standing in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_operator_folder_does_not_shadow_the_standard_library_at_the_repo_root() -> None:
    # `python -m ...` puts the working directory first on sys.path; with -S nothing has
    # imported the standard library's `operator` yet, so a regular package named
    # `operator/` here would be imported instead and break even `python -m venv`.
    done = subprocess.run([sys.executable, "-S", "-m", "json.tool", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_operator_is_importable_as_fedstats_operator() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import fedstats.operator.builders as b; print(b.__name__)"],
        cwd=REPO.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fedstats.operator.builders"
