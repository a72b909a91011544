"""The array-module switch: numpy on every machine, CuPy for `gpu` projects.

CuPy is imported only when a GPU engine is asked for, so CPU-only machines never need it
installed. Everything in the engine takes its array module from here (`xp`), and hands
plain numpy arrays to the outside world (`to_numpy`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

ENGINES = ("cpu", "gpu")


class EngineUnavailable(RuntimeError):
    """The asked-for engine cannot run on this machine (no CuPy, or no CUDA device)."""


def array_module(engine: str = "cpu") -> ModuleType:
    """Return numpy for `cpu`, CuPy for `gpu` (imported only now)."""
    if engine == "cpu":
        return np
    if engine != "gpu":
        raise ValueError(f"unknown engine {engine!r}: expected one of {ENGINES}")
    try:
        import cupy  # imported only when a GPU project asks
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise EngineUnavailable("engine 'gpu' needs CuPy (pip install fedstats[gpu])") from e
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:  # pragma: no cover
            raise EngineUnavailable("engine 'gpu' needs a CUDA device; none is visible")
    except cupy.cuda.runtime.CUDARuntimeError as e:  # pragma: no cover
        raise EngineUnavailable(f"engine 'gpu' cannot reach CUDA: {e}") from e
    return cupy  # pragma: no cover


def gpu_available() -> bool:
    """True when a `gpu` engine can run here (CuPy importable and a device visible)."""
    try:
        array_module("gpu")
    except EngineUnavailable:
        return False
    return True


def module_of(a: Any) -> ModuleType:
    """The array module an array belongs to."""
    if isinstance(a, np.ndarray):
        return np
    mod = type(a).__module__.split(".")[0]
    if mod == "cupy":  # pragma: no cover - GPU only
        import cupy

        return cupy
    return np


def to_numpy(a: Any) -> np.ndarray:
    """A numpy copy (or view) of any engine array."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if get is not None:  # pragma: no cover - GPU only
        return np.asarray(get())
    return np.asarray(a)
