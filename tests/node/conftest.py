"""Real nodes for the node tests: uvicorn on a free port, in a thread of this process.

`node_factory(tmp_path)` starts one (and stops it at teardown); `node` is one shared by a
module. Customers `c1` and `c2` each have a fresh secret key. Everything talks to the node
over real sockets with the project's own signed clients.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn

from fedstats.node.api.app import create_app
from fedstats.node.client import Client
from fedstats.node.client_ws import WsClient
from fedstats.node.security.keys import new_secret_key
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


def write_customers(path: Path, keys: dict[str, str]) -> Path:
    path.write_bytes(orjson.dumps(keys))
    return path


def serve(settings: Settings, keys: dict[str, str]) -> Iterator[Node]:
    """A node on a free port until the generator is closed."""
    write_customers(Path(settings.data_dir) / "customers.json", keys)
    settings.customers_file = Path(settings.data_dir) / "customers.json"
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws_max_size=settings.max_ws_message_bytes,
                            lifespan="on", ws="websockets-sansio")
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


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start nodes on fresh (or given) data dirs; all stopped at teardown."""
    running: list[Iterator[Node]] = []

    def start(data_dir: Path | None = None, keys: dict[str, str] | None = None,
              **overrides: Any) -> Node:
        d = data_dir or tmp_path / f"node{len(running)}"
        d.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=d, **overrides)
        gen = serve(settings, keys or {"c1": new_secret_key(), "c2": new_secret_key()})
        running.append(gen)
        return next(gen)

    yield start
    for gen in reversed(running):
        gen.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node shared by a test module (tests use their own project ids)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("node"), max_body_bytes=1 << 20,
                        checkpoint_every=4)
    gen = serve(settings, {"c1": new_secret_key(), "c2": new_secret_key()})
    yield next(gen)
    gen.close()


@pytest.fixture
def client(node: Node) -> Client:
    return node.client("c1")


_counter = iter(range(1_000_000))


@pytest.fixture
def pid(client: Client) -> str:
    """A fresh project of customer c1 on the shared node."""
    name = f"p{next(_counter)}"
    client.create_project(name)
    return name


def frame(rows: Any, names: list[str] | None = None, types: str | None = None) -> dict[str, Any]:
    """A DataFrame of numeric rows (all C unless `types` says otherwise)."""
    rows = [list(r) for r in rows]
    width = len(rows[0]) if rows else len(names or [])
    names = names or [f"x{j}" for j in range(width)]
    return {
        "attributeNames": names,
        "attributeTypes": list(types or "C" * width),
        "data": [[str(v) for v in r] for r in rows],
    }
