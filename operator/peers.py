"""Reconciling a Peer: its Federation (when referenced), its node, and its availability.

A Peer whose Federation does not exist yet is not an error of the Peer: it waits, with
`FederationFound=False`, and is looked at again. Joining (the invitation issued by the
admin node, stored as an encrypted Secret, and redeemed by the peer) goes through the
nodes' fedml REST API and is reported as its own `Joined` condition, outside `Ready`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import builders, conditions, names
from .conditions import Condition
from .errors import WaitingFor
from .kube import Kube
from .nodes import apply_node, observe_node
from .outcome import Outcome

Body = Mapping[str, Any]


async def _federation(kube: Kube, peer: Body, out: Outcome) -> tuple[Condition, Body | None]:
    ref = peer["spec"].get("federationRef")
    if not ref:
        return out.add(Condition("FederationFound", "True", "InviteSecret",
                                 "joins through spec.inviteSecretRef")), None
    fed = await kube.get("Federation", peer["metadata"]["namespace"], ref["name"])
    if fed is None:
        msg = f"Federation {ref['name']} does not exist in {peer['metadata']['namespace']}"
        return out.fail(Condition("FederationFound", "False", "FederationMissing", msg),
                        WaitingFor(msg)), None
    out.status["federation"] = names.federation_name(fed)
    return out.add(Condition("FederationFound", "True", "Found", f"Federation {ref['name']}")), fed


async def reconcile(kube: Kube, peer: Body) -> Outcome:
    """Conditions FederationFound, Deployed, Available (making Ready) and Joined."""
    out = Outcome()
    found, fed = await _federation(kube, peer, out)
    if found.status != "True":
        out.add(conditions.ready([found]))
        return out
    deployed = out.add(await apply_node(kube, peer, builders.desired_peer_deployment(peer, fed)))
    available = out.add(await observe_node(kube, peer, names.peer_name(peer)))
    out.status["service"] = f"{names.peer_name(peer)}:{names.NODE_PORT}"
    out.add(Condition("Joined", "Unknown", "AwaitingNodeApi",
                      "joining needs the admin node's invitation and the peer's fedml REST API"))
    out.add(conditions.ready([found, deployed, available]))
    return out
