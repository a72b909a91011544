"""Control messages: full-sync requests, the admin's schedule and contract, joins.

They are small JSON bodies sealed like snapshots (one frame, `kind` "control"). Applying
the admin's announcements is pure: `apply_admin` adopts a schedule or contract only when
its sequence number is above the one held, so a redelivered or reordered announcement
never rolls a peer back.
"""

from __future__ import annotations

from typing import Any

import orjson

from .contract import parse_contract
from .errors import FederationError, WireError
from .schedule import parse_schedule
from .state import FedConfig
from .subjects import Names
from .wire import open_message, read_frame, seal_message


def seal_json(config: FedConfig, names: Names, version: int, body: dict[str, Any]) -> bytes:
    """`body` as one sealed control frame from this node."""
    [frame] = seal_message(
        config.fed_secret_key, names.fed, config.peer_id, "control", version, orjson.dumps(body)
    )
    return frame


def open_json(key: str, data: bytes) -> Any:
    """The JSON body of one sealed control frame (WireError if it is not one of ours)."""
    try:
        return orjson.loads(open_message(key, [read_frame(data)]))
    except orjson.JSONDecodeError as e:
        raise WireError(f"a control message that is not JSON: {e}") from e


def parse_control(body: bytes) -> dict[str, Any]:
    """A control body's map, with its `type` (WireError otherwise)."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise WireError("unreadable control message") from e
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise WireError("unreadable control message")
    return msg


def apply_admin(config: FedConfig, msg: dict[str, Any]) -> str | None:
    """Adopt the admin's newer schedule or contract into `config`; what changed, or None."""
    kind = msg["type"]
    try:
        seq = int(msg["seq"])
        if kind == "schedule" and seq > config.schedule_seq:
            config.sync_sched = parse_schedule(msg["schedule"]).text
            config.schedule_seq = seq
            return f"schedule is now {config.sync_sched} (from the admin)"
        if kind == "contract" and seq > config.contract_seq:
            lines = [str(line) for line in msg["lines"]]
            contract = parse_contract(lines)
            config.contract, config.contract_seq = lines, seq
            return f"PSR contract updated by the admin ({len(contract.rules)} rules)"
    except (KeyError, TypeError, ValueError) as e:  # FederationError is a ValueError
        what = e if isinstance(e, FederationError) else f"missing or bad {e}"
        raise WireError(f"malformed {kind!r} message from the admin: {what}") from e
    return None
