"""Model store tests: real `fedstats node` processes, spoken to over plain HTTP.

`ms_nodes(name, config=None)` starts a node whose model store configuration is `config`
(FEDSTATS_MODELSTORE), customers `c1` and `c2`, more variables in `env`; all are stopped when the module ends.
`node` is one such node per module, `c1` its model store admin. `call(node, method,
params)` / `call_ok(...)` are a third-party client's calls (`fedstats_harness.jsonrpc`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fedstats.node.security.keys import new_secret_key
from fedstats_harness import jsonrpc
from fedstats_harness.localnet import NodeProcess

KEYS = {"c1": new_secret_key(), "c2": new_secret_key()}


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return KEYS


@pytest.fixture(scope="module")
def ms_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., NodeProcess]]:
    root = tmp_path_factory.mktemp("modelstore")
    started: list[NodeProcess] = []

    def start(name: str, config: dict[str, Any] | None = None,
              env: dict[str, str] | None = None) -> NodeProcess:
        env = {"FEDSTATS_MODELSTORE": json.dumps(config or {}), **(env or {})}
        node = NodeProcess(name, root, KEYS, env=env)
        started.append(node)
        return node.start()

    yield start
    for node in reversed(started):
        node.stop()


@pytest.fixture(scope="module")
def node(ms_nodes: Callable[..., NodeProcess]) -> NodeProcess:
    return ms_nodes("solo", {"admins": ["c1"], "tenant_id": "solo-tenant",
                             "tenant_name": "Solo", "location": [139.7, 35.7],
                             "stores": {"ddc:quota": {"quota": {"max_models": 2,
                                                                "max_bytes": 100}}}})


@pytest.fixture(scope="module")
def call() -> Callable[..., Any]:
    def fn(node: NodeProcess, method: str, params: Any = None, cid: str = "c1") -> Any:
        return jsonrpc.rpc(node.url, method, params, cid, KEYS[cid])
    return fn


@pytest.fixture(scope="module")
def call_ok() -> Callable[..., Any]:
    def fn(node: NodeProcess, method: str, params: Any = None, cid: str = "c1") -> Any:
        return jsonrpc.ok(node.url, method, params, cid, KEYS[cid])
    return fn
