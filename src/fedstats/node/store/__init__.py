"""The node's durable store: one SQLite file (WAL) for projects, their statistics, models and jobs.

    db.py        the connection, pragmas and schema migrations
    projects.py  projects, their snapshots and their log of learned/forgotten statistics
    models.py    built models (their JSON form)
    jobs.py      asynchronous jobs (builds, async learns)

Raw rows are never stored: only accumulators (encoded snapshots), which is all a project is.
"""

from .db import Database, open_database
from .jobs import JobStore
from .models import ModelStore
from .projects import LogEntry, ProjectRecord, ProjectStore

__all__ = [
    "Database",
    "JobStore",
    "LogEntry",
    "ModelStore",
    "ProjectRecord",
    "ProjectStore",
    "open_database",
]
