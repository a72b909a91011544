"""The fedml bodies read into a federation's settings: pure, so every rule is tested alone.

`admin_config` reads a create body, `peer_config` a createJoin body (the invitation's
fields, with this node's own NATS address), each into a `FedConfig`, refusing what could
not work with a `FederationError` naming the option: a missing name, an unknown topology,
a number that is not one (or absurdly large: 1e300 bytes of stream memory does not fit
the 64-bit integers NATS and the state file store), a key that is not Base64 of 32 bytes,
a contract or schedule that does not parse, a name or a contract over the node's
`Limits`. The invitation's own options (the peer's credentials, exactly one kind) are
read here too; what an invitation holds is `joining`'s.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any

from ..limits import Limits
from ..security.errors import CryptoError
from ..security.keys import decode_key, new_secret_key
from .contract import parse_contract
from .errors import FederationError
from .natsconf import TOPOLOGIES
from .schedule import parse_schedule
from .state import FedConfig
from .subjects import DEFAULT_STREAM_MAX_MEMORY, token

Options = Mapping[str, Any]

AUTH_KEYS = ("nats_sec_user", "nats_sec_passwd", "nats_sec_token", "nats_sec_nkey_seed")
# the most each numeric option may be: larger is a mistake
LIMITS = {
    "nats_req_timeout": 3600.0,
    "nats_stream_max_memory": float(1 << 40),
    "fed_req_token_ttl": 365 * 86400.0,
}
_CREDENTIAL_KINDS = {
    "user and password": ("nats_sec_user", "nats_sec_passwd"),
    "token": ("nats_sec_token",),
    "NKEY seed": ("nats_sec_nkey_seed",),
}


def admin_config(opts: Options, default_engine: str, limits: Limits) -> FedConfig:
    """The settings of a new federation, administered here, from a create body."""
    name = opts.get("fed_name")
    if not isinstance(name, str) or not name.strip():
        raise FederationError("fed_name is required")
    check_fed_name(name.strip(), limits)
    topology = str(opts.get("fed_type", "decentralized")).lower()
    if topology not in TOPOLOGIES:
        raise FederationError(f"fed_type must be one of {', '.join(TOPOLOGIES)}")
    config = FedConfig(
        fed_name=name.strip(),
        fed_secret_key=federation_key(opts.get("fed_secret_key")),
        role="admin",
        peer_id=token(str(opts.get("fed_peer_id", "admin"))),
        topology=topology,
        sync_sched=parse_schedule(str(opts.get("sync_sched", "m30"))).text,
        contract=contract_lines(opts.get("contract")),
        fed_local_type=str(opts.get("fed_local_type") or default_engine),
        nats_hosts=hosts(opts.get("nats_hosts")),
        nats_req_timeout=number(opts, "nats_req_timeout", 30.0),
        nats_stream_max_memory=int(
            number(opts, "nats_stream_max_memory", DEFAULT_STREAM_MAX_MEMORY)
        ),
        **credentials(opts),
    )
    config.admin_peer = config.peer_id
    parse_contract(config.contract, limits.max_contract_rules, limits.max_contract_bytes)
    return config


def peer_config(opts: Options, default_engine: str, limits: Limits) -> FedConfig:
    """The settings of a peer joining the federation an invitation describes.

    An unknown topology reads as decentralized (the invitation comes from the admin, who
    checked it); a peer merges its peers' statistics unless the invitation says otherwise.
    """
    missing = [k for k in ("fed_name", "fed_secret_key", "fed_req_token") if not opts.get(k)]
    if missing:
        raise FederationError(f"the join body lacks {', '.join(missing)} (from the invitation)")
    check_fed_name(str(opts["fed_name"]), limits)
    topology = str(opts.get("fed_type", "decentralized"))
    return FedConfig(
        fed_name=str(opts["fed_name"]),
        fed_secret_key=str(opts["fed_secret_key"]),
        role="peer",
        peer_id=token(str(opts.get("fed_peer_id") or f"peer-{secrets.token_hex(4)}")),
        admin_peer=str(opts.get("fed_admin_peer", "admin")),
        topology=topology if topology in TOPOLOGIES else "decentralized",
        merges=flag(opts.get("fed_merges", topology == "decentralized")),
        sync_sched=parse_schedule(str(opts.get("sync_sched", "m30"))).text,
        fed_local_type=str(opts.get("fed_local_type") or default_engine),
        nats_hosts=hosts(opts.get("nats_hosts")),
        nats_req_timeout=number(opts, "nats_req_timeout", 30.0),
        nats_stream_max_memory=int(
            number(opts, "nats_stream_max_memory", DEFAULT_STREAM_MAX_MEMORY)
        ),
        fed_rest_host=opts.get("fed_rest_host") or None,
        **credentials(opts),
    )


def check_fed_name(name: str, limits: Limits) -> None:
    """A federation's name becomes subjects and stream names: bounded (Limits)."""
    if len(name) > limits.max_fed_name_chars:
        raise FederationError(
            f"fed_name of {len(name):,} characters is over the node's limit "
            f"max_fed_name_chars={limits.max_fed_name_chars}")


