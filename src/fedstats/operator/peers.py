"""Reconciling a Peer: its Federation (when referenced), its invitation, its node, its joining.

A Peer whose Federation does not exist yet is not an error of the Peer: it waits, with
`FederationFound=False`, and is looked at again (so does one whose Federation is being
deleted: the Federation's finalizer stops the peer's node and nothing restarts it). A Peer of this cluster's Federation gets
an invitation the admin node issues for it (`fed_peer_id` = the Peer's name, a generated
password), kept in a Secret the Peer owns: the invitation is one-time, so the Secret is
both the node's source and the record that it was issued, and a restarted operator never
asks for a second. A Peer by `inviteSecretRef` uses that Secret as it is. The node joins
by itself at start (the invitation is in its environment); `Joined` reports what the
admin node (or, for a federation elsewhere, the peer's own node) says.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass

from fedstats.node.federation.subjects import token

from . import builders, conditions, members, names, nats_admin, natsauth, nodeapi, readiness
from .conditions import Condition
from .errors import InvalidSpec, NatsUnavailable, NodeRefused, RetryLater, WaitingFor
from .kube import Kube
from .nodes import apply_node, observe_node, prepare_node
from .outcome import Outcome
from .types import Body, SyncStats

# One invitation at a time per Secret: the create handler and the resync timer may both run.
_issuing: dict[tuple[str, str], asyncio.Lock] = {}


async def _federation(kube: Kube, peer: Body, out: Outcome) -> tuple[Condition, Body | None]:
    ref = peer["spec"].get("federationRef")
    if not ref:
        return out.add(Condition("FederationFound", "True", "InviteSecret",
                                 "joins through spec.inviteSecretRef")), None
    fed = await kube.get("Federation", peer["metadata"]["namespace"], ref["name"])
    if fed is None or fed["metadata"].get("deletionTimestamp"):
        # one being deleted stops its peers' nodes (see federations.finalize): leave them so
        msg = f"Federation {ref['name']} does not exist in {peer['metadata']['namespace']}"
        return out.fail(Condition("FederationFound", "False", "FederationMissing", msg),
                        WaitingFor(msg)), None
    out.status["federation"] = names.federation_name(fed)
    return out.add(Condition("FederationFound", "True", "Found", f"Federation {ref['name']}")), fed


def peer_id(peer: Body) -> str:
    """The id the Peer has in its federation: its name, as the nodes make a NATS token of it."""
    return token(peer["metadata"]["name"])


@dataclass(frozen=True)
class _Login:
    """A peer's user written to its account, not yet known to be accepted by NATS."""

    url: str
    auth: nats_admin.NatsAuth
    message: str


async def _nats_user(kube: Kube, peer: Body, fed: Body, out: Outcome,
                     ) -> tuple[Condition | None, dict[str, str], _Login | None]:  # fmt: skip
    """The peer's own user in its federation's account (when the operator manages NATS
    users), and the invitation options that hand it to the peer (never the admin's): a
    failed NatsUser condition, or the login that `_accepted` awaits (None when NATS users
    are not managed)."""
    store = members.managed(kube, fed)
    if store is None:
        return None, {}, None
    me = peer_id(peer)
    user, password = await members.credentials(kube, peer, fed, me)
    merges = bool(peer["spec"].get("merges"))
    options = {"nats_sec_user": user, "nats_sec_passwd": password}
    if merges:
        options["fed_merges"] = "true"
    # The invitation, asked for now, is made while NATS learns the user. The Deployment
    # waits for the invitation (its pod reads it) but not for NATS's reload: the node,
    # starting meanwhile, retries its first login until the server accepts the user.
    inviting = asyncio.create_task(_invite_early(kube, peer, fed, out, options),
                                   name=f"invite {me}")
    try:
        return await _admitted(kube, peer, fed, out, me, user, password, merges, options)
    finally:
        await inviting


