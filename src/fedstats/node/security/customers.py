"""Customers: who may call a node, with which secret key, and with which body encryption.

The list comes from a JSON file (`--customers FILE`) or the `FEDSTATS_CUSTOMERS`
environment variable (a path, or the JSON text itself, handy in a Kubernetes Secret):

    {"c1": "<Base64 key>", "c2": {"key": "<Base64 key>", "legacy_cbc": true}}

Every key is decoded when loaded, so a bad one stops the node at start with a message
naming the customer, never the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import CryptoError
from .keys import decode_key, mask

ENV_VAR = "FEDSTATS_CUSTOMERS"


@dataclass(frozen=True)
class Customer:
    """A customer id and its secret key; `legacy_cbc` allows the reference's AES-CBC bodies."""

    id: str
    secret_key: str = field(repr=False)
    legacy_cbc: bool = False

    def __repr__(self) -> str:
        return (f"Customer(id={self.id!r}, secret_key={mask(self.secret_key)!r}, "
                f"legacy_cbc={self.legacy_cbc!r})")


def parse_customers(data: Any, source: str = "customers") -> dict[str, Customer]:
    """Customers from the decoded JSON object; ValueError naming the bad entry."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object {{customer id: key}}")
    out: dict[str, Customer] = {}
    for cid, entry in data.items():
        if not cid:
            raise ValueError(f"{source}: empty customer id")
        legacy = False
        if isinstance(entry, dict):
            unknown = set(entry) - {"key", "legacy_cbc"}
            if unknown:
                raise ValueError(f"{source}: customer {cid!r}: unknown fields {sorted(unknown)}")
            key, legacy = entry.get("key"), entry.get("legacy_cbc", False)
            if not isinstance(legacy, bool):
                raise ValueError(f"{source}: customer {cid!r}: legacy_cbc must be true or false")
        else:
            key = entry
        if not isinstance(key, str):
            raise ValueError(f"{source}: customer {cid!r}: the key must be a Base64 string")
        try:
            decode_key(key)
        except CryptoError as e:
            raise ValueError(f"{source}: customer {cid!r}: {e}") from None
        out[cid] = Customer(cid, key.strip(), legacy)
    return out


def load_customers(path: str | None = None) -> dict[str, Customer]:
    """Customers from `path`, else from `$FEDSTATS_CUSTOMERS` (a path or JSON text)."""
    if path is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if not env:
            raise ValueError(f"no customers: give a file or set {ENV_VAR}")
        if env.startswith("{"):
            return parse_customers(_loads(env.encode(), f"${ENV_VAR}"), f"${ENV_VAR}")
        path = env
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read customers file {path}: {e.strerror}") from e
    return parse_customers(_loads(raw, str(path)), str(path))


def _loads(raw: bytes, source: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        # The position helps; the text around it could hold a key, so it is not shown.
        raise ValueError(f"{source}: not valid JSON (line {e.lineno}, column {e.colno})") from None
