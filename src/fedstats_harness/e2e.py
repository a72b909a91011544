"""`e2e/drive.py`, the kind flow's driver, loaded as a module for the tests that run it.

The driver is a script run from `e2e/run.sh` against port-forwarded Services; the tests
run the same code against local nodes (tests/delivery) and the operator's pods run
locally (tests/operator). `e2e/` is a folder of scripts, not a package, so it is loaded
from its file, once.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from .controlplane import REPO

DRIVER = REPO / "e2e" / "drive.py"


@cache
def driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("e2e_drive", DRIVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
