"""Joining a federation: what an invitation holds, how the admin answers, what a peer adopts.

An invitation is a password-sealed payload with a one-time, expiring join token. The token
is redeemed at the admin, over NATS, because that is where it was issued; the token store
cannot revoke, so the admin remembers the digest of the newest invitation per peer id and
refuses the older ones. The functions here are the rules of that exchange, free of NATS
and of the state file: the hub issues, stores and sends, and calls them to decide.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..security.errors import CryptoError
from ..security.invites import KDFS, MIN_KEY_PASSWORD, TokenBook
from .errors import FederationError, InviteError, Unreachable
from .options import flag, invite_credentials, number
from .state import FedConfig
from .subjects import token

INVITE_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class InviteRequest:
    """What an invitation request asks for, read and checked against the federation."""

    password: str = field(repr=False)
    peer: str
    merges: bool
    ttl: float
    credentials: dict[str, str] = field(default_factory=dict, repr=False)  # the peer's NATS
    kdf: str = "scrypt"  # how the invitation's key comes from the password (`seal_invite`)


def purpose(config: FedConfig) -> str:
    """What a join token of this federation is issued for (and redeemed as)."""
    return f"join:{config.fed_name}"


def token_digest(join_token: str) -> str:
    """What the admin keeps of an invitation's token to recognise it (never the token)."""
    return hashlib.sha256(join_token.encode()).hexdigest()


def invite_request(config: FedConfig, opts: Mapping[str, Any]) -> InviteRequest:
    """Read an invitation request: a password, a free peer id (else a fresh one), whether
    the peer merges (always in decentralized, on request in hybrid), the token's TTL and
    the peer's own NATS credentials. All of it is read before a token is issued: a bad
    request must not leave a newer invitation on record (it would revoke the last one)."""
    password = opts.get("passwd")
    if not isinstance(password, str) or not password:
        raise FederationError("passwd is required to seal the invitation")
    peer = token(str(opts.get("fed_peer_id") or f"peer-{secrets.token_hex(4)}"))
    if peer == config.peer_id or peer in config.peers:
        raise FederationError(f"peer id {peer!r} is already taken in this federation")
    merges = config.topology == "decentralized" or (
        config.topology == "hybrid" and flag(opts.get("fed_merges", False))
    )
    ttl = number(opts, "fed_req_token_ttl", INVITE_TTL_S)
    return InviteRequest(password, peer, merges, ttl, invite_credentials(opts),
                         invite_kdf(opts, password))


def invite_kdf(opts: Mapping[str, Any], password: str) -> str:
    """`fed_invite_kdf`: scrypt (the default, for passwords people choose) or hkdf, for a
    program's random password of at least `MIN_KEY_PASSWORD` characters (the operator's),
    which needs no work factor."""
    kdf = opts.get("fed_invite_kdf") or "scrypt"
    if kdf not in KDFS:
        raise FederationError(f"fed_invite_kdf is one of {', '.join(KDFS)}, not {kdf!r}")
    if kdf == "hkdf" and len(password) < MIN_KEY_PASSWORD:
        raise FederationError(
            f"fed_invite_kdf=hkdf needs a random passwd of at least {MIN_KEY_PASSWORD} "
            "characters; a password people choose is sealed with scrypt (the default)")
    return str(kdf)


def invitation_payload(config: FedConfig, invite: InviteRequest, join_token: str,
                       rest_host: Any) -> dict[str, Any]:
    """What the sealed invitation tells the peer: with the peer's own NATS credentials, all
    or nothing, from the request; never the admin's (a peer holding them could act as the
    admin on NATS)."""
    payload = {
        "fed_name": config.fed_name,
        "fed_secret_key": config.fed_secret_key,
        "fed_req_token": join_token,
        "fed_peer_id": invite.peer,
        "fed_admin_peer": config.peer_id,
        "fed_type": config.topology,
        "fed_merges": invite.merges,
        "sync_sched": config.sync_sched,
        "nats_hosts": ",".join(config.nats_hosts),
        "nats_req_timeout": config.nats_req_timeout,
        "nats_stream_max_memory": config.nats_stream_max_memory,
        "fed_rest_host": rest_host or config.fed_rest_host or "",
    }
    return payload | invite.credentials


