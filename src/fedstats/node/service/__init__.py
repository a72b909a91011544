"""The project service: the node's projects, their statistics and models, durable and thread-safe.

    projects.py   `ProjectService`, the one object the facades and the federation call
    registry.py   which projects exist: loaded (and quarantined) at start, created, deleted
    updates.py    durable learn and forget: fold a batch, log it, then publish the result
    merged.py     where peers' statistics are merged into this node's (and that merge cached)
    rules.py      the pure rules: ids, a new project's engine, batches, forget validity
    errors.py     the service's error tree (`ServiceError` and what derives from it)

Everything a caller needs is re-exported here: `from fedstats.node.service import
ProjectService, BadRequest, ...`.
"""

from .errors import BadRequest, Conflict, NotFound, ServiceError, Unavailable
from .merged import PeerSource
from .projects import ProjectService
from .registry import Project
from .rules import check_id

__all__ = [
    "BadRequest",
    "Conflict",
    "NotFound",
    "PeerSource",
    "Project",
    "ProjectService",
    "ServiceError",
    "Unavailable",
    "check_id",
]
