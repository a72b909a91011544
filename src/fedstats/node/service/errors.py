"""Errors of the project service, and the messages the spec gives them.

    ServiceError
    ├── NotFound      an unknown project, model or job (400: the spec answers "Cannot find ...")
    ├── Conflict      creating what exists already (409)
    ├── BadRequest    a request the service cannot act on: a bad id, an engine this node
    │                 lacks, rows that overflow or were never learned (400)
    └── Unavailable   a project quarantined at start, its statistics do not load (503)

The engine's own errors (`EngineError`: bad frames, schema mismatches, models) pass through
the service unchanged; both trees are mapped to statuses in `api/errors.py`, only there.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the service's own errors (the engine's are `EngineError`)."""


class NotFound(ServiceError):
    """An unknown project, model or job."""


class Conflict(ServiceError):
    """Creating what exists already."""


class BadRequest(ServiceError):
    """A request the service cannot act on (bad id, engine not available here, ...)."""


class Unavailable(ServiceError):
    """A project whose stored statistics would not load: quarantined, answered 503."""


def no_project(cid: str, pid: str) -> NotFound:
    """The spec's answer for an unknown project."""
    return NotFound(f"Cannot find project id [{pid}] for customer id [{cid}]")


def no_model(cid: str, pid: str, model_id: str) -> NotFound:
    """The spec's answer for an unknown model."""
    return NotFound(
        f"Cannot find model id [{model_id}] in project [{pid}] for customer id [{cid}]"
    )


def quarantined(cid: str, pid: str) -> Unavailable:
    """A project that exists but whose statistics could not be loaded at start."""
    return Unavailable(
        f"project [{pid}] of customer [{cid}] is unavailable: its stored "
        "statistics cannot be loaded (see the node's log); it can only be deleted"
    )