def already_joined(config: FedConfig, peer: Any) -> str | None:
    """Why `peer` may not join again (it is a member, or the admin), or None."""
    if peer == config.peer_id or peer in config.peers:
        return (
            f"peer id {peer!r} has already joined this federation: one invitation per "
            "peer id is ever redeemed"
        )
    return None


MAX_FLOW_PARTIES = 16


def flow_parties(value: Any) -> list[int]:
    """The FATE party ids a joining node announces (`flowlink`): at most 16 non-negative
    integers; anything else announces none (the join itself is not refused for it)."""
    if not isinstance(value, list) or len(value) > MAX_FLOW_PARTIES:
        return []
    ids = [v for v in value if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63]
    return sorted(set(ids)) if len(ids) == len(value) else []


def answer_join(config: FedConfig, tokens: TokenBook, request: Mapping[str, Any],
                now: float | None = None) -> dict[str, Any]:
    """The admin's answer to a join request; on `ok` the new peer is recorded in `config`
    (the caller stores it). The request is checked against the token before the token is
    redeemed: a request that is refused (another peer id, a revoked invitation, a peer
    already joined) leaves the invitation usable."""
    join_token = str(request.get("token", ""))
    try:
        meta = tokens.inspect(join_token, purpose(config))
    except CryptoError as e:
        return {"ok": False, "error": str(e)}
    if meta.get("peer") != request.get("peer"):
        return {"ok": False, "error": "the invitation was issued for another peer id"}
    peer = str(meta["peer"])
    joined = already_joined(config, peer)
    if joined:
        return {"ok": False, "error": joined}
    newest = config.invites.get(peer)
    if newest is not None and newest != token_digest(join_token):
        return {
            "ok": False,
            "error": f"this invitation for peer id {peer!r} was revoked: a newer one "
            "was issued for it",
        }
    try:
        tokens.redeem(join_token, purpose(config))  # atomic: one of two racing joins wins
    except CryptoError as e:
        return {"ok": False, "error": str(e)}
    config.invites.pop(peer, None)
    config.peers[peer] = {
        "joined_at": time.time() if now is None else now,
        "merges": bool(meta.get("merges")),
        "flow_parties": flow_parties(request.get("flow_parties")),
    }
    config.joined_with[peer] = token_digest(join_token)
    return {
        "ok": True,
        "sync_sched": config.sync_sched,
        "schedule_seq": config.schedule_seq,
        "contract": config.contract,
        "contract_seq": config.contract_seq,
    }


def answer_abandon(config: FedConfig, request: Mapping[str, Any]) -> dict[str, Any]:
    """A peer the admin admitted could not finish joining (its own project or store failed
    after the admin's answer): the admission is rolled back, so no ghost member stays.
    Only the token that admitted the peer can abandon it; the invitation stays spent (a
    new one may be issued for the same peer id)."""
    peer = str(request.get("peer", ""))
    digest = config.joined_with.get(peer)
    if digest is None or digest != token_digest(str(request.get("token", ""))):
        return {"ok": False, "error": f"peer {peer!r} was not admitted with this invitation"}
    config.peers.pop(peer, None)
    config.joined_with.pop(peer, None)
    return {"ok": True, "abandoned": peer}


def refusal(answer: Mapping[str, Any]) -> FederationError | None:
    """The error of an admin's answer that refused the join (None if it admitted): one
    to retry (`Unreachable`) when the admin said so, as while it is starting."""
    if answer.get("ok"):
        return None
    error = Unreachable if answer.get("retry") else InviteError
    return error(f"the federation admin refused the join: {answer.get('error')}")


def adopt(config: FedConfig, answer: Mapping[str, Any]) -> None:
    """A joining peer takes the admin's schedule and contract (and their sequences)."""
    config.sync_sched = answer.get("sync_sched", config.sync_sched)
    config.schedule_seq = int(answer.get("schedule_seq", 0))
    config.contract = list(answer.get("contract", []))
    config.contract_seq = int(answer.get("contract_seq", 0))
