"""The secured path on a real control plane: the operator makes NATS's users, the sidecar
applies them to a running nats-server by reload, and the nodes' pods use their own.

NATS runs as the chart's pod does: a config that includes `auth.conf`, written first by
`authsync --once` (the init container) and then kept by `authsync` watching the operator's
Secret through the API server (the sidecar), which signals the server through its pid
file. The nodes are the Deployments' pods, run by `LocalKubelet`. A centralized federation,
so that what a peer may not read is something the others do publish.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from kopf.testing import KopfRunner

from fedstats.node.federation.subjects import Names, inbox_prefix
from fedstats.node.security.invites import open_invite
from fedstats.operator.authstore import SETTING
from fedstats.operator.nodeapi import URLS_SETTING
from fedstats_harness.controlplane import ControlPlane
from fedstats_harness.k8s import apply, get, manifest, wait
from fedstats_harness.kubelet import LocalKubelet
from fedstats_harness.natsproc import LISTENING, READY, nats_server_binary
from fedstats_harness.process import ChildProcess
from fedstats_harness.waiting import eventually

NS = "t-nats-auth-pods"
PEERS = ("hospital-a", "hospital-b")
NODES = ("demo-admin", *(f"{p}-peer" for p in PEERS), "hospital-c-peer")


class SecuredNats:
    """nats-server with the operator's auth file, kept by the authsync sidecar."""

    def __init__(self, cp: ControlPlane, root: Path) -> None:
        self.root = root
        self.pid_file, self.auth = root / "nats.pid", root / "auth" / "auth.conf"
        self.auth.parent.mkdir(parents=True)
        (root / "nats.conf").write_text(
            f'host: 127.0.0.1\nport: -1\npid_file: "{self.pid_file}"\nmax_payload: 8MB\n'
            f'jetstream {{ store_dir: "{root / "js"}" }}\ninclude "auth/auth.conf"\n')
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
        argv = [sys.executable, "-m", "fedstats.operator.authsync", f"--secret={NS}/nats-auth",
                f"--file={self.auth}", f"--pid-file={self.pid_file}"]
        init = ChildProcess([*argv, "--once"], root / "init.log", env=env).start()
        init.wait_stopped(60)
        assert self.auth.exists(), init.log_text()
        self.server = ChildProcess([nats_server_binary(), "-c", str(root / "nats.conf")],
                                   root / "nats.log", name="nats-server").start()
        self.port = int(self.server.wait_for_output(LISTENING, 15)["port"])
        self.server.wait_for_output(READY, 15)
        self.sidecar = ChildProcess(argv, root / "authsync.log", env=env,
                                    name="authsync").start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.sidecar.stop()
        self.server.stop()


def credentials(cp: ControlPlane, member: str) -> tuple[str, str]:
    data = get(cp, NS, "secret", f"{member}-nats")["data"]
    return (base64.b64decode(data["user"]).decode(),
            base64.b64decode(data["password"]).decode())


def login_refused(url: str, user: str, password: str) -> bool:
    """NATS's own answer to a login, over a raw socket (see test_nats_security)."""
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as s:
        f = s.makefile("rb")
        f.readline()
        connect = {"user": user, "pass": password, "verbose": False, "protocol": 1}
        s.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        answer = f.readline()
        f.close()
    return not answer.startswith(b"PONG")


def peer(name: str) -> dict[str, Any]:
    obj = manifest("peer-cpu.yaml")
    obj["metadata"]["name"] = name
    return obj


