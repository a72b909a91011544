"""The operator's per-federation NATS accounts on a real nats-server, reloaded, not restarted.

The server runs from a main config that includes the auth file `natsauth` renders (as the
chart's NATS pod includes the operator's Secret); a change is applied by SIGHUP, nats-server's
reload signal, and the test checks the server process is the same one throughout.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from fedstats.node.federation.subjects import Names, inbox_prefix
from fedstats.operator.authstore import desired_auth_secret
from fedstats.operator.authsync import auth_text, signal_reload, write_if_changed
from fedstats.operator.natsauth import FederationAuth, Member, account_name, user_name
from fedstats_harness.natsproc import LISTENING, READY, nats_server_binary
from fedstats_harness.process import ChildProcess

ADMIN_A, P1, P2 = Member("admin", "pa"), Member("p1", "p1pw"), Member("p2", "p2pw")
ADMIN_B, Q1 = Member("admin", "pb"), Member("q1", "q1pw")


class Server:
    """nats-server from a main config that includes the auth file, as the chart's pod runs
    it; the auth file is written, and the reload signalled, as the `authsync` sidecar does."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.auth = workdir / "auth.conf"
        self.pid_file = workdir / "nats.pid"
        (workdir / "nats.conf").write_text(
            f'host: 127.0.0.1\nport: -1\npid_file: "{self.pid_file}"\n'
            f'jetstream {{ store_dir: "{workdir / "js"}" }}\ninclude "auth.conf"\n')
        self.child = ChildProcess([nats_server_binary(), "-c", str(workdir / "nats.conf")],
                                  workdir / "nats.log", name="nats-server")
        self.port = 0

    def write(self, peers_a: list[Member]) -> None:
        state = {
            account_name("fa"): FederationAuth("fa", "centralized", ADMIN_A.password,
                                               {p.peer: p.password for p in peers_a}),
            account_name("fb"): FederationAuth("fb", "decentralized", ADMIN_B.password,
                                               {Q1.peer: Q1.password}),
        }
        write_if_changed(self.auth, auth_text(desired_auth_secret("ns", "auth", state, "x")))

    def start(self) -> Server:
        self.child.start()
        self.port = int(self.child.wait_for_output(LISTENING, 15)["port"])
        self.child.wait_for_output(READY, 15)
        return self

    def reload(self) -> None:
        assert signal_reload(self.pid_file)
        self.child.wait_for_output(r"Reloaded server configuration", 15)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.write([P1, P2])
    yield srv.start()
    srv.child.stop()


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
    """Whether the server answers a subscription with a permissions violation.

    nats-py hands the server's -ERR to the error callback as it reads it, but the server
    may write it after the PONG of the flush that follows the SUB (seen on 2.15), so the
    answer is looked for over a window of round trips: a refusal ends it at once, an
    acceptance is taken when a second of round trips brought none."""
    errs = nc._test_errors  # type: ignore[attr-defined]

    def refused() -> bool:
        return any("permissions violation" in str(e).lower() for e in errs)

    await nc.subscribe(subject)
    await nc.flush()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while not refused() and loop.time() < deadline:
        await asyncio.sleep(0.05)
        await nc.flush()
    return refused()


def test_anonymous_clients_are_refused_even_before_the_operator_wrote_any_user(
        tmp_path: Path) -> None:
    srv = Server(tmp_path)
    write_if_changed(srv.auth, auth_text(None))  # what the init container writes first
    srv.start()
    try:
        assert _login_refused(srv.url, "fa", Member("admin", "")) is True
        host, port = "127.0.0.1", srv.port
        with socket.create_connection((host, port), timeout=5) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')  # no credentials
            assert b"authorization violation" in f.readline().lower()
            f.close()
    finally:
        srv.child.stop()


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


async def _delivered(receiver: nats.NATS, sub: Subscription) -> int:
    """Messages the server has delivered to `sub` so far: a flush of the receiver comes
    back after anything the server wrote to it before, and nats-py queues a message on
    its subscription as it reads it."""
    await receiver.flush()
    return sub.pending_msgs


def test_member_of_one_federation_sees_nothing_of_another(server: Server) -> None:
    async def go() -> None:
        nb = Names.of("fb")
        q1 = await _connect(server.url, "fb", Q1)  # a merger in fb
        sub = await q1.subscribe(nb.stats_all)  # allowed: fb is decentralized
        await q1.flush()
        admin_b = await _connect(server.url, "fb", ADMIN_B)
        await admin_b.jsm().add_stream(name=nb.stats_stream, subjects=[nb.stats_all])
        await admin_b.publish(f"{nb.stats('q1')}.y", b"from-b")  # reaches q1: a control
        await admin_b.flush()
        assert (await sub.next_msg(timeout=10)).data == b"from-b"
        admin_a = await _connect(server.url, "fa", ADMIN_A)
        # the same subject names in the other account reach nobody in fb
        await admin_a.publish(f"{nb.stats('q1')}.x", b"from-a")
        await admin_a.flush()  # the server has routed it (or not) by now
        assert await _delivered(q1, sub) == 0
        assert not q1._test_errors  # type: ignore[attr-defined]
        # fb's streams do not exist for fa's admin (its JetStream is its own account's)
        with pytest.raises(NatsError):
            await admin_a.jsm().stream_info(nb.stats_stream)
        await q1.close()
        await admin_a.close()
        await admin_b.close()
    asyncio.run(go())


def test_new_peer_works_and_deleted_peer_is_refused_after_reload(server: Server) -> None:
    async def go() -> None:
        p3 = Member("p3", "p3pw")
        assert _login_refused(server.url, "fa", p3)
        pid = server.child.pid
        server.write([P1, p3])  # p2 deleted, p3 added
        server.reload()  # returns once the server says it reloaded
        nc = await _connect(server.url, "fa", p3)
        await nc.publish(f"{Names.of('fa').stats('p3')}.0", b"x")
        await nc.flush()
        assert not nc._test_errors  # type: ignore[attr-defined]
        await nc.close()
        assert _login_refused(server.url, "fa", P2)
        assert not _login_refused(server.url, "fa", P1)  # a control: a kept member logs in
        assert server.child.pid == pid and server.child.running  # never restarted
    asyncio.run(go())
