"""Names and labels of everything the operator makes, derived from the custom resource.

One place, so that the builders, the reconcilers, the tests and the NATS admin agree on
what `<federation>-admin` or the stream of a federation is called.
"""

from __future__ import annotations

from fedstats.node.federation.subjects import Names

from .types import Body

GROUP = "fedstats.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGER = "fedstats-operator"  # the server-side apply field manager and managed-by label

NODE_PORT = 8080
CUSTOMERS_PATH = "/etc/fedstats/customers.json"
DATA_DIR = "/data"
FEDERATION_KEY = "federationKey"  # the key inside the federation key Secret
CUSTOMERS_KEY = "customers.json"  # the key inside a node's customers Secret
INVITATION_KEY = "invitation"  # the keys inside a peer's invitation Secret (as inviteSecretRef's)
PASSWORD_KEY = "password"
NATS_USER_KEY = "user"  # the keys inside a member's NATS credentials Secret
NATS_PASSWORD_KEY = "password"
NATS_CA_DIR = "/etc/fedstats/nats-ca"  # where a node finds the CA of NATS's TLS certificate
NATS_CA_KEY = "ca.crt"


def federation_name(fed: Body) -> str:
    """The name the nodes and NATS know the federation by: spec.federationName or metadata.name."""
    return str(fed.get("spec", {}).get("federationName") or fed["metadata"]["name"])


def nats_names(fed: Body) -> Names:
    """The federation's streams and subjects, exactly as the nodes' agents name them."""
    return Names.of(federation_name(fed))


def stream_names(fed: Body) -> list[str]:
    n = nats_names(fed)
    return [n.stats_stream, n.ctl_stream]


def admin_name(fed: Body) -> str:
    return f"{fed['metadata']['name']}-admin"


def federation_key_secret(fed: Body) -> str:
    return f"{fed['metadata']['name']}-federation-key"


def customers_secret(owner: Body) -> str:
    """The customers file of a node: `<federation>-admin-customers` or `<peer>-peer-customers`."""
    return f"{node_name(owner)}-customers"


def nats_secret(owner: Body) -> str:
    """A member's own NATS user and password: `<federation>-admin-nats`, `<peer>-peer-nats`.

    Owned by that member and mounted into its pod only."""
    return f"{node_name(owner)}-nats"


def invitation_secret(peer: Body) -> str:
    """The invitation (and its password) the admin node issued for a Peer of this cluster."""
    return f"{peer_name(peer)}-invitation"


def node_url(namespace: str, service: str) -> str:
    """A node's REST API as pods reach it: its Service's cluster DNS name."""
    return f"http://{service}.{namespace}.svc:{NODE_PORT}"


def peer_name(peer: Body) -> str:
    return f"{peer['metadata']['name']}-peer"


def node_name(owner: Body) -> str:
    """The Deployment/Service name of the node a Federation (admin) or a Peer runs."""
    return admin_name(owner) if owner.get("kind") == "Federation" else peer_name(owner)


def labels(owner: Body, component: str) -> dict[str, str]:
    """Labels of a node's objects; the first three also select its pods."""
    fed = (
        federation_name(owner)
        if owner.get("kind") == "Federation"
        else owner.get("spec", {}).get("federationRef", {}).get("name", "")
    )
    out = {
        "app.kubernetes.io/name": "fedstats-node",
        "app.kubernetes.io/instance": owner["metadata"]["name"],
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGER,
    }
    if fed:
        out[f"{GROUP}/federation"] = fed
    return out


def selector(owner: Body, component: str) -> dict[str, str]:
    keys = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
    full = labels(owner, component)
    return {k: full[k] for k in keys}
