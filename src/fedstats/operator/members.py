"""A federation member's NATS user: its credentials Secret, its entry in the auth store.

Shared by the Federation reconciler (the admin node's user) and the Peer reconciler (a
peer's user). The password is generated once, into a Secret the member owns and only its
pod mounts; the auth store then lists it in the federation's account, and the NATS pod's
sidecar reloads the server. `login` tells when that reload has happened.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time

from fedstats.node.federation.subjects import inbox_prefix

from . import authstore, builders, names, nats_admin, natsauth
from .errors import NatsUnavailable, WaitingFor
from .kube import Kube
from .types import Body


def managed(kube: Kube, fed: Body) -> authstore.AuthStore | None:
    """The auth store, when the operator manages this federation's NATS users: it is
    configured, and the Federation names no shared credentials of its own."""
    if fed["spec"]["nats"].get("authSecretRef"):
        return None
    return authstore.store_of(kube)


def account(fed: Body) -> str:
    return natsauth.account_name(names.federation_name(fed), fed["metadata"]["namespace"])


async def credentials(kube: Kube, owner: Body, fed: Body, peer: str) -> tuple[str, str]:
    """(user, password) of `owner` (the Federation: its admin node; or a Peer), made once."""
    user = natsauth.user_name(names.federation_name(fed), peer)
    wanted = builders.desired_nats_secret(owner, user, secrets.token_urlsafe(32))
    secret, created = await kube.create_if_absent(wanted)
    if created:
        return user, wanted["stringData"][names.NATS_PASSWORD_KEY]
    data = secret.get("data") or {}
    password = base64.b64decode(data.get(names.NATS_PASSWORD_KEY, "")).decode()
    if not password:
        raise WaitingFor(f"Secret {names.nats_secret(owner)} holds no password")
    return base64.b64decode(data.get(names.NATS_USER_KEY, "")).decode() or user, password


async def ca_of(kube: Kube, fed: Body) -> str | None:
    """The PEM of the CA named by spec.nats.tls.caSecretRef, for the operator's own client."""
    ref = (fed["spec"]["nats"].get("tls") or {}).get("caSecretRef")
    if not ref:
        return None
    secret = await kube.get("Secret", fed["metadata"]["namespace"], ref["name"])
    key = ref.get("key", names.NATS_CA_KEY)
    data = (secret or {}).get("data") or {}
    if key not in data:
        raise WaitingFor(f"Secret {ref['name']} with the NATS CA ({key}) does not exist yet")
    return base64.b64decode(data[key]).decode()


def auth_as(user: str, password: str, ca: str | None) -> nats_admin.NatsAuth:
    return nats_admin.NatsAuth(user=user, password=password, inbox_prefix=inbox_prefix(user),
                               ca=ca)


# How long a reconcile waits for NATS to accept a user it just wrote (the sidecar's watch
# and the server's reload take well under a second on an idle cluster, several seconds
# when 50 Peers are created at once), and how often it tries meanwhile: from LOGIN_TRY_S,
# each pause half again as long up to LOGIN_TRY_MAX_S, so 50 waiting Peers do not open
# hundreds of connections a second to the server they wait for.
LOGIN_WAIT_S, LOGIN_TRY_S, LOGIN_TRY_MAX_S = 20.0, 0.1, 1.0


async def await_login(url: str, auth: nats_admin.NatsAuth, within: float = LOGIN_WAIT_S,
                      ) -> None:  # fmt: skip
    """Returns once NATS accepts `auth`; NatsUnavailable (retried soon) after `within` s."""
    deadline = time.monotonic() + within
    pause = LOGIN_TRY_S
    while not await nats_admin.can_log_in(url, auth):
        if time.monotonic() > deadline:
            raise NatsUnavailable(f"NATS at {url} does not accept user {auth.user} yet "
                                  "(its auth file not reloaded?)", delay=1.0)
        await asyncio.sleep(pause)  # another process's reload: nothing to await
        pause = min(pause * 1.5, LOGIN_TRY_MAX_S)
