"""The node-local row store: learned rows kept on the node's volume, when a project asks.

    store.py     RowStore: append, delete_matching (a multiset), scan, count, schema, drop
    snapshot.py  a consistent view (segments + deletion vectors) read chunk by chunk
    schema.py    stored rows as Arrow tables (one column per attribute) <-> engine Batches
    matching.py  which stored rows a batch to forget claims (exact, multiset)
    segments.py  segment files (temp name, fsync, rename) and inline segments
    catalog.py   the SQLite catalog: stores, segments, row counts, deletion vectors
    errors.py    the store's errors

Projects created with `sml_project_keep_rows` keep their rows here, and the FATE-Flow API
calls the same store a table: one component, one small interface.
"""

from .catalog import names as stored_names
from .errors import (
    CorruptStore,
    RowSchemaError,
    RowStoreClosed,
    RowStoreError,
    RowStoreLocked,
    UnmatchedRow,
)
from .schema import RowSchema, to_batch, to_rows
from .snapshot import Snapshot
from .store import RowStore

__all__ = [
    "CorruptStore",
    "RowSchema",
    "RowSchemaError",
    "RowStore",
    "RowStoreClosed",
    "RowStoreError",
    "RowStoreLocked",
    "Snapshot",
    "UnmatchedRow",
    "stored_names",
    "to_batch",
    "to_rows",
]
