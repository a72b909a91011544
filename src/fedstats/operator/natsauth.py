"""NATS accounts and users the operator derives: one account per Federation. Pure.

Why a generated authorization config and a reload rather than decentralized JWTs: the
permissions already exist as `natsconf`'s rules (the one source of truth, shared with the
local processes), a config file is something a reviewer can read, and nats-server applies
a changed `include`d file on a reload signal without dropping connections, so a new Peer
needs no restart and a deleted Peer's user is gone after that reload. An account per
Federation is the isolation: subjects and JetStream of one account are invisible to
another, whatever a member's permissions would otherwise allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fedstats.node.federation.natsconf import User, federation_users
from fedstats.node.federation.subjects import token


@dataclass(frozen=True)
class Member:
    """A member's NATS credentials: `peer` is its id in the federation."""

    peer: str
    password: str


def account_name(fed_name: str) -> str:
    """The NATS account of a federation (NATS account names: no dots, no spaces)."""
    return "FED_" + token(fed_name).upper()


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


__all__ = ["Member", "account_name", "accounts_config", "federation_account", "user_name"]
