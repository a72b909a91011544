"""The NATS auth store on a real API server: changes made at once share their writes.

50 Peers created together each add their user; the store writes the Secret once per batch
of changes that arrived while the previous write was in flight, so every user is in the
Secret after far fewer writes (and NATS reloads) than changes.
"""

from __future__ import annotations

import asyncio
import base64

import kopf

from fedstats.operator import natsauth
from fedstats.operator.authstore import AuthStore, Change
from fedstats.operator.kube import Kube
from fedstats_harness.controlplane import ControlPlane


def _kube(cp: ControlPlane) -> Kube:
    return Kube(kopf.ConnectionInfo(server=cp.server, ca_path=str(cp.dir / "ca.crt"),
                                    token=cp.token))


async def test_changes_made_together_are_written_together_and_none_is_lost(
        control_plane: ControlPlane, namespace: str) -> None:
    kube = _kube(control_plane)
    try:
        store = AuthStore(kube, namespace, "nats-auth")
        account = natsauth.account_name("demo", namespace)

        def admin(state: natsauth.AuthState) -> None:
            state[account] = natsauth.FederationAuth("demo", "centralized", admin="pw")

        await store.change(admin)

        def add(peer: str) -> Change:
            def change(state: natsauth.AuthState) -> None:
                state[account].peers[peer] = f"pw-{peer}"
            return change

        writes = store.writes
        peers = [f"p{i:02d}" for i in range(50)]
        await asyncio.gather(*(store.change(add(p)) for p in peers))
        assert 1 <= store.writes - writes < len(peers)

        # what a restarted operator reads back holds every one of them
        secret = await kube.get("Secret", namespace, "nats-auth")
        assert secret is not None
        state = natsauth.decode_state(
            base64.b64decode(secret["data"][natsauth.STATE_FILE]).decode())
        assert sorted(state[account].peers) == peers
        auth = base64.b64decode(secret["data"][natsauth.AUTH_FILE]).decode()
        assert all(natsauth.user_name("demo", p) in auth for p in peers)
        # a change that changes nothing writes nothing
        writes = store.writes
        await store.change(add("p00"))
        assert store.writes == writes
    finally:
        await kube.aclose()
