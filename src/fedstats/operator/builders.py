"""Desired state: pure functions from a custom resource to the Kubernetes objects it implies.

No I/O here. The reconcilers apply what these return (server-side apply, so re-applying the
same dict is a no-op and a hand-made change is undone), and the tests check them as data.
Secrets holding generated keys are the exception to "apply again": a key is made once,
so `desired_*_secret` take the key as an argument and are only created when absent.
"""

from __future__ import annotations

import re

import orjson

from . import names
from .errors import InvalidSpec
from .names import (
    CUSTOMERS_KEY,
    CUSTOMERS_PATH,
    DATA_DIR,
    FEDERATION_KEY,
    INVITATION_KEY,
    NATS_CA_DIR,
    NATS_CA_KEY,
    NATS_PASSWORD_KEY,
    NATS_USER_KEY,
    NODE_PORT,
    PASSWORD_KEY,
)
from .types import Body, Obj

# The node's command line, shared by admin and peer containers.
NODE_COMMAND = [
    "fedstats", "node", "--host", "0.0.0.0", "--port", str(NODE_PORT),
    "--data-dir", DATA_DIR, "--customers", CUSTOMERS_PATH,
]  # fmt: skip
GPU_RESOURCE = "nvidia.com/gpu"
# Without tolerations of its own a GPU peer tolerates the taint GPU node pools usually carry.
DEFAULT_GPU_TOLERATIONS = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"([1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?")


def parse_bytes(quantity: str | int) -> int:
    """`64Mi` -> 67108864, as the CRD's streamMaxMemory pattern allows."""
    if isinstance(quantity, int):
        return quantity
    m = _QUANTITY.fullmatch(quantity.strip())
    if m is None:
        raise InvalidSpec(f"spec.streamMaxMemory: {quantity!r} is not a quantity like 64Mi")
    return int(m.group(1)) * _UNITS[m.group(2) or ""]


def owner_reference(owner: Body) -> Obj:
    """Makes `owner` the controller of an object, so the garbage collector deletes it too."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(owner: Body, name: str, component: str) -> Obj:
    return {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": names.labels(owner, component),
        "ownerReferences": [owner_reference(owner)],
    }


def desired_federation_key_secret(fed: Body, key: str) -> Obj:
    """The federation secret key (Base64 of 32 bytes) that encrypts statistics on the wire."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(fed, names.federation_key_secret(fed), "admin"),
        "type": "Opaque",
        "stringData": {FEDERATION_KEY: key},
    }


def desired_customers_secret(owner: Body, customer_key: str) -> Obj:
    """A node's customers file: the operator's customer id and its generated key."""
    customer_id = _node_spec(owner).get("customerId", "operator")
    text = orjson.dumps({customer_id: customer_key}).decode()
    component = "admin" if owner["kind"] == "Federation" else "peer"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(owner, names.customers_secret(owner), component),
        "type": "Opaque",
        "stringData": {CUSTOMERS_KEY: text},
    }


def desired_invitation_secret(peer: Body, invitation: str, password: str) -> Obj:
    """The invitation the admin node issued for `peer`, and the password that seals it.

    Made once (an invitation is one-time): the Secret is also the record that this peer was
    invited, so an operator restart never asks the admin node for a second one.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(peer, names.invitation_secret(peer), "peer"),
        "type": "Opaque",
        "stringData": {INVITATION_KEY: invitation, PASSWORD_KEY: password},
    }


def desired_nats_secret(owner: Body, user: str, password: str) -> Obj:
    """A member's NATS credentials (made once), owned by the member: its pod alone mounts
    them, and they go with it (a deleted Peer's user also leaves the server's auth file)."""
    component = "admin" if owner["kind"] == "Federation" else "peer"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(owner, names.nats_secret(owner), component),
        "type": "Opaque",
        "stringData": {NATS_USER_KEY: user, NATS_PASSWORD_KEY: password},
    }


def stream_replicas(fed: Body) -> int:
    """How many NATS servers hold each of the federation's streams (spec.nats.replicas)."""
    return int(fed.get("spec", {}).get("nats", {}).get("replicas", 1))


def _node_spec(owner: Body) -> Body:
    """The part of the spec that describes the node: spec.admin for a Federation, else spec."""
    spec = owner.get("spec", {})
    return spec.get("admin", {}) if owner["kind"] == "Federation" else spec