@pytest.fixture(scope="module")
def secured(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[ControlPlane, SecuredNats, LocalKubelet]]:  # fmt: skip
    cluster.kubectl("create", "namespace", NS)
    nats_proc = SecuredNats(cluster, tmp_path_factory.mktemp("nats"))
    try:
        with pytest.MonkeyPatch.context() as mp, \
                LocalKubelet(cluster, NS, tmp_path_factory.mktemp("pods")) as kubelet:
            mp.setenv(URLS_SETTING, orjson.dumps(kubelet.url_map(*NODES)).decode())
            mp.setenv(SETTING, f"{NS}/nats-auth")
            mp.setenv("KUBECONFIG", str(cluster.kubeconfig))
            args = ["run", "--standalone", "--namespace", NS, "-m", "fedstats.operator.handlers"]
            with KopfRunner(args, timeout=60) as runner:
                apply(cluster, NS, manifest("federation.yaml", nats_proc.url,
                                            syncSchedule="s1", topology="centralized"))
                for name in PEERS:
                    apply(cluster, NS, peer(name))
                for node in NODES[:-1]:
                    kubelet.start(node)
                wait(cluster, NS, "federation/demo")
                for name in PEERS:
                    wait(cluster, NS, f"peer/{name}")
                yield cluster, nats_proc, kubelet
                cluster.kubectl("delete", "-n", NS, "federation", "demo", "--timeout=60s")
            assert runner.exception is None, runner.output
    finally:
        nats_proc.stop()
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_the_invitation_carries_the_peers_own_nats_user_never_the_admins(secured):
    cp, _, _ = secured
    data = {k: base64.b64decode(v).decode() for k, v in
            get(cp, NS, "secret", "hospital-a-peer-invitation")["data"].items()}
    opened = open_invite(data["password"], data["invitation"])
    user, password = credentials(cp, "hospital-a-peer")
    assert (opened["nats_sec_user"], opened["nats_sec_passwd"]) == (user, password)
    admin_user, admin_password = credentials(cp, "demo-admin")
    assert admin_user not in str(opened) and admin_password not in str(opened)


def test_a_members_secrets_are_mounted_into_its_pod_only(secured):
    cp, _, _ = secured
    deployments = get(cp, NS, "deployments")["items"]
    seen: dict[str, set[str]] = {}
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for c in pod["containers"]
                for e in c.get("env", []) if "secretKeyRef" in (e.get("valueFrom") or {})}
        seen[dep["metadata"]["name"]] = refs | {
            v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for name, secrets in seen.items():
        assert f"{name}-nats" in secrets
        others = set().union(*(s for n, s in seen.items() if n != name))
        assert not secrets & others, (name, secrets & others)


def test_a_centralized_peer_is_refused_reading_another_peers_statistics(secured):
    cp, nats_proc, _ = secured
    user, password = credentials(cp, "hospital-a-peer")
    fed_name = get(cp, NS, "federation", "demo")["spec"]["federationName"]

    async def attempt() -> str:
        seen: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(e: Exception) -> None:
            await seen.put(str(e))

        nc = await nats.connect(nats_proc.url, user=user, password=password,
                                inbox_prefix=inbox_prefix(user), allow_reconnect=False,
                                error_cb=on_error)
        await nc.subscribe(f"{Names.of(fed_name).stats('hospital-b')}.>")
        await nc.flush()
        message = await asyncio.wait_for(seen.get(), 10)
        await nc.close()
        return message

    assert "permissions violation" in asyncio.run(attempt()).lower()


def test_a_new_peer_joins_and_a_deleted_peers_user_is_refused_without_a_restart(secured):
    cp, nats_proc, kubelet = secured
    pid = nats_proc.server.pid
    apply(cp, NS, peer("hospital-c"))
    kubelet.start("hospital-c-peer")
    wait(cp, NS, "peer/hospital-c")  # Joined: over NATS, as its own new user
    user, password = credentials(cp, "hospital-b-peer")
    assert not login_refused(nats_proc.url, user, password)
    cp.kubectl("delete", "-n", NS, "peer", "hospital-b", "--wait=false")
    # within seconds: the sidecar hears of the Secret's change at once (no kubelet refresh)
    eventually(lambda: login_refused(nats_proc.url, user, password), timeout=10,
               what="hospital-b's NATS user to be refused")
    assert nats_proc.server.pid == pid and nats_proc.server.running  # reloaded, never restarted
    c_user, c_password = credentials(cp, "hospital-c-peer")
    assert not login_refused(nats_proc.url, c_user, c_password)
