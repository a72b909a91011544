"""The nodes' signed REST API as the operator calls it: the third edge, beside kube and NATS.

The operator is a client of its nodes like any other: it signs with the customer key it
generated into the node's customers Secret, and has no other way into a federation.
`fedstats.node.client.Client` is synchronous, so each call runs in a worker thread, and its
failures are translated here, once: a node that cannot be reached or fails (5xx) is
`NodeUnreachable`, one that refuses (4xx) is `NodeRefused` with the node's own message.

Where a node is: its Service's cluster DNS name, unless the operator's setting
FEDSTATS_OPERATOR_NODE_URLS (JSON `{"<namespace>/<service>": "http://host:port"}`, read at
each call) maps that Service elsewhere. That is how tests and benches reach nodes run as
local processes, and how an operator outside the cluster reaches port-forwarded ones. It is
the operator's setting, not an annotation, because whoever may edit a resource must not be
able to aim the operator's signed calls at a host of their choosing.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping
from typing import Any

import orjson

from fedstats.node.client import ApiError, Client

from . import names
from .errors import NodeRefused, NodeUnreachable, WaitingFor
from .kube import Kube

URLS_SETTING = "FEDSTATS_OPERATOR_NODE_URLS"
# How soon a node that did not answer (or refused, while it bootstraps) is asked again.
RETRY_SECONDS = float(os.environ.get("FEDSTATS_OPERATOR_NODE_RETRY_SECONDS", "10"))
TIMEOUT_SECONDS = 5.0


def node_url(namespace: str, service: str) -> str:
    """The base URL the operator calls a node's Service at."""
    return _overrides().get(f"{namespace}/{service}") or names.node_url(namespace, service)


def _overrides() -> dict[str, str]:
    raw = os.environ.get(URLS_SETTING, "").strip()
    if not raw:
        return {}
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"{URLS_SETTING} must be a JSON map of namespace/service to URL")
    return {str(k): str(v) for k, v in data.items()}


def customer_of(owner: Mapping[str, Any], secret: Mapping[str, Any]) -> tuple[str, str]:
    """(customer id, Base64 key) from a node's customers Secret: the spec's customerId."""
    text = base64.b64decode(secret.get("data", {}).get(names.CUSTOMERS_KEY, ""))
    customers: dict[str, str] = orjson.loads(text or b"{}")
    spec = owner.get("spec", {})
    wanted = (spec.get("admin", {}) if owner["kind"] == "Federation" else spec).get(
        "customerId", "operator")
    if wanted in customers:
        return wanted, customers[wanted]
    if len(customers) == 1:
        return next(iter(customers.items()))
    raise WaitingFor(f"Secret {secret['metadata']['name']} holds no key for customer {wanted}")


class NodeApi:
    """Signed calls to one node, as one of its customers."""

    def __init__(self, url: str, customer_id: str, key: str) -> None:
        self.url = url
        self.customer_id = customer_id
        self._key = key

    def __repr__(self) -> str:
        return f"NodeApi({self.url!r}, customer_id={self.customer_id!r})"

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`Client.<method>(*args, **kwargs)` in a thread, its errors translated."""
        def run() -> Any:
            with Client(self.url, self.customer_id, self._key, timeout=TIMEOUT_SECONDS) as c:
                return getattr(c, method)(*args, **kwargs)

        try:
            return await asyncio.to_thread(run)
        except ConnectionError as e:
            raise NodeUnreachable(f"node {self.url} cannot be reached: {e}",
                                  delay=RETRY_SECONDS) from e
        except ApiError as e:
            if e.http_status >= 500:
                raise NodeUnreachable(f"node {self.url} failed: {e}", delay=RETRY_SECONDS) from e
            raise NodeRefused(e.message or str(e), e.http_status, delay=RETRY_SECONDS) from e

    async def fed_info(self, pid: str) -> dict[str, Any]:
        """The decrypted `fedInfo` of project `pid`."""
        envelope = await self.call("fed_info", pid)
        info: dict[str, Any] = (envelope.get("values") or {}).get("fedInfo") or {}
        return info


async def of_node(kube: Kube, owner: Mapping[str, Any]) -> NodeApi:
    """The API of the node `owner` runs (a Federation's admin, or a Peer's node)."""
    namespace = owner["metadata"]["namespace"]
    secret_name = names.customers_secret(owner)
    secret = await kube.get("Secret", namespace, secret_name)
    if secret is None:
        raise WaitingFor(f"Secret {secret_name} does not exist yet")
    customer_id, key = customer_of(owner, secret)
    return NodeApi(node_url(namespace, names.node_name(owner)), customer_id, key)
