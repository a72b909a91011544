"""The nodes' signed REST API as the operator calls it: the third edge, beside kube and NATS.

The operator is a client of its nodes like any other: it signs with the customer key it
generated into the node's customers Secret, and has no other way into a federation.
`NodeApi` has one typed method per node operation a reconciler uses, answering the
`types` the reconcilers read. `fedstats.node.client.Client` is synchronous, so each call
runs in a worker thread, and its failures are translated here, once: a node that cannot be
reached, fails (5xx) or answers something that is not its API is `NodeUnreachable`; one
that refuses (4xx) is `NodeRefused` with the node's own message.

Where a node is: its Service's cluster DNS name, unless the operator's setting
FEDSTATS_OPERATOR_NODE_URLS (JSON `{"<namespace>/<service>": "http://host:port"}`, read at
each call) maps that Service elsewhere. That is how tests and benches reach nodes run as
local processes, and how an operator outside the cluster reaches port-forwarded ones. It is
the operator's setting, not an annotation, because whoever may edit a resource must not be
able to aim the operator's signed calls at a host of their choosing.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

import httpx
import orjson

from fedstats.node.client import ApiError, Client

from . import names
from .errors import NodeRefused, NodeUnreachable, WaitingFor
from .kube import Kube
from .types import Body, FedInfo, SyncStats

T = TypeVar("T")

URLS_SETTING = "FEDSTATS_OPERATOR_NODE_URLS"
# How soon a node that did not answer (or refused, while it bootstraps) is asked again.
RETRY_SECONDS = float(os.environ.get("FEDSTATS_OPERATOR_NODE_RETRY_SECONDS", "10"))
TIMEOUT_SECONDS = 5.0
# Invitations asked for by many Peers created together queue on the admin node (each one
# a token written and the federation's config saved): a queue, not a node that is down.
# Timing one out at 5 s made the operator ask again (the admin then issuing a second one,
# which revokes the first) and wait for a retry.
INVITATION_TIMEOUT_SECONDS = 60.0


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


def customer_of(owner: Body, secret: Body) -> tuple[str, str]:
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


class _SharedPool(httpx.BaseTransport):
    """One connection pool for every call the operator makes to a node, which a call's
    client does not close. A client made without a transport builds a TLS context of its
    own (~45 ms of CPU, even for plain http): the membership poll alone, five calls a
    second, cost the operator a quarter of a core."""

    def __init__(self) -> None:
        self._pool = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._pool.handle_request(request)

    def close(self) -> None:  # a call's client closing leaves the pool to the next call
        pass


_POOL = _SharedPool()
atexit.register(_POOL._pool.close)  # its idle connections, when the process ends
# Node calls wait on other processes, not on this one's CPU: their own threads, as many as
# Peers reconcile at once. On asyncio's default executor (min(32, cores + 4) threads: 6
# on 2 cores, shared with kopf) 50 Peers' invitations and joins queued six at a time.
CALL_THREADS = int(os.environ.get("FEDSTATS_OPERATOR_NODE_CALL_THREADS", "64"))
_CALLS = ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="node-call")


class NodeApi:
    """Signed calls to one node, as one of its customers."""

    def __init__(self, url: str, customer_id: str, key: str) -> None:
        self.url = url
        self.customer_id = customer_id
        self._key = key

    def __repr__(self) -> str:
        return f"NodeApi({self.url!r}, customer_id={self.customer_id!r})"

    async def _call(self, fn: Callable[[Client], T], timeout: float = TIMEOUT_SECONDS) -> T:
        """`fn(client)` in a worker thread, the client's errors translated."""
        def run() -> T:
            with Client(self.url, self.customer_id, self._key, timeout=timeout,
                        transport=_POOL) as c:
                return fn(c)

        try:
            return await asyncio.get_running_loop().run_in_executor(_CALLS, run)
        except ConnectionError as e:
            raise NodeUnreachable(f"node {self.url} cannot be reached: {e}",
                                  delay=RETRY_SECONDS) from e
        except ApiError as e:
            if not 400 <= e.http_status < 500:  # failed, or answered what is not its API
                raise NodeUnreachable(f"node {self.url} failed: {e}", delay=RETRY_SECONDS) from e
            raise NodeRefused(e.message or str(e), e.http_status, delay=RETRY_SECONDS) from e

    async def fed_info(self, pid: str) -> FedInfo:
        """The `fedInfo` of project `pid`, without the federation's key (the operator has
        no use for it, and what it holds can end up in a status or a log)."""
        info = await self._call(lambda c: c.fed_info(pid))
        info.pop("fed_secret_key", None)
        return cast(FedInfo, info)

    async def invitation(self, pid: str, password: str, *, rest_host: str,
                         peer_id: str, **options: str) -> str:
        """A one-time invitation for `peer_id`, sealed with `password`, that makes the peer
        call the admin at `rest_host`; `options` add to the request (the peer's own NATS
        user and password, `fed_merges`)."""
        return await self._call(lambda c: c.fed_invitation(
            pid, password, fed_rest_host=rest_host, fed_peer_id=peer_id, **options),
            timeout=INVITATION_TIMEOUT_SECONDS)

    async def remove_peer(self, pid: str, peer_id: str) -> None:
        """Admin only: the peer's statistics leave every node's merge."""
        await self._call(lambda c: c.remove_peer(pid, peer_id))

    async def set_schedule(self, pid: str, schedule: str) -> None:
        """Admin only: the federation's pulse schedule."""
        await self._call(lambda c: c.new_schedule(pid, schedule))

    async def set_contract(self, pid: str, lines: Sequence[str]) -> None:
        """Admin only: the node validates the PSR contract, then makes it the federation's.
        Lines that do not parse are a `NodeRefused` whose message begins `Invalid PSR
        contract`, with the line and column."""
        def send(c: Client) -> None:
            c.validate_contract(pid, lines)
            c.add_contract(pid, lines)

        await self._call(send)

    async def projects(self) -> list[str]:
        """The project ids of the operator's customer on this node."""
        return [str(p) for p in await self._call(lambda c: c.list_projects())]

    async def sync_stats(self, pid: str) -> SyncStats:
        """The `fedSyncStats` of project `pid`."""
        return cast(SyncStats, await self._call(lambda c: c.sync_stats(pid)))


async def of_node(kube: Kube, owner: Body) -> NodeApi:
    """The API of the node `owner` runs (a Federation's admin, or a Peer's node)."""
    namespace = owner["metadata"]["namespace"]
    secret_name = names.customers_secret(owner)
    secret = await kube.get("Secret", namespace, secret_name)
    if secret is None:
        raise WaitingFor(f"Secret {secret_name} does not exist yet")
    customer_id, key = customer_of(owner, secret)
    return NodeApi(node_url(namespace, names.node_name(owner)), customer_id, key)
