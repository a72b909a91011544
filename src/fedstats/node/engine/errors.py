"""Errors of the statistics engine.

    EngineError (ValueError)
    ├── FrameError          a DataFrame that cannot be read: its message says where and why
    ├── SchemaMismatch      columns that disagree between a batch, a project or a peer
    ├── SnapshotError       a snapshot that is corrupted, truncated or of another version
    └── ModelError          a model that cannot be built or used (unknown algo, bad context)

Every one of them is a client's mistake or a peer's: the node answers them with 400.
"""

from __future__ import annotations


class EngineError(ValueError):
    """Base of every error the engine raises for bad input."""


class FrameError(EngineError):
    """A DataFrame that cannot be read."""


class SchemaMismatch(EngineError):
    """Columns or types that disagree."""


class SnapshotError(EngineError):
    """A snapshot that cannot be decoded."""


class ModelError(EngineError):
    """A model that cannot be built or applied."""
