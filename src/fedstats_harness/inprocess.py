"""A node served in a thread of this process: uvicorn on a socket bound to port 0.

For tests that reach into a node while talking to it over real sockets (its app state,
its settings). The socket is bound and listening before uvicorn starts, so the port is
known at once, and uvicorn says when it is serving (an event, not a polling loop).
`serve` is a generator: the node runs until it is closed.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from fedstats.node.api.app import create_app
from fedstats.node.api.server import config as server_config
from fedstats.node.client import Client
from fedstats.node.client_ws import WsClient
from fedstats.node.settings import Settings


@dataclass
class Node:
    url: str
    settings: Settings
    keys: dict[str, str]
    app: Any
    clients: list[Client] = field(default_factory=list)

    def client(self, cid: str = "c1") -> Client:
        c = Client(self.url, cid, self.keys[cid])
        self.clients.append(c)
        return c

    def ws(self, cid: str = "c1") -> WsClient:
        return WsClient(self.url, cid, self.keys[cid])


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening (an event, not a polling loop)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def serve(settings: Settings, keys: dict[str, str]) -> Iterator[Node]:
    """A node with customers `keys` on a free port until the generator is closed."""
    customers = Path(settings.data_dir) / "customers.json"
    customers.write_bytes(orjson.dumps(keys))
    settings.customers_file = customers
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = server_config(app, settings, log_level="warning", lifespan="on")
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve([sock])), daemon=True)
    thread.start()
    if not server.ready.wait(30):
        raise RuntimeError("the node did not start")
    node = Node(f"http://127.0.0.1:{port}", settings, keys, app)
    try:
        yield node
    finally:
        for c in node.clients:
            c.close()
        server.should_exit = True
        thread.join(30)
        sock.close()
