"""Reconciling a Federation: its JetStream stream, its key, and its admin node.

Each step reports its own condition so that a NATS outage does not hide that the admin
node is deployed, and vice versa. The admin node creates the federation itself at start,
from its environment (role, federation key, NATS, schedule, topology); the operator then
checks it through the node's signed REST API (`FederationConfigured`, part of `Ready`) and
corrects the one setting a running federation can change, its pulse schedule.
"""

from __future__ import annotations

import asyncio
import base64
import time

from fedstats.node.federation.schedule import parse_schedule
from fedstats.node.security.keys import new_secret_key

from . import builders, conditions, members, names, nats_admin, natsauth, nodeapi, readiness
from .conditions import Condition
from .errors import NatsUnavailable, NodeRefused, RetryLater, WaitingFor
from .kube import Kube
from .nodes import apply_node, observe_node
from .outcome import Outcome
from .types import Body, FedInfo


async def nats_auth(kube: Kube, fed: Body) -> nats_admin.NatsAuth:
    """How the operator logs in to the federation's NATS: as its admin node's own user when
    the operator manages users, else the Secret spec.nats.authSecretRef names (or none)."""
    ca = await members.ca_of(kube, fed)
    if members.managed(kube, fed) is not None:
        user, password = await members.credentials(kube, fed, fed, natsauth.ADMIN_PEER)
        return members.auth_as(user, password, ca)
    ref = fed["spec"]["nats"].get("authSecretRef")
    if not ref:
        return nats_admin.NatsAuth(ca=ca)
    secret = await kube.get("Secret", fed["metadata"]["namespace"], ref["name"])
    if secret is None:
        raise NatsUnavailable(f"NATS auth Secret {ref['name']} does not exist", delay=15)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    if ref.get("tokenKey"):
        return nats_admin.NatsAuth(token=data.get(ref["tokenKey"]), ca=ca)
    return nats_admin.NatsAuth(user=data.get(ref.get("userKey", "user")),
                               password=data.get(ref.get("passwordKey", "password")), ca=ca)


async def _account(kube: Kube, fed: Body, out: Outcome) -> Condition | None:
    """NatsAccount: the federation's account and its admin user in the auth store (None
    when the operator manages no NATS users for it)."""
    store = members.managed(kube, fed)
    if store is None:
        return None
    _, password = await members.credentials(kube, fed, fed, natsauth.ADMIN_PEER)
    topology = fed["spec"].get("topology", "decentralized")

    def admit(state: natsauth.AuthState) -> None:
        entry = state.setdefault(members.account(fed), natsauth.FederationAuth(
            names.federation_name(fed), topology))
        entry.admin, entry.topology = password, topology

    await store.change(admit)
    out.status["natsAccount"] = members.account(fed)
    return out.add(Condition("NatsAccount", "True", "Written",
                             f"account {members.account(fed)} in Secret {store.name}"))


async def _stream(kube: Kube, fed: Body, out: Outcome) -> Condition:
    wanted = nats_admin.desired_streams(fed)
    try:
        auth = await nats_auth(kube, fed)
        if members.managed(kube, fed) is not None:
            await members.await_login(fed["spec"]["nats"]["url"], auth)
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
    account = await _account(kube, fed, out)
    stream = await _stream(kube, fed, out)
    await kube.create_if_absent(builders.desired_federation_key_secret(fed, new_secret_key()))
    deployed = await apply_node(kube, fed, builders.desired_admin_deployment(
        fed, managed_auth=account is not None))
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
    configured = await _configured(kube, fed, out, available.status == "True")
    steps = [stream, deployed, available, configured]
    out.add(conditions.ready([account, *steps] if account is not None else steps))
    return out


def check_info(fed: Body, info: FedInfo) -> str | None:
    """What in the admin node's fedInfo contradicts the Federation; None when nothing. Pure."""
    want = names.federation_name(fed)
    if info.get("fed_name") != want:
        return f"project {want} on the admin node belongs to federation {info.get('fed_name')!r}"
    if not info.get("fed_is_admin"):
        return f"project {want} on the admin node is a peer, not the federation's admin"
    topology = fed["spec"].get("topology", "decentralized")
    if info.get("fed_type") != topology:
        return f"the admin node runs a {info.get('fed_type')} federation, spec asks {topology}"
    return None