def _federation_env(fed: Body, member: Body | None = None) -> list[Obj]:
    """The federation's settings; `member` (the Federation itself or a Peer) is whose NATS
    credentials Secret the node reads when the operator manages NATS users."""
    spec = fed.get("spec", {})
    env = [
        {"name": "FEDSTATS_FEDERATION", "value": names.federation_name(fed)},
        {"name": "FEDSTATS_TOPOLOGY", "value": spec.get("topology", "decentralized")},
        {"name": "FEDSTATS_SYNC_SCHEDULE", "value": spec.get("syncSchedule", "m30")},
        {"name": "FEDSTATS_NATS_URL", "value": spec["nats"]["url"]},
        {"name": "FEDSTATS_NATS_REQ_TIMEOUT", "value": str(spec.get("requestTimeoutSeconds", 10))},
        {"name": "FEDSTATS_STREAM_MAX_MEMORY",
         "value": str(parse_bytes(spec.get("streamMaxMemory", "64Mi")))},
    ]
    auth = spec["nats"].get("authSecretRef")
    if auth:
        pairs = [("FEDSTATS_NATS_USER", auth.get("userKey", "user")),
                 ("FEDSTATS_NATS_PASSWORD", auth.get("passwordKey", "password"))]
        if auth.get("tokenKey"):
            pairs = [("FEDSTATS_NATS_TOKEN", auth["tokenKey"])]
        env += [_secret_env(var, auth["name"], key) for var, key in pairs]
    elif member is not None:
        env += _member_nats_env(member)
    return env


def _member_nats_env(member: Body) -> list[Obj]:
    secret = names.nats_secret(member)
    return [_secret_env("FEDSTATS_NATS_USER", secret, NATS_USER_KEY),
            _secret_env("FEDSTATS_NATS_PASSWORD", secret, NATS_PASSWORD_KEY)]


def _nats_ca(pod: Obj, nats: Body) -> None:
    """Trust the CA of NATS's TLS certificate (spec.nats.tls.caSecretRef), for every TLS
    client of the node: Python's default context reads SSL_CERT_FILE."""
    ref = (nats.get("tls") or {}).get("caSecretRef")
    if not ref:
        return
    container = pod["containers"][0]
    container["volumeMounts"].append({"name": "nats-ca", "mountPath": NATS_CA_DIR,
                                      "readOnly": True})
    container["env"].append({"name": "SSL_CERT_FILE", "value": f"{NATS_CA_DIR}/{NATS_CA_KEY}"})
    pod["volumes"].append({"name": "nats-ca", "secret": {
        "secretName": ref["name"],
        "items": [{"key": ref.get("key", NATS_CA_KEY), "path": NATS_CA_KEY}]}})


def _identity_env(owner: Body, project: str | None) -> list[Obj]:
    """Whose the node's federated project is: the operator's customer (and the project)."""
    env = [{"name": "FEDSTATS_CUSTOMER", "value": _node_spec(owner).get("customerId", "operator")}]
    if project:
        env.append({"name": "FEDSTATS_PROJECT", "value": project})
    return env


def _secret_env(var: str, secret: str, key: str) -> Obj:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _pod_spec(owner: Body, env: list[Obj], resources: Obj) -> Obj:
    node = _node_spec(owner)
    container: Obj = {
        "name": "node",
        "image": node["image"],
        "command": NODE_COMMAND,
        "ports": [{"name": "http", "containerPort": NODE_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": resources,
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "customers", "mountPath": CUSTOMERS_PATH, "subPath": CUSTOMERS_KEY,
             "readOnly": True},
        ],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "initialDelaySeconds": 10, "periodSeconds": 10},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if node.get("imagePullPolicy"):
        container["imagePullPolicy"] = node["imagePullPolicy"]
    storage = node.get("storage", {})
    data: Obj = (
        {"name": "data", "persistentVolumeClaim": {"claimName": f"{names.node_name(owner)}-data"}}
        if storage.get("size") else {"name": "data", "emptyDir": {}}
    )
    return {
        "containers": [container],
        "volumes": [data, {"name": "customers",
                           "secret": {"secretName": names.customers_secret(owner)}}],
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
    }


def _deployment(owner: Body, component: str, pod: Obj) -> Obj:
    meta = _meta(owner, names.node_name(owner), component)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            # One node owns its SQLite volume: never two pods on it, even during a rollout.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": names.selector(owner, component)},
            "template": {"metadata": {"labels": meta["labels"]}, "spec": pod},
        },
    }


def _resources(node: Body) -> Obj:
    res = node.get("resources", {})
    return {k: dict(res[k]) for k in ("requests", "limits") if res.get(k)}


