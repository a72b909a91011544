"""Reconciling a Federation: its JetStream stream, its key, and its admin node.

Each step reports its own condition so that a NATS outage does not hide that the admin
node is deployed, and vice versa. The step that talks to the admin node's REST API (create
the federation there with the stream and key) is its own condition, `FederationConfigured`,
and is not part of `Ready` until the node's fedml API exists: see the module `handlers`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from fedstats.node.security.keys import new_secret_key

from . import builders, conditions, names, nats_admin
from .conditions import Condition
from .errors import NatsUnavailable
from .kube import Kube
from .nodes import apply_node, observe_node
from .outcome import Outcome

Body = Mapping[str, Any]


async def nats_auth(kube: Kube, fed: Body) -> nats_admin.NatsAuth:
    """The NATS credentials named by spec.nats.authSecretRef (none without one)."""
    ref = fed["spec"]["nats"].get("authSecretRef")
    if not ref:
        return nats_admin.NatsAuth()
    secret = await kube.get("Secret", fed["metadata"]["namespace"], ref["name"])
    if secret is None:
        raise NatsUnavailable(f"NATS auth Secret {ref['name']} does not exist", delay=15)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    if ref.get("tokenKey"):
        return nats_admin.NatsAuth(token=data.get(ref["tokenKey"]))
    return nats_admin.NatsAuth(user=data.get(ref.get("userKey", "user")),
                               password=data.get(ref.get("passwordKey", "password")))


async def _stream(kube: Kube, fed: Body, out: Outcome) -> Condition:
    wanted = nats_admin.desired_streams(fed)
    try:
        auth = await nats_auth(kube, fed)
        infos = await nats_admin.ensure_streams(fed["spec"]["nats"]["url"], auth, wanted)
    except NatsUnavailable as e:
        return out.fail(Condition("StreamReady", "False", "NatsUnavailable", str(e)), e)
    out.status["streams"] = [str(w.name) for w in wanted]
    return out.add(Condition("StreamReady", "True", "StreamsReady",
                             f"streams {', '.join(out.status['streams'])} on "
                             f"{fed['spec']['nats']['url']}, max_bytes={infos[0].config.max_bytes}"))


async def reconcile(kube: Kube, fed: Body) -> Outcome:
    """Stream, key Secret, admin node; conditions StreamReady, AdminDeployed, AdminAvailable."""
    out = Outcome()
    stream = await _stream(kube, fed, out)
    await kube.create_if_absent(builders.desired_federation_key_secret(fed, new_secret_key()))
    deployed = await apply_node(kube, fed, builders.desired_admin_deployment(fed))
    ingress = builders.desired_ingress(fed)
    if ingress is not None:
        await kube.apply(ingress)
    else:  # turned off after being on: remove what the operator made
        await kube.delete("Ingress", fed["metadata"]["namespace"], names.admin_name(fed))
    deployed = out.add(Condition("AdminDeployed", deployed.status, deployed.reason,
                                 deployed.message))
    seen = await observe_node(kube, fed, names.admin_name(fed))
    available = out.add(Condition("AdminAvailable", seen.status, seen.reason, seen.message))
    out.status["adminService"] = f"{names.admin_name(fed)}:{names.NODE_PORT}"
    out.add(Condition("FederationConfigured", "Unknown", "AwaitingNodeApi",
                      "creating the federation on the admin node needs its fedml REST API"))
    out.add(conditions.ready([stream, deployed, available]))
    return out


async def finalize(kube: Kube, fed: Body) -> list[str]:
    """Deletes the streams (owned objects go with the Federation); those that existed."""
    auth = await nats_auth(kube, fed)
    return await nats_admin.delete_streams(fed["spec"]["nats"]["url"], auth,
                                           names.stream_names(fed))