def hosts(value: Any) -> list[str]:
    """NATS URLs from a comma-separated text or a list (`nats://` added where missing)."""
    if value is None:
        return ["nats://127.0.0.1:4222"]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(h, str) for h in value):
        items = value
    else:
        raise FederationError(
            "nats_hosts is a comma-separated list of NATS URLs (text), or a list of them"
        )
    found = [str(h).strip() for h in items if str(h).strip()]
    if not found:
        raise FederationError("nats_hosts names no server")
    return [h if "://" in h else f"nats://{h}" for h in found]


def number(opts: Options, key: str, default: float) -> float:
    """Option `key` as a positive, finite number no larger than its `LIMITS` entry."""
    raw = opts.get(key, default)
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise FederationError(f"{key} must be a number, not {str(raw)[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise FederationError(f"{key} must be a positive number")
    if value > LIMITS[key]:
        raise FederationError(f"{key} must be at most {LIMITS[key]:.0f}")
    return value


def contract_lines(value: Any) -> list[str]:
    """A contract option: a list of rule lines (or text, one rule a line)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise FederationError("contract is a list of rules (text), one per line")
    return list(value)


def flag(value: Any) -> bool:
    """A yes/no option: true for 1, true, yes (any case), false for anything else."""
    return str(value).strip().lower() in ("1", "true", "yes")


def credentials(opts: Options) -> dict[str, Any]:
    """The NATS credentials `opts` give (FedConfig keyword arguments)."""
    return {k: str(opts[k]) for k in AUTH_KEYS if opts.get(k)}


def invite_credentials(opts: Options) -> dict[str, str]:
    """The peer's NATS credentials an invitation request gives: exactly one kind, or none."""
    given = {k: opts.get(k) for k in AUTH_KEYS if opts.get(k) not in (None, "")}
    for key, value in given.items():
        if not isinstance(value, str):
            raise FederationError(f"{key} must be a string")
    kinds = [kind for kind, keys in _CREDENTIAL_KINDS.items() if any(k in given for k in keys)]
    if len(kinds) > 1:
        raise FederationError(
            f"give the peer one kind of NATS credentials, not {' and '.join(kinds)}"
        )
    if kinds == ["user and password"] and len(given) != 2:
        raise FederationError("nats_sec_user and nats_sec_passwd go together")
    return {k: str(v) for k, v in given.items()}


def federation_key(value: Any) -> str:
    """The key an operator generated (validated: Base64 of 32 bytes), else a new one."""
    if value is None or value == "":
        return new_secret_key()
    try:
        decode_key(value)
    except CryptoError as e:
        raise FederationError(f"fed_secret_key is not usable: {e}") from None
    return str(value).strip()
