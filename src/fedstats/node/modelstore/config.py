"""The model store's configuration: who this node is upstream, its upstreams, its limits.

Read once at start from `$FEDSTATS_MODELSTORE` (a path, or the JSON text itself, as for
the customers) or else `<data dir>/modelstore.json`; absent, every default applies (a root
node with no admins, no upstreams and the default quotas):

    {"tenant_id": "edge-1", "tenant_name": "Edge one", "location": [139.7, 35.7],
     "admins": ["c1"],                       customers who may set upstreams (fedstats.*)
     "allow_secret_header": false,           accept the reference's plain Secret (TLS only)
     "max_model_bytes": 8589934592,          the largest model one put may carry
     "quota": {"max_bytes": null, "max_models": null},     every store's, by default
     "aggregate_on_feedback": true,          merge fedstats snapshots as they are fed back
     "upstream": {"endpoint": "https://region:8443", "model_store_ddc": "ddc:region",
                  "apikey": "<customer id there>", "secret": "<its Base64 key>"},
     "stores": {"ddc:s1": {"upstream": {...} | null, "quota": {...},
                           "aggregate_on_feedback": false}}}

`upstream` at the top is the default of every store and the one parties are registered
with; a store's own entry overrides it (null: that store is a root). An upstream's
`model_store_ddc` defaults to the local store's name. Bad values stop the node at start
with a message naming the field, never a secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ENV_VAR = "FEDSTATS_MODELSTORE"
GiB = 1 << 30


@dataclass(frozen=True)
class Upstream:
    """Another node's model store: its base URL, the store there, and our credentials."""

    endpoint: str
    model_store_ddc: str | None  # None: the same name as the local store
    apikey: str
    secret: str = field(repr=False)
    enabled: bool = True

    def store_for(self, local_store: str) -> str:
        return self.model_store_ddc or local_store

    def public(self) -> dict[str, Any]:
        """As shown to clients: everything but the secret."""
        return {"upstream_endpoint": self.endpoint,
                "upstream_model_store_ddc": self.model_store_ddc,
                "upstream_apikey": self.apikey, "enabled": self.enabled}


@dataclass(frozen=True)
class Quota:
    max_bytes: int | None = None
    max_models: int | None = None


@dataclass(frozen=True)
class StoreConfig:
    upstream: Upstream | None
    quota: Quota
    aggregate_on_feedback: bool


@dataclass(frozen=True)
class ModelStoreConfig:
    tenant_id: str | None = None  # None: the node's own id (a UUID kept in its database)
    tenant_name: str | None = None
    location: tuple[float, float] = (0.0, 0.0)
    admins: frozenset[str] = frozenset()
    allow_secret_header: bool = False
    max_model_bytes: int = 8 * GiB
    quota: Quota = Quota()
    aggregate_on_feedback: bool = True
    upstream: Upstream | None = None
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def store(self, name: str) -> StoreConfig:
        """The effective configuration of store `name` (its own entry over the defaults)."""
        own = self.stores.get(name, {})
        upstream = own.get("upstream", self.upstream)
        return StoreConfig(upstream, own.get("quota", self.quota),
                           own.get("aggregate_on_feedback", self.aggregate_on_feedback))


def load_config(data_dir: Path | None = None) -> ModelStoreConfig:
    """From `$FEDSTATS_MODELSTORE`, else `<data_dir>/modelstore.json`, else the defaults."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env.startswith("{"):
        return parse_config(_loads(env.encode(), f"${ENV_VAR}"), f"${ENV_VAR}")
    path = Path(env) if env else (Path(data_dir) / "modelstore.json" if data_dir else None)
    if path is None or (not env and not path.exists()):
        return ModelStoreConfig()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read model store configuration {path}: {e.strerror}") from e
    return parse_config(_loads(raw, str(path)), str(path))


_TOP = {"tenant_id", "tenant_name", "location", "admins", "allow_secret_header",
        "max_model_bytes", "quota", "aggregate_on_feedback", "upstream", "stores"}


def parse_config(data: Any, source: str = "modelstore") -> ModelStoreConfig:
    """The configuration from its decoded JSON; ValueError naming the bad field."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object")
    _no_unknown(data, _TOP, source)
    stores: dict[str, dict[str, Any]] = {}
    for name, entry in _typed(data, "stores", dict, {}, source).items():
        where = f"{source}: stores.{name}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        _no_unknown(entry, {"upstream", "quota", "aggregate_on_feedback"}, where)
        own: dict[str, Any] = {}
        if "upstream" in entry:
            own["upstream"] = parse_upstream(entry["upstream"], f"{where}.upstream")
        if "quota" in entry:
            own["quota"] = _quota(entry["quota"], f"{where}.quota")
        if "aggregate_on_feedback" in entry:
            own["aggregate_on_feedback"] = _typed(entry, "aggregate_on_feedback", bool,
                                                  True, where)
        stores[name] = own
    location = data.get("location", [0.0, 0.0])
    if (not isinstance(location, list) or len(location) != 2
            or not all(_number(v) for v in location)):
        raise ValueError(f"{source}: location must be [longitude, latitude]")
    admins = _typed(data, "admins", list, [], source)
    if not all(isinstance(a, str) for a in admins):
        raise ValueError(f"{source}: admins must be a list of customer ids")
    max_model = _typed(data, "max_model_bytes", int, 8 * GiB, source)
    if max_model < 1:
        raise ValueError(f"{source}: max_model_bytes must be positive")
    return ModelStoreConfig(
        tenant_id=_typed(data, "tenant_id", str, None, source),
        tenant_name=_typed(data, "tenant_name", str, None, source),
        location=(float(location[0]), float(location[1])),
        admins=frozenset(admins),
        allow_secret_header=_typed(data, "allow_secret_header", bool, False, source),
        max_model_bytes=max_model,
        quota=_quota(data.get("quota", {}), f"{source}: quota"),
        aggregate_on_feedback=_typed(data, "aggregate_on_feedback", bool, True, source),
        upstream=parse_upstream(data.get("upstream"), f"{source}: upstream"),
        stores=stores,
    )


def parse_upstream(entry: Any, where: str) -> Upstream | None:
    """An upstream from its JSON object (None for null); ValueError naming the field."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object or null")
    _no_unknown(entry, {"endpoint", "model_store_ddc", "apikey", "secret", "enabled"}, where)
    endpoint = _typed(entry, "endpoint", str, None, where)
    if not endpoint or not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"{where}: endpoint must be an http:// or https:// URL")
    apikey, secret = entry.get("apikey"), entry.get("secret")
    if not isinstance(apikey, str) or not apikey or not isinstance(secret, str) or not secret:
        raise ValueError(f"{where}: apikey and secret (the customer there and its key) "
                         "are required")
    return Upstream(endpoint.rstrip("/").removesuffix("/jsonrpc"),
                    _typed(entry, "model_store_ddc", str, None, where), apikey, secret,
                    _typed(entry, "enabled", bool, True, where))


def _quota(entry: Any, where: str) -> Quota:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")
    _no_unknown(entry, {"max_bytes", "max_models"}, where)
    values = [_typed(entry, k, int, None, where) for k in ("max_bytes", "max_models")]
    if any(v is not None and v < 0 for v in values):
        raise ValueError(f"{where}: quotas cannot be negative")
    return Quota(*values)


def _typed(data: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = data.get(key, default)
    if value is None or value is default:
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}: {key} must be of type {kind.__name__}")
    return value


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _no_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")


def _loads(raw: bytes, source: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON (line {e.lineno}, column {e.colno})") from None
