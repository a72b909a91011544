"""Stand-ins for nodes around a federation `Agent`, for tests below the REST API.

An `AgentNode` is what a node gives its agent: an accumulator, a SQLite state file and a
saved configuration; the agent talks to a real nats-server. `until` awaits the agent's
`changed` condition (notified on every message it takes in), so a test waits for the
event it expects rather than for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.federation.agent import Agent
from fedstats.node.federation.state import FedConfig, FedState

from .natsproc import NatsServer

COLS = ["a", "b", "c", "y"]
_RNG = np.random.default_rng(3)


class AgentNode:
    """A stand-in for a node: an accumulator, a state file, an agent (customer `c1`)."""

    def __init__(self, server: NatsServer, root: Path, name: str, key: str, fed: str,
                 **kw: Any) -> None:  # fmt: skip
        self.name, self.acc = name, Accumulator()
        self.state = FedState(root / name / "federation.sqlite")
        role = "admin" if name == "admin" else "peer"
        self.config = FedConfig(
            fed_name=fed,
            fed_secret_key=key,
            role=role,
            peer_id=name,
            nats_hosts=[server.url],
            nats_req_timeout=5,
            sync_sched="s1",
            nats_stream_max_memory=8 << 20,
            **kw,
        )
        self.state.save_config("c1", name, self.config)
        self.agent = self.new_agent()

    def new_agent(self, **kw: Any) -> Agent:
        config = self.state.config("c1", self.name)
        assert config is not None
        return Agent("c1", self.name, config, self.state, lambda: self.acc, **kw)

    def learn(self, rows: np.ndarray) -> None:
        self.acc.learn_array(rows, COLS)


async def until(agent: Agent, test: Callable[[], bool], timeout: float = 15.0) -> None:
    """Returns once `test()` holds, re-checked each time the agent takes in a message."""
    async with agent.changed:
        await asyncio.wait_for(agent.changed.wait_for(test), timeout)


def merged(node: AgentNode) -> Accumulator:
    """The node's own statistics merged with every peer's it holds."""
    return Accumulator.merged([node.acc, *node.agent.peer_accumulators()])


def rows(n: int) -> np.ndarray:
    """`n` rows of COLS with y linear in the rest; a large offset: merges must stay exact."""
    x = _RNG.normal(size=(n, 3)) + 1e6
    y = x @ [1.5, -2.0, 0.5] + _RNG.normal(size=n)
    return np.column_stack([x, y])
