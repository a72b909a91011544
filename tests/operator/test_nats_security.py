"""The operator's per-federation NATS accounts on a real nats-server, reloaded, not restarted.

The server runs from a main config that includes the auth file `natsauth` renders (as the
chart's NATS pod includes the operator's Secret); a change is applied by SIGHUP, nats-server's
reload signal, and the test checks the server process is the same one throughout.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from fedstats.node.federation.subjects import Names, inbox_prefix
from fedstats.operator.natsauth import (
    Member,
    account_name,
    accounts_config,
    federation_account,
    user_name,
)
from fedstats_harness.natsproc import nats_server_binary

ADMIN_A, P1, P2 = Member("admin", "pa"), Member("p1", "p1pw"), Member("p2", "p2pw")
ADMIN_B, Q1 = Member("admin", "pb"), Member("q1", "q1pw")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, workdir: Path) -> None:
        self.dir, self.port = workdir, _free_port()
        self.auth = workdir / "auth.conf"
        (workdir / "nats.conf").write_text(
            f'host: 127.0.0.1\nport: {self.port}\n'
            f'jetstream {{ store_dir: "{workdir / "js"}" }}\ninclude "auth.conf"\n')
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, peers_a: list[Member]) -> None:
        conf = accounts_config({
            account_name("fa"): federation_account("fa", "centralized", ADMIN_A, peers_a),
            account_name("fb"): federation_account("fb", "decentralized", ADMIN_B, [Q1]),
        })
        self.auth.write_text("accounts: " + json.dumps(conf["accounts"]) + "\n")

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.write([P1, P2])
    log = open(tmp_path / "nats.log", "wb")  # noqa: SIM115
    srv.proc = subprocess.Popen([nats_server_binary(), "-c", str(tmp_path / "nats.conf")],
                                stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", srv.port), 0.1).close()
            break
        except OSError:
            import time
            time.sleep(0.05)
    yield srv
    srv.proc.terminate()
    srv.proc.wait(10)
    log.close()


async def _connect(url: str, fed: str, m: Member) -> nats.NATS:
    errors: list[Exception] = []

    async def err(e: Exception) -> None:
        errors.append(e)

    nc = await nats.connect(url, user=user_name(fed, m.peer), password=m.password,
                            inbox_prefix=inbox_prefix(user_name(fed, m.peer)),
                            allow_reconnect=False, error_cb=err)
    nc._test_errors = errors  # type: ignore[attr-defined]
    return nc


def _login_refused(url: str, fed: str, m: Member) -> bool:
    """Whether the server refuses this member's login, spoken in NATS's own protocol.

    A raw socket rather than nats-py: a refused nats-py connect leaves its stream writer
    behind, to be collected after the event loop has closed (a ResourceWarning later).
    """
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"INFO ")
        connect = {"user": user_name(fed, m.peer), "pass": m.password, "verbose": False,
                   "pedantic": False, "protocol": 1}
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        answer = f.readline()
        f.close()
    if answer.startswith(b"PONG"):
        return False
    assert answer.startswith(b"-ERR"), answer
    return b"authorization violation" in answer.lower()


async def _refused_sub(nc: nats.NATS, subject: str) -> bool:
    await nc.subscribe(subject)
    await nc.flush()
    await asyncio.sleep(0.2)
    errs = nc._test_errors  # type: ignore[attr-defined]
    return any("permissions violation" in str(e).lower() for e in errs)


def test_centralized_peer_cannot_read_another_peers_statistics(server: Server) -> None:
    async def go() -> None:
        n = Names.of("fa")
        p1 = await _connect(server.url, "fa", P1)
        assert await _refused_sub(p1, f"{n.stats('p2')}.>")
        admin = await _connect(server.url, "fa", ADMIN_A)
        assert not await _refused_sub(admin, n.join)  # what it may: no violation
        p1_again = await _connect(server.url, "fa", P1)  # a fresh error list
        assert not await _refused_sub(p1_again, inbox_prefix(user_name("fa", "p1")) + ".>")
        await p1_again.close()
        await p1.close()
        await admin.close()
    asyncio.run(go())


def test_member_of_one_federation_sees_nothing_of_another(server: Server) -> None:
    async def go() -> None:
        nb = Names.of("fb")
        q1 = await _connect(server.url, "fb", Q1)  # a merger in fb
        got: list[bytes] = []

        async def cb(msg: Msg) -> None:
            got.append(msg.data)
        await q1.subscribe(nb.stats_all, cb=cb)  # allowed: fb is decentralized
        admin_b = await _connect(server.url, "fb", ADMIN_B)
        await admin_b.jsm().add_stream(name=nb.stats_stream, subjects=[nb.stats_all])
        await admin_b.publish(f"{nb.stats('q1')}.y", b"from-b")  # reaches q1: a control
        await admin_b.flush()
        await asyncio.sleep(0.3)
        assert got == [b"from-b"]
        got.clear()
        admin_a = await _connect(server.url, "fa", ADMIN_A)
        # the same subject names in the other account reach nobody in fb
        await admin_a.publish(f"{nb.stats('q1')}.x", b"from-a")
        await admin_a.flush()
        await asyncio.sleep(0.3)
        assert got == []
        assert not q1._test_errors  # type: ignore[attr-defined]
        # fb's streams do not exist for fa's admin (its JetStream is its own account's)
        js_b = admin_a.jsm()
        with pytest.raises(NatsError):
            await js_b.stream_info(nb.stats_stream)
        await q1.close()
        await admin_a.close()
        await admin_b.close()
    asyncio.run(go())


def test_new_peer_works_and_deleted_peer_is_refused_after_reload(server: Server) -> None:
    async def go() -> None:
        p3 = Member("p3", "p3pw")
        assert _login_refused(server.url, "fa", p3)
        pid = server.proc.pid if server.proc else None
        server.write([P1, P3 := p3])  # p2 deleted, p3 added
        server.reload()
        await asyncio.sleep(1.0)
        nc = await _connect(server.url, "fa", P3)
        await nc.publish(f"{Names.of('fa').stats('p3')}.0", b"x")
        await nc.flush()
        assert not nc._test_errors  # type: ignore[attr-defined]
        await nc.close()
        assert _login_refused(server.url, "fa", P2)
        assert not _login_refused(server.url, "fa", P1)  # a control: a kept member logs in
        assert server.proc is not None and server.proc.pid == pid
        assert server.proc.poll() is None  # never restarted
    asyncio.run(go())