async def _invite_early(kube: Kube, peer: Body, fed: Body, out: Outcome,
                        options: dict[str, str]) -> None:  # fmt: skip
    """The invitation, best effort: what fails here is asked again, and reported, by
    `_joined` (or `_remote_joined`), after the node is deployed."""
    with contextlib.suppress(RetryLater, InvalidSpec):
        await _invite(kube, peer, fed, out, options)


async def _admitted(kube: Kube, peer: Body, fed: Body, out: Outcome, me: str, user: str,
                    password: str, merges: bool, options: dict[str, str],
                    ) -> tuple[Condition | None, dict[str, str], _Login | None]:  # fmt: skip
    """The peer's user written to its federation's account (NATS learns it at the
    sidecar's next reload)."""
    store = members.managed(kube, fed)
    assert store is not None
    missing: list[str] = []

    def admit(state: natsauth.AuthState) -> None:
        entry = state.get(members.account(fed))
        if entry is None or entry.admin is None:
            missing.append(members.account(fed))
            return
        entry.peers[me] = password
        wanted = sorted((set(entry.mergers) | {me}) if merges else set(entry.mergers) - {me})
        entry.mergers = wanted

    await store.change(admit)
    if missing:
        msg = f"the federation's NATS account {missing[0]} is not written yet"
        return out.fail(Condition("NatsUser", "False", "AccountMissing", msg),
                        WaitingFor(msg, delay=1.0)), {}, None
    auth = members.auth_as(user, password, await members.ca_of(kube, fed))
    return None, options, _Login(fed["spec"]["nats"]["url"], auth,
                                 f"user {user} in account {members.account(fed)}")


async def _accepted(out: Outcome, login: _Login) -> Condition:
    """NatsUser: True once NATS accepts the peer's user (after the reload that taught it)."""
    try:
        await members.await_login(login.url, login.auth)
    except NatsUnavailable as e:
        return out.fail(Condition("NatsUser", "False", "NotAccepted", str(e)), e)
    out.status["natsUser"] = login.auth.user
    return out.add(Condition("NatsUser", "True", "Written", login.message))


async def _invite(kube: Kube, peer: Body, fed: Body, out: Outcome,
                  options: dict[str, str]) -> None:
    """The Peer's invitation Secret, the admin node asked for one only when there is none."""
    namespace, name = peer["metadata"]["namespace"], names.invitation_secret(peer)
    out.status["invitationSecret"] = name
    if await kube.get("Secret", namespace, name) is not None:
        return
    lock = _issuing.setdefault((namespace, name), asyncio.Lock())
    async with lock:
        if await kube.get("Secret", namespace, name) is not None:
            return
        api = await nodeapi.of_node(kube, fed)
        # 32 random bytes, never typed: sealed with HKDF, not scrypt, whose work factor
        # guards passwords people choose and costs the admin (and the node opening it)
        # ~0.15 s of CPU a Peer, 50 of them at once on the same cores as 50 node starts
        password = secrets.token_urlsafe(32)
        invitation = await api.invitation(
            names.federation_name(fed), password, rest_host=admin_rest_host(peer, fed),
            peer_id=peer["metadata"]["name"], fed_invite_kdf="hkdf", **options)
        await kube.create_if_absent(builders.desired_invitation_secret(peer, invitation,
                                                                       password))
    out.event("Normal", "Invited", f"the admin node issued an invitation for peer "
                                   f"{peer_id(peer)}, stored in Secret {name}")


def is_remote(peer: Body) -> bool:
    """A Peer whose node runs in another cluster: here only its user and invitation."""
    return bool(peer["spec"].get("remote"))


def admin_rest_host(peer: Body, fed: Body) -> str:
    """Where the invited peer's node calls the admin node: its Service in this cluster, or
    for a remote peer its Ingress (https, as TLS ends there). Pure."""
    if not is_remote(peer):
        return names.node_url(peer["metadata"]["namespace"], names.admin_name(fed))
    ingress = fed["spec"]["admin"].get("ingress") or {}
    if not ingress.get("enabled") or not ingress.get("host"):
        raise InvalidSpec("a remote Peer needs its Federation's admin Ingress "
                          "(spec.admin.ingress): its node reaches the admin through it")
    return f"https://{ingress['host']}"


