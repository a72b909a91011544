"""The operator's shared type aliases, in one place (as httpx and Starlette keep theirs).

Two shapes of Kubernetes JSON: a `Body` is read (a resource kopf hands over, an object
the API answered) and never changed in place; an `Obj` is a JSON object the operator owns
and may edit (what the pure builders make, an answer of the API client). The node's
answers the reconcilers
read are typed too, with only the keys the operator uses: `NodeApi` returns them, so a
misspelt key is a type error rather than a silently empty status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

Body = Mapping[str, Any]
Obj = dict[str, Any]


class FedInfo(TypedDict, total=False):
    """A project's `fedInfo` as its node reports it (the federation's key left out)."""

    fed_name: str
    fed_type: str  # the topology: decentralized, centralized or hybrid
    fed_is_admin: bool
    fed_peer_id: str
    sync_sched: str
    is_pulsing: bool
    peersInfo: dict[str, Any]  # peer id -> what the node knows of it (version, rows)
    contract: list[str]  # the PSR contract's lines as the admin holds them
    allow_peers_explore: bool
    nats_hosts: str


class SyncStats(TypedDict, total=False):
    """A project's `fedSyncStats`: the counters and logs the Peer's status is made from."""

    sndCount: int
    rcvCount: int
    syncLog: list[str]
    errorLog: list[str]
