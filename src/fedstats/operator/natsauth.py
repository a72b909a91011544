"""NATS accounts and users the operator derives: one account per Federation. Pure.

Why a generated authorization config and a reload rather than decentralized JWTs: the
permissions already exist as `natsconf`'s rules (the one source of truth, shared with the
local processes), a config file is something a reviewer can read, and nats-server applies
a changed `include`d file on a reload signal without dropping connections, so a new Peer
needs no restart and a deleted Peer's user is gone after that reload. An account per
Federation is the isolation: subjects and JetStream of one account are invisible to
another, whatever a member's permissions would otherwise allow.

The whole file is made from one `AuthState` (every federation's topology and members),
which the operator keeps as JSON beside the rendered file in one Secret (`authstore`):
reading that Secret back is how a restarted operator knows who is a member. A file with
no federation still requires authentication (a locked placeholder account whose password
nobody holds), because nats-server with no users at all lets anyone in.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fedstats.node.federation.natsconf import User, federation_users
from fedstats.node.federation.subjects import token

AUTH_FILE = "auth.conf"  # the keys of the operator's auth Secret
STATE_FILE = "members.json"
LOCKED_ACCOUNT = "FEDSTATS_LOCKED"
ADMIN_PEER = "admin"  # the admin node's peer id (the node's default fed_peer_id)


@dataclass(frozen=True)
class Member:
    """A member's NATS credentials: `peer` is its id in the federation."""

    peer: str
    password: str


def account_name(fed_name: str, namespace: str = "") -> str:
    """The NATS account of a federation (NATS account names: no dots, no spaces).

    The namespace is part of it: two namespaces may each hold a federation `demo`."""
    base = f"{namespace}_{fed_name}" if namespace else fed_name
    return "FED_" + token(base).upper()


def user_name(fed_name: str, peer: str) -> str:
    """A member's NATS user name, unique across federations (one server holds them all)."""
    return f"{token(fed_name)}-{token(peer)}"


def federation_account(fed_name: str, topology: str, admin: Member,
                       peers: Iterable[Member], mergers: Iterable[str] = ()) -> dict[str, Any]:
    """The account block of one federation: JetStream on, a user per member."""
    def user(m: Member) -> User:
        return User(name=user_name(fed_name, m.peer), peer=m.peer, password=m.password)
    users = federation_users(fed_name, topology, user(admin), [user(p) for p in peers],
                             mergers)
    return {"jetstream": "enabled", "users": users}


def accounts_config(accounts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `accounts` section for the included auth file: {account name: block}."""
    return {"accounts": {name: dict(block) for name, block in sorted(accounts.items())}}


@dataclass
class FederationAuth:
    """One federation's members as the operator recorded them."""

    fed_name: str
    topology: str
    admin: str | None = None  # the admin node's password (None: not made yet)
    peers: dict[str, str] = field(default_factory=dict)  # peer id -> password
    mergers: list[str] = field(default_factory=list)  # hybrid: the peers that merge

    def account(self) -> dict[str, Any] | None:
        if self.admin is None:
            return None  # no admin user yet: no account (peers wait for it)
        peers = [Member(p, pw) for p, pw in sorted(self.peers.items())]
        return federation_account(self.fed_name, self.topology,
                                  Member(ADMIN_PEER, self.admin), peers, self.mergers)


AuthState = dict[str, FederationAuth]  # account name -> federation


def encode_state(state: AuthState) -> str:
    return json.dumps({k: v.__dict__ for k, v in sorted(state.items())}, sort_keys=True)


def decode_state(text: str | None) -> AuthState:
    if not text:
        return {}
    raw = json.loads(text)
    return {k: FederationAuth(**v) for k, v in raw.items()}


def render_auth(state: AuthState, locked_password: str | None = None) -> str:
    """The included file: `accounts { ... }`, never one without a user (see module doc)."""
    accounts = {name: block for name, fed in state.items()
                if (block := fed.account()) is not None}
    accounts[LOCKED_ACCOUNT] = {"users": [{
        "user": "fedstats-locked",
        "password": locked_password or secrets.token_urlsafe(32),
        "permissions": {"publish": {"deny": [">"]}, "subscribe": {"deny": [">"]}},
    }]}
    return "accounts: " + json.dumps(accounts_config(accounts)["accounts"], indent=1) + "\n"


__all__ = [
    "ADMIN_PEER",
    "AUTH_FILE",
    "STATE_FILE",
    "AuthState",
    "FederationAuth",
    "Member",
    "account_name",
    "accounts_config",
    "decode_state",
    "encode_state",
    "federation_account",
    "render_auth",
    "user_name",
]
