"""The one Secret that holds NATS's authorization: the members of every federation.

`FEDSTATS_OPERATOR_NATS_AUTH_SECRET` (`<namespace>/<name>`, set by the chart) names it.
The NATS pod's `authsync` sidecar watches it and writes its `auth.conf` where the server
`include`s it, then signals a reload. Without the setting the operator manages no NATS
users (a Federation then names shared credentials in spec.nats.authSecretRef, or none).

Every Federation and Peer reconcile changes only its own entry, over a cached copy of the
state in this process (the operator runs as one replica). Changes are group-committed:
one write is in flight at a time, and every change asked for meanwhile goes into the next
write together, so 50 Peers created at once make a handful of Secret writes (and as many
NATS reloads), not 50 in a row. A conflict with a writer elsewhere reloads the Secret and
applies the changes again.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import weakref
from collections.abc import Callable

from . import natsauth
from .errors import KubeConflict
from .kube import Kube
from .names import MANAGER
from .natsauth import AuthState, FederationAuth
from .types import Obj

SETTING = "FEDSTATS_OPERATOR_NATS_AUTH_SECRET"
LOCKED_KEY = "locked"

Change = Callable[[AuthState], None]


def configured() -> tuple[str, str] | None:
    """(namespace, name) of the auth Secret, or None when the operator manages no users."""
    raw = os.environ.get(SETTING, "").strip()
    if not raw:
        return None
    namespace, sep, name = raw.partition("/")
    if not sep or not namespace or not name:
        raise ValueError(f"{SETTING} must be <namespace>/<name>, not {raw!r}")
    return namespace, name


def desired_auth_secret(namespace: str, name: str, state: AuthState, locked: str) -> Obj:
    """The Secret as the operator writes it: the state, and the file rendered from it. Pure."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": MANAGER,
                                "app.kubernetes.io/component": "nats-auth"}},
        "type": "Opaque",
        # `data`, not stringData: server-side apply owns the field it wrote
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in {
            natsauth.STATE_FILE: natsauth.encode_state(state),
            natsauth.AUTH_FILE: natsauth.render_auth(state, locked),
            LOCKED_KEY: locked}.items()},
    }


class AuthStore:
    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self._lock = asyncio.Lock()
        self._state: AuthState | None = None
        self._locked = ""
        self._pending: list[tuple[Change, asyncio.Future[AuthState]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # Secret writes made (a test sees changes coalesce)

    async def _load(self) -> AuthState:
        secret = await self.kube.get("Secret", self.namespace, self.name)
        data = {k: base64.b64decode(v).decode() for k, v in ((secret or {}).get("data")
                                                               or {}).items()}
        self._locked = data.get(LOCKED_KEY) or secrets.token_urlsafe(32)
        return natsauth.decode_state(data.get(natsauth.STATE_FILE))

    async def read(self, account: str) -> FederationAuth | None:
        async with self._lock:
            if self._state is None:
                self._state = await self._load()
            return self._state.get(account)

    async def change(self, change: Change) -> AuthState:
        """Applies `change` to the state; returns once a write holding it is made (or none
        was needed). Changes asked for while a write is in flight share the next one."""
        future: asyncio.Future[AuthState] = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="nats auth writes")
        return await asyncio.shield(future)  # a cancelled caller does not stop the write

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                state = await self._write([change for change, _ in batch])
            except Exception as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(state)

    async def _write(self, batch: list[Change]) -> AuthState:
        async with self._lock:
            for attempt in range(3):
                if self._state is None:
                    self._state = await self._load()
                before = natsauth.encode_state(self._state)
                for change in batch:
                    change(self._state)
                if natsauth.encode_state(self._state) == before:
                    return self._state
                try:
                    await self.kube.apply(desired_auth_secret(self.namespace, self.name,
                                                              self._state, self._locked))
                    self.writes += 1
                    return self._state
                except KubeConflict:
                    self._state = None  # someone else wrote it: read theirs, apply ours again
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")


# One store per API connection: an operator run has one (a test may run several in turn,
# each on its own event loop, which its store's lock belongs to).
_stores: weakref.WeakKeyDictionary[Kube, AuthStore] = weakref.WeakKeyDictionary()


def store_of(kube: Kube) -> AuthStore | None:
    """The operator's one store (per API connection), or None without the setting."""
    where = configured()
    if where is None:
        return None
    found = _stores.get(kube)
    if found is None or (found.namespace, found.name) != where:
        found = _stores[kube] = AuthStore(kube, *where)
    return found
