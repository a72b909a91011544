"""The node's durable store: one SQLite file (WAL) for projects, their statistics, models and jobs.

    db.py        the connection, pragmas and schema migrations
    projects.py  projects, their snapshots and their log of learned/forgotten statistics
    models.py    built models (their JSON form)
    jobs.py      asynchronous jobs (builds, async learns)
    sparse.py    the compact form of mostly-zero log entries
    rows/        the row store: rows kept at their site for keep-rows projects and FATE
                 tables (Arrow IPC segments + a SQLite catalog), never sent anywhere
    blobs.py, modelmeta.py   the model store's content-addressed files and their metadata

A project that does not keep rows stores only accumulators (encoded snapshots).
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
