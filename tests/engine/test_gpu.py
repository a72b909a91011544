"""The CuPy engine gives the CPU engine's statistics, and CPU machines never import CuPy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import decode_snapshot, encode_snapshot
from fedstats.node.engine.xp import gpu_available, to_numpy

COLS = ["a", "b", "c", "y"]


@pytest.fixture
def rows() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(800, 4)) + np.array([1e6, -3.0, 0.0, 0.0])
    x[:, 3] = rng.integers(0, 2, size=800)
    return x


def learned(x: np.ndarray, engine: str, batches: int = 4) -> Accumulator:
    acc = Accumulator(engine=engine)
    for part in np.array_split(x, batches):
        acc.learn_array(part, COLS, binary=["y"])
    return acc


def test_importing_the_engine_does_not_import_cupy() -> None:
    # A finder that records every attempt: the check must bite where CuPy is not installed
    # too, so "not in sys.modules" alone would prove nothing on this machine.
    code = (
        "import sys\n"
        "tried = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'cupy':\n"
        "            tried.append(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import fedstats.node.engine.codec\n"
        "from fedstats.node.engine.accumulator import Accumulator\n"
        "Accumulator().learn_array([[1.0, 2.0]], ['a', 'b'])\n"
        "assert 'cupy' not in sys.modules and not tried, tried\n"
        # and the spy does see an import when one is made: asking for the GPU engine
        "from fedstats.node.engine.xp import gpu_available\n"
        "gpu_available()\n"
        "assert tried, 'the spy saw no import of cupy'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="engine 'gpu' needs CuPy and a visible CUDA device")
class TestGpuEngine:
    def test_learn_gives_the_cpu_engine_moments(self, rows: np.ndarray) -> None:
        gpu, cpu = learned(rows, "gpu"), learned(rows, "cpu")
        assert type(gpu.total.m2).__module__.startswith("cupy")
        assert gpu.allclose(cpu, rtol=1e-12, atol=1e-9)

    def test_merge_of_gpu_parts_equals_the_cpu_whole(self, rows: np.ndarray) -> None:
        parts = [learned(p, "gpu", 1) for p in np.array_split(rows, 3)]
        assert Accumulator.merged(parts, engine="gpu").allclose(learned(rows, "cpu"))

    def test_forget_is_the_inverse_of_learn(self, rows: np.ndarray) -> None:
        acc = learned(rows, "gpu")
        acc.forget_array(rows[500:], COLS, binary=["y"])
        assert acc.allclose(learned(rows[:500], "cpu"), rtol=1e-9, atol=1e-6)

    def test_huge_offsets_keep_the_variance(self, rows: np.ndarray) -> None:
        acc = learned(rows, "gpu", 9)
        exact = np.var(rows[:, 0] - 1e6)
        assert float(to_numpy(acc.total.variance())[0]) == pytest.approx(exact, rel=1e-9)

    def test_snapshots_move_between_engines_bit_for_bit(self, rows: np.ndarray) -> None:
        gpu = learned(rows, "gpu")
        data = encode_snapshot(gpu)
        on_cpu = decode_snapshot(data, engine="cpu")
        back_on_gpu = decode_snapshot(data, engine="gpu")
        assert encode_snapshot(on_cpu) == data == encode_snapshot(back_on_gpu)
        assert on_cpu.allclose(learned(rows, "cpu"))
