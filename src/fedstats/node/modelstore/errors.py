"""Errors of the model store, one class per condition a caller can act on.

    ModelStoreError (Exception)          `data`: the store, model or upstream concerned
    ├── InvalidParams                    a parameter of the right type but a wrong value
    ├── StoreNotFound / StoreAlreadyExists
    ├── ModelNotFound / NoAggregatedModel / PartyNotFound
    ├── UpstreamNotConfigured            the store has no upstream (this node is a root)
    ├── UpstreamError                    the upstream is unreachable or refused; `data`
    │                                    carries its error object or the transport message
    ├── IntegrityError                   bytes whose size or SHA-256 is not the recorded one
    ├── ModelTooLarge                    over the node's largest model (max_model_bytes)
    ├── QuotaExceeded                    over a store's size or count quota
    ├── AggregationError                 models that cannot be merged exactly
    ├── Forbidden                        an admin-only method asked by another customer
    └── ConfigError                      the node's model store configuration lacks a value

The facades decide what each becomes on the wire (the JSON-RPC codes live in
`api/jsonrpc/codes.py`); nothing here knows of HTTP. Messages never carry a secret.
"""

from __future__ import annotations

from typing import Any


class ModelStoreError(Exception):
    """Base of the model store's errors; `data` names what the error concerns."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = {k: v for k, v in data.items() if v is not None}


class InvalidParams(ModelStoreError):
    """A parameter value the method cannot act on (a bad store name, an unknown state)."""


class StoreNotFound(ModelStoreError):
    """No store of that name for this customer."""


class StoreAlreadyExists(ModelStoreError):
    """`initialize_model_store` of a name already taken."""


class ModelNotFound(ModelStoreError):
    """No model of that id in the store."""


class NoAggregatedModel(ModelStoreError):
    """The (upstream) store holds no aggregated model to transfer."""


class PartyNotFound(ModelStoreError):
    """No party of that id."""


class UpstreamNotConfigured(ModelStoreError):
    """A feedback or transfer from a store without an upstream."""


class UpstreamError(ModelStoreError):
    """The upstream could not be reached or refused the call."""


class IntegrityError(ModelStoreError):
    """Bytes whose size or digest differs from the model's record."""


class DigestMismatch(ModelStoreError):
    """An upload whose file does not hash to the SHA-256 it declared (and signed)."""


class ModelTooLarge(ModelStoreError):
    """A model over the node's `max_model_bytes`."""


class QuotaExceeded(ModelStoreError):
    """A put that would take a store over its size or count quota."""


class AggregationError(ModelStoreError):
    """Models that cannot be merged (not fedstats snapshots, or schemas that conflict)."""


class Forbidden(ModelStoreError):
    """A method reserved to the node's model store admins."""


class ConfigError(ModelStoreError):
    """A configuration value the method needs is missing."""
