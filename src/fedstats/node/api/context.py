"""What a handler needs from the app: the service, the worker threads, the metrics.

CPU work (parsing, statistics, SQLite commits) runs on the app's own thread pool, sized by
`Settings.worker_threads`, never on the event loop and never on anyio's shared default
limiter, which the rest of the app (and FastAPI's sync dependencies) also draw from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from ..limits import Limits
from ..service import ProjectService

T = TypeVar("T")


def service_of(conn: HTTPConnection) -> ProjectService:
    return conn.app.state.service


def limits_of(conn: HTTPConnection) -> Limits:
    """The node's data limits (`Settings.limits`), handed to the parsers and the service."""
    return conn.app.state.settings.limits


async def run_sync(conn: HTTPConnection, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the app's worker threads."""
    executor: ThreadPoolExecutor = conn.app.state.executor
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


# Below this many body bytes, parsing + the arithmetic take less time than a hop to a
# worker thread and back (~50-100 µs): small predictions run inline on the event loop.
INLINE_BYTES = 16 * 1024


async def run_sized(conn: HTTPConnection, size: int, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` inline when the input is small, else on the worker threads."""
    if size <= INLINE_BYTES:
        return fn(*args)
    return await run_sync(conn, fn, *args)