async def finalize(kube: Kube, peer: Body) -> str:
    """Takes a deleted Peer out of its federation: the admin node removes it, and its rows
    leave every node's merge (its node and invitation Secret go with the Peer, as owned
    objects). Answers what was done, for the Event."""
    ref = peer["spec"].get("federationRef")
    if not ref:
        return "joined through an invitation from elsewhere: its admin removes it there"
    fed = await kube.get("Federation", peer["metadata"]["namespace"], ref["name"])
    if fed is None or fed["metadata"].get("deletionTimestamp"):
        return f"Federation {ref['name']} is gone or going: nothing to leave"
    revoked = await _revoke(kube, peer, fed)
    admin = await nodeapi.of_node(kube, fed)
    try:
        await admin.remove_peer(names.federation_name(fed), peer_id(peer))
    except NodeRefused as e:  # never joined (or removed already): nothing is merged
        return f"{revoked}the admin node did not remove peer {peer_id(peer)}: {e.node_message}"
    return f"{revoked}the admin node removed peer {peer_id(peer)} from every merge"


async def _revoke(kube: Kube, peer: Body, fed: Body) -> str:
    """The peer's NATS user leaves its account first: its credentials are refused from the
    server's next reload on, whatever the admin node answers."""
    store = members.managed(kube, fed)
    if store is None:
        return ""
    me = peer_id(peer)

    def revoke(state: natsauth.AuthState) -> None:
        entry = state.get(members.account(fed))
        if entry is not None:
            entry.peers.pop(me, None)
            entry.mergers = [m for m in entry.mergers if m != me]

    await store.change(revoke)
    return f"NATS user of peer {me} revoked; "


def last_sync(stats: SyncStats) -> str | None:
    """The time of the newest snapshot sent or received, RFC 3339, from a syncLog. Pure."""
    for line in reversed(stats.get("syncLog") or []):
        stamp, _, message = str(line).partition("Z ")
        if message.startswith(("sent snapshot", "received snapshot")):
            return stamp.replace(" ", "T") + "Z"
    return None


# How long a reconcile waits, its node up, for the admin node to list the peer (it joins
# over NATS by itself), before it lets kopf retry.
JOIN_WAIT_S = 30.0


async def _joined(kube: Kube, peer: Body, fed: Body | None, out: Outcome,
                  options: dict[str, str], node_up: bool) -> Condition:
    """Joined: listed by the admin node (or, invited from elsewhere, joined by its own node)."""
    me = peer_id(peer)
    try:
        if fed is not None:
            await _invite(kube, peer, fed, out, options)
            admin = await nodeapi.of_node(kube, fed)
            pid = names.federation_name(fed)
            known = (await admin.fed_info(pid)).get("peersInfo") or {}
            # its node is up and joining: hear of it the moment the admin lists it
            if me not in known and node_up and await readiness.MEMBERSHIP.joined(
                    admin, pid, me, JOIN_WAIT_S):
                known = {me: {}}
            if me not in known:
                msg = f"the admin node does not list peer {me} yet"
                # its node up, the wait for its joining goes on at once (no event would end
                # a retry delay); its node not up, the Deployment's change ends the delay
                delay = 0.1 if node_up else nodeapi.RETRY_SECONDS
                return out.fail(Condition("Joined", "False", "NotJoined", msg),
                                WaitingFor(msg, delay=delay))
            where = f"federation {names.federation_name(fed)}"
        own = await nodeapi.of_node(kube, peer)
        project = names.federation_name(fed) if fed is not None else None
        if project is None:
            pid = _federated_project(await own.projects())
            info = await own.fed_info(pid)
            where = f"federation {info.get('fed_name')}"
        else:
            pid = project
        await _sync_status(own, pid, out)
    except NodeRefused as e:
        return out.fail(Condition("Joined", "False", "NotJoined",
                                  f"the node says: {e.node_message}"), e)
    except RetryLater as e:
        return out.fail(Condition("Joined", "False", "NodeUnreachable", str(e)), e)
    return out.add(Condition("Joined", "True", "Joined", f"peer {me} joined {where}"))


