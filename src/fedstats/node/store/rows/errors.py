"""Errors of the row store.

    RowStoreError
    ├── RowSchemaError (engine SchemaMismatch)  a batch whose attributes differ from the store's
    ├── UnmatchedRow (engine EngineError)       a forgotten row that no stored row equals
    ├── RowStoreLocked                          the directory is open elsewhere (another handle)
    ├── RowStoreClosed                          the store was closed or dropped
    └── CorruptStore                            a catalogued segment is missing or unreadable

The first two are a client's mistake (the engine's bases make them 400s wherever the node
maps engine errors); the others are the node's own state and never a client's fault.
"""

from __future__ import annotations

from fedstats.node.engine.errors import EngineError, SchemaMismatch


class RowStoreError(Exception):
    """Base of every error the row store raises."""


class RowSchemaError(RowStoreError, SchemaMismatch):
    """A batch whose attributes (names or types) are not the store's."""


class UnmatchedRow(RowStoreError, EngineError):
    """A row to forget that matches no stored row: nothing was forgotten.

    `index` is the row's position in the batch given to `delete_matching`.
    """

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class RowStoreLocked(RowStoreError):
    """The store's directory is already open (in this process or another)."""


class RowStoreClosed(RowStoreError):
    """The store was closed or dropped."""


class CorruptStore(RowStoreError):
    """The catalog names a segment file that is missing or cannot be read."""
