"""nats-server under the harness: the port it chose, read from its log, kept on restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from fedstats_harness.natsproc import NatsServer


async def _round_trip(url: str) -> bytes:
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        sub = await nc.subscribe("ping")
        await nc.publish("ping", b"pong")
        return bytes((await sub.next_msg(timeout=5)).data)
    finally:
        await nc.close()


def test_the_server_listens_on_the_port_its_log_names(tmp_path: Path) -> None:
    server = NatsServer(tmp_path)
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.url
    with server:
        assert server.port is not None and server.port != 4222  # chosen, not the default
        assert f"client connections on 127.0.0.1:{server.port}" in server.log_text()
        assert asyncio.run(_round_trip(server.url)) == b"pong"


def test_a_stopped_or_killed_server_starts_again_on_the_same_port(tmp_path: Path) -> None:
    with NatsServer(tmp_path) as server:
        url = server.url
        server.restart()
        assert server.url == url and asyncio.run(_round_trip(url)) == b"pong"
        server.kill()
        assert not server.running
        server.start()
        assert server.url == url and asyncio.run(_round_trip(url)) == b"pong"