async def _remote_joined(kube: Kube, peer: Body, fed: Body, out: Outcome,
                         options: dict[str, str]) -> Condition:
    """Joined, for a remote Peer: the admin node lists it (its node, elsewhere, joined with
    the invitation Secret copied there)."""
    me = peer_id(peer)
    try:
        await _invite(kube, peer, fed, out, options)
        admin = await nodeapi.of_node(kube, fed)
        known = (await admin.fed_info(names.federation_name(fed))).get("peersInfo") or {}
    except RetryLater as e:
        return out.fail(Condition("Joined", "False", "NodeUnreachable", str(e)), e)
    if me not in known:
        msg = (f"waiting for peer {me} to join from its own cluster with the invitation in "
               f"Secret {names.invitation_secret(peer)}")
        return out.fail(Condition("Joined", "False", "NotJoined", msg),
                        WaitingFor(msg, delay=30))
    return out.add(Condition("Joined", "True", "Joined",
                             f"peer {me} joined federation {names.federation_name(fed)}"))


def _federated_project(found: list[str]) -> str:
    """The one project of the peer's node (the node made it when it joined)."""
    if len(found) != 1:
        raise NodeRefused(f"the peer's node has {len(found)} projects, not the one it joined",
                          404, delay=nodeapi.RETRY_SECONDS)
    return found[0]


async def _sync_status(own: nodeapi.NodeApi, pid: str, out: Outcome) -> None:
    """Counters and the last sync time from the peer's own node; best effort."""
    try:
        stats = await own.sync_stats(pid)
    except RetryLater:
        return  # the admin lists the peer: Joined holds even when its node is restarting
    out.status["sync"] = {"sent": int(stats.get("sndCount", 0)),
                          "received": int(stats.get("rcvCount", 0))}
    when = last_sync(stats)
    if when:
        out.status["lastSyncTime"] = when


async def reconcile(kube: Kube, peer: Body) -> Outcome:
    """Conditions FederationFound, Deployed, Available and Joined, making Ready."""
    out = Outcome()
    found, fed = await _federation(kube, peer, out)
    if found.status != "True":
        out.add(conditions.ready([found]))
        return out
    # the node's own Secret (and PVC) made while the invitation is sealed: off the path
    preparing = (asyncio.create_task(prepare_node(kube, peer), name="prepare node")
                 if not is_remote(peer) else None)
    try:
        user, options, login = (await _nats_user(kube, peer, fed, out) if fed is not None
                                else (None, {}, None))
    finally:
        if preparing is not None:
            await preparing
    if user is not None:  # its account is not written yet
        out.add(conditions.ready([found, user]))
        return out
    managed = login is not None
    out.status["peerId"] = peer_id(peer)
    if is_remote(peer) and fed is not None:  # its node runs elsewhere: invite, then listen
        if login is not None:
            user = await _accepted(out, login)
            if user.status != "True":
                out.add(conditions.ready([found, user]))
                return out
        joined = await _remote_joined(kube, peer, fed, out, options)
        parts = [found, user, joined] if user is not None else [found, joined]
        out.add(conditions.ready(parts))
        return out
    deployed = out.add(await apply_node(kube, peer, builders.desired_peer_deployment(
        peer, fed, managed_auth=managed), prepared=True))
    if login is not None:  # the node, starting meanwhile, retries its first login
        user = await _accepted(out, login)
        if user.status != "True":
            out.add(conditions.ready([found, user, deployed]))
            return out
    available = out.add(await observe_node(kube, peer, names.peer_name(peer)))
    out.status["service"] = f"{names.peer_name(peer)}:{names.NODE_PORT}"
    joined = await _joined(kube, peer, fed, out, options, available.status == "True")
    steps = [found, deployed, available, joined]
    out.add(conditions.ready([found, user, *steps[1:]] if user is not None else steps))
    return out