def desired_admin_deployment(fed: Body, *, managed_auth: bool = False) -> Obj:
    """The federation's admin node: the federation settings and key in its environment;
    with `managed_auth`, its own NATS user from `<federation>-admin-nats`."""
    env = [
        *_federation_env(fed, fed if managed_auth else None),
        {"name": "FEDSTATS_ROLE", "value": "admin"},
        *_identity_env(fed, names.federation_name(fed)),
        _secret_env("FEDSTATS_FEDERATION_KEY", names.federation_key_secret(fed), FEDERATION_KEY),
        {"name": "FEDSTATS_ENGINE", "value": "numpy"},
    ]
    pod = _pod_spec(fed, env, _resources(fed["spec"]["admin"]))
    _nats_ca(pod, fed["spec"]["nats"])
    return _deployment(fed, "admin", pod)


def desired_peer_deployment(peer: Body, fed: Body | None, *, managed_auth: bool = False,
                            ) -> Obj:  # fmt: skip
    """A peer's node; `fed` is its Federation (None when it joins by an invitation Secret).

    The node joins at start with the invitation in its environment: the one the operator
    had the admin node issue for this peer (`<peer>-peer-invitation`), or the Secret named by
    spec.inviteSecretRef for a federation managed elsewhere. A GPU peer asks for `nvidia.com/gpu` (a limit: extended resources are never overcommitted),
    lands on the selected nodes, tolerates their taints and runs the CuPy engine.
    """
    spec = peer["spec"]
    env: list[Obj] = [{"name": "FEDSTATS_ROLE", "value": "peer"}]
    if fed is not None:
        env += _federation_env(fed, peer if managed_auth else None)
    elif (spec.get("nats") or {}).get("url"):  # where this cluster reaches a remote NATS
        env.append({"name": "FEDSTATS_NATS_URL", "value": spec["nats"]["url"]})
    env += _identity_env(peer, names.federation_name(fed) if fed is not None else None)
    invite = spec.get("inviteSecretRef") or {"name": names.invitation_secret(peer)}
    env += [
        _secret_env("FEDSTATS_INVITATION", invite["name"],
                    invite.get("invitationKey", INVITATION_KEY)),
        _secret_env("FEDSTATS_INVITATION_PASSWORD", invite["name"],
                    invite.get("passwordKey", PASSWORD_KEY)),
    ]
    resources = _resources(spec)
    gpu = spec.get("localType", "cpu") == "gpu"
    env.append({"name": "FEDSTATS_ENGINE", "value": "cupy" if gpu else "numpy"})
    pod = _pod_spec(peer, env, resources)
    _nats_ca(pod, fed["spec"]["nats"] if fed is not None else spec.get("nats") or {})
    if gpu:
        settings = spec.get("gpu", {})
        count = int(settings.get("count", 1))
        resources.setdefault("limits", {})[GPU_RESOURCE] = count
        pod["containers"][0]["resources"] = resources
        if settings.get("nodeSelector"):
            pod["nodeSelector"] = dict(settings["nodeSelector"])
        pod["tolerations"] = [dict(t) for t in settings.get("tolerations", [])] or [
            dict(t) for t in DEFAULT_GPU_TOLERATIONS
        ]
    return _deployment(peer, "peer", pod)


def desired_service(owner: Body) -> Obj:
    """A ClusterIP Service in front of a node's REST API (port 8080, named http)."""
    component = "admin" if owner["kind"] == "Federation" else "peer"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, names.node_name(owner), component),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector(owner, component),
            "ports": [{"name": "http", "port": NODE_PORT, "targetPort": "http",
                       "protocol": "TCP"}],
        },
    }


def desired_pvc(owner: Body) -> Obj | None:
    """The node's data volume when spec asks for a size; None means an emptyDir."""
    storage = _node_spec(owner).get("storage", {})
    if not storage.get("size"):
        return None
    component = "admin" if owner["kind"] == "Federation" else "peer"
    spec: Obj = {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": storage["size"]}}}
    if storage.get("storageClassName"):
        spec["storageClassName"] = storage["storageClassName"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(owner, f"{names.node_name(owner)}-data", component),
        "spec": spec,
    }


def desired_ingress(fed: Body) -> Obj | None:
    """The admin node's Ingress when spec.admin.ingress.enabled; None otherwise."""
    ingress = fed["spec"]["admin"].get("ingress", {})
    if not ingress.get("enabled"):
        return None
    host = ingress["host"]
    spec: Obj = {
        "rules": [{
            "host": host,
            "http": {"paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": names.admin_name(fed),
                                        "port": {"name": "http"}}},
            }]},
        }],
    }
    if ingress.get("className"):
        spec["ingressClassName"] = ingress["className"]
    if ingress.get("tls"):
        spec["tls"] = [{"hosts": [host], "secretName": ingress["tls"]["secretName"]}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(fed, names.admin_name(fed), "admin"),
        "spec": spec,
    }
