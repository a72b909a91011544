"""Fixtures of the delivery tests: helm, and the operator tests' real control plane.

The control plane fixtures are the ones in tests/operator/conftest.py, loaded from that file
and re-exported here (a conftest's fixtures are only seen below its folder), so both suites
run the same etcd + kube-apiserver (+ controller-manager, scheduler, kwok) set-up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from .chart import HelmUnavailable, helm

_OPERATOR_CONFTEST = Path(__file__).resolve().parents[1] / "operator" / "conftest.py"


def _load_operator_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fedstats_tests_operator_conftest",
                                                  _OPERATOR_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_op = _load_operator_conftest()
k8s_bin = _op.k8s_bin
control_plane = _op.control_plane
cluster = _op.cluster
nats_server = _op.nats_server


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    try:
        return helm()
    except HelmUnavailable as e:
        pytest.skip(str(e))
