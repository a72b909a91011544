"""The Kubernetes side of one fedstats node (an admin or a peer): apply it, then observe it.

Shared by the Federation and Peer reconcilers: keys made once, the data volume, the
Deployment and Service applied every time (so drift is undone), and availability read back
from the Deployment's status.
"""

from __future__ import annotations

from fedstats.node.security.keys import new_secret_key

from . import builders
from .conditions import Condition, Status
from .kube import Kube
from .types import Body, Obj


async def prepare_node(kube: Kube, owner: Body) -> None:
    """What a node's pod needs before its Deployment: its customers Secret (made once) and
    its PVC (if asked). A reconcile may run this while it waits for something else."""
    await kube.create_if_absent(builders.desired_customers_secret(owner, new_secret_key()))
    pvc = builders.desired_pvc(owner)
    if pvc is not None:
        await kube.create_if_absent(pvc)  # a PVC's spec is immutable once bound


async def apply_node(kube: Kube, owner: Body, deployment: Obj, *,
                     prepared: bool = False) -> Condition:  # fmt: skip
    """Customers Secret (once), PVC (if asked; both skipped when `prepared`), Deployment
    and Service; `<Role>Deployed`."""
    if not prepared:
        await prepare_node(kube, owner)
    await kube.apply(deployment)
    await kube.apply(builders.desired_service(owner))
    name = deployment["metadata"]["name"]
    return Condition("Deployed", "True", "Applied", f"Deployment and Service {name} applied")


async def observe_node(kube: Kube, owner: Body, name: str) -> Condition:
    """`Available` from the Deployment's own Available condition (set by its controller)."""
    dep = await kube.get("Deployment", owner["metadata"]["namespace"], name)
    if dep is None:
        return Condition("Available", "False", "Missing", f"Deployment {name} does not exist")
    status = dep.get("status", {})
    for cond in status.get("conditions", []):
        if cond.get("type") == "Available":
            state: Status = "True" if cond.get("status") == "True" else "False"
            return Condition("Available", state, cond.get("reason") or "Unknown",
                             cond.get("message", ""))
    return Condition("Available", "Unknown", "NotObserved",
                     f"Deployment {name} has no Available condition yet "
                     "(is a controller-manager running?)")