def joined_peers(info: FedInfo) -> list[str]:
    """The peer ids the admin node knows, itself excluded. Pure."""
    own = info.get("fed_peer_id")
    return sorted(str(p) for p in (info.get("peersInfo") or {}) if p != own)


# How long a reconcile keeps asking an admin node that is up (its pod ready) but has not
# created the federation yet (its bootstrap runs in the background), before kopf retries.
BOOTSTRAP_WAIT_S = 30.0


async def _info_once_bootstrapped(api: nodeapi.NodeApi, pid: str, node_up: bool) -> FedInfo:
    """The admin node's fedInfo; while its pod is up and it still refuses or fails, asked
    again every `readiness.POLL_S` (nothing in Kubernetes changes when it is done)."""
    deadline = time.monotonic() + (BOOTSTRAP_WAIT_S if node_up else 0.0)
    while True:
        try:
            return await api.fed_info(pid)
        except RetryLater:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(readiness.POLL_S)  # another process's state, read over REST


async def _configured(kube: Kube, fed: Body, out: Outcome, node_up: bool) -> Condition:
    """FederationConfigured: the admin node's fedInfo, and its schedule corrected to spec."""
    pid = names.federation_name(fed)
    try:
        api = await nodeapi.of_node(kube, fed)
        info = await _info_once_bootstrapped(api, pid, node_up)
        wrong = check_info(fed, info)
        if wrong is not None:
            return out.fail(Condition("FederationConfigured", "False", "Mismatch", wrong),
                            NodeRefused(wrong, 409, delay=nodeapi.RETRY_SECONDS))
        schedule = parse_schedule(fed["spec"].get("syncSchedule", "m30")).text
        if info.get("sync_sched") != schedule:
            await api.set_schedule(pid, schedule)
            out.event("Normal", "ScheduleChanged",
                      f"admin node's pulse schedule {info.get('sync_sched')} -> {schedule}")
            info["sync_sched"] = schedule
    except NodeRefused as e:
        return out.fail(Condition("FederationConfigured", "False", "NotConfigured",
                                  f"the admin node says: {e.node_message}"), e)
    except RetryLater as e:  # NodeUnreachable, or the customers Secret not there yet
        return out.fail(Condition("FederationConfigured", "False", "NodeUnreachable", str(e)), e)
    out.status["peers"] = joined_peers(info)
    pulse = "pulsing" if info.get("is_pulsing") else "not pulsing"
    return out.add(Condition(
        "FederationConfigured", "True", "Configured",
        f"federation {pid} on {api.url}: {info.get('fed_type')}, schedule "
        f"{info.get('sync_sched')}, {pulse}, {len(out.status['peers'])} peer(s) joined"))


async def finalize(kube: Kube, fed: Body) -> list[str]:
    """Stops the federation's nodes, then deletes its streams; returns those that existed.

    A running node rebuilds the streams it misses (memory streams are lost with a server),
    so the admin node and the nodes of the Peers that reference this Federation are scaled
    to zero first, and the streams go once their pods are gone. Owned objects go with the
    Federation; the Peers stay, waiting (`FederationFound=False`) for a Federation again.
    """
    namespace = fed["metadata"]["namespace"]
    peers = [p for p in await kube.list("Peer", namespace)
             if (p["spec"].get("federationRef") or {}).get("name") == fed["metadata"]["name"]]
    managed = members.managed(kube, fed) is not None
    stopped = [builders.desired_admin_deployment(fed, managed_auth=managed),
               *(builders.desired_peer_deployment(p, fed, managed_auth=managed)
                 for p in peers)]
    running = 0
    for dep in stopped:
        dep["spec"]["replicas"] = 0
        await kube.apply(dep)
        seen = await kube.get("Deployment", namespace, dep["metadata"]["name"])
        running += int(((seen or {}).get("status") or {}).get("replicas") or 0)
    if running:
        raise WaitingFor(f"the federation's nodes ({running} pod(s)) stop before its streams go",
                         delay=2)
    auth = await nats_auth(kube, fed)
    deleted = await nats_admin.delete_streams(fed["spec"]["nats"]["url"], auth,
                                              names.stream_names(fed))
    store = members.managed(kube, fed)
    if store is not None:  # the account last: deleting the streams needed its admin user
        def drop(state: natsauth.AuthState) -> None:
            state.pop(members.account(fed), None)

        await store.change(drop)
    return deleted
