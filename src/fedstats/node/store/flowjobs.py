"""FATE-Flow jobs, tasks, tracking and models in the node's SQLite (one row per thing).

    flow_jobs     a job: its DSL and conf, status, progress, times, the reason it failed
    flow_tasks    one component on one (role, party): status, version, times, error
    flow_outputs  a task's tracking outputs by kind (model, model_meta, summary, params, data_meta)
    flow_metrics  a task's metrics by (namespace, name): meta and [[key, value], ...]
    flow_models   trained and deployed models per (model_id, model_version, role, party)
    flow_model_store  party models stored by `model/store` (FATE's model storage): the
                  export document and its SHA-256, brought back by `model/restore`
    flow_forwarded  jobs and model versions this node sent to its federation's admin, which
                  runs them: requests about them are forwarded there (`api/flow/remote.py`)

Everything a client may ask after a restart is here, so a finished job is never lost; a
job that was waiting or running when the node stopped is marked failed, with that reason,
by `fail_interrupted` when the node opens the store again. Rows travel as JSON text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .db import Database

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS flow_jobs (job_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
    "progress INTEGER NOT NULL DEFAULT 0, tag TEXT NOT NULL DEFAULT '', job_type TEXT NOT NULL, "
    "dsl TEXT NOT NULL, conf TEXT NOT NULL, roles TEXT NOT NULL, initiator_role TEXT NOT NULL, "
    "initiator_party TEXT NOT NULL, model_id TEXT NOT NULL, model_version TEXT NOT NULL, "
    "reason TEXT, description TEXT NOT NULL DEFAULT '', created REAL NOT NULL, "
    "started REAL, ended REAL, updated REAL NOT NULL, version INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS flow_tasks (job_id TEXT NOT NULL, component TEXT NOT NULL, "
    "module TEXT NOT NULL, role TEXT NOT NULL, party_id TEXT NOT NULL, status TEXT NOT NULL, "
    "version INTEGER NOT NULL, params TEXT NOT NULL, error TEXT, created REAL NOT NULL, "
    "started REAL, ended REAL, updated REAL NOT NULL, "
    "PRIMARY KEY (job_id, component, role, party_id))",
    "CREATE TABLE IF NOT EXISTS flow_outputs (job_id TEXT NOT NULL, component TEXT NOT NULL, "
    "role TEXT NOT NULL, party_id TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (job_id, component, role, party_id, kind))",
    "CREATE TABLE IF NOT EXISTS flow_metrics (job_id TEXT NOT NULL, component TEXT NOT NULL, "
    "role TEXT NOT NULL, party_id TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, "
    "meta TEXT NOT NULL, data TEXT NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (job_id, component, role, party_id, namespace, name))",
    "CREATE TABLE IF NOT EXISTS flow_models (model_id TEXT NOT NULL, model_version TEXT NOT NULL, "
    "role TEXT NOT NULL, party_id TEXT NOT NULL, job_id TEXT NOT NULL, parent TEXT, "
    "inference_dsl TEXT NOT NULL, train_dsl TEXT NOT NULL, train_conf TEXT NOT NULL, "
    "created REAL NOT NULL, loaded_times INTEGER NOT NULL DEFAULT 0, services TEXT NOT NULL "
    "DEFAULT '[]', PRIMARY KEY (model_id, model_version, role, party_id))",
    "CREATE TABLE IF NOT EXISTS flow_model_store (model_id TEXT NOT NULL, model_version TEXT "
    "NOT NULL, role TEXT NOT NULL, party_id TEXT NOT NULL, sha256 TEXT NOT NULL, doc BLOB NOT "
    "NULL, stored REAL NOT NULL, PRIMARY KEY (model_id, model_version, role, party_id))",
    "CREATE TABLE IF NOT EXISTS flow_forwarded (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "created REAL NOT NULL)",
)
ACTIVE = ("waiting", "running")
JOB_COLUMNS = ("job_id", "status", "progress", "tag", "job_type", "dsl", "conf", "roles",
               "initiator_role", "initiator_party", "model_id", "model_version", "reason",
               "description", "created", "started", "ended", "updated", "version")
TASK_COLUMNS = ("job_id", "component", "module", "role", "party_id", "status", "version",
                "params", "error", "created", "started", "ended", "updated")
MODEL_COLUMNS = ("model_id", "model_version", "role", "party_id", "job_id", "parent",
                 "inference_dsl", "train_dsl", "train_conf", "created", "loaded_times", "services")
_JSON = frozenset({"dsl", "conf", "roles", "params", "inference_dsl", "train_dsl",
                   "train_conf", "services"})


def _row(columns: Iterable[str], values: Iterable[Any]) -> dict[str, Any]:
    return {k: (json.loads(v) if k in _JSON and v is not None else v)
            for k, v in zip(columns, values, strict=True)}


class FlowJobStore:
    """The durable side of FATE jobs; every method is one short transaction or read."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as c:
            for statement in _SCHEMA:
                c.execute(statement)

    # -- jobs -------------------------------------------------------------------------
    def create_job(self, job: Mapping[str, Any], tasks: Iterable[Mapping[str, Any]]) -> None:
        now = time.time()
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO flow_jobs (job_id, status, job_type, dsl, conf, roles, "
                "initiator_role, initiator_party, model_id, model_version, created, updated) "
                "VALUES (?, 'waiting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job["job_id"], job["job_type"], json.dumps(job["dsl"]), json.dumps(job["conf"]),
                 json.dumps(job["roles"]), job["initiator_role"], str(job["initiator_party"]),
                 job["model_id"], job["model_version"], now, now))
            for t in tasks:
                c.execute(
                    "INSERT INTO flow_tasks (job_id, component, module, role, party_id, status, "
                    "version, params, created, updated) VALUES (?, ?, ?, ?, ?, 'waiting', 0, ?, ?, ?)",
                    (job["job_id"], t["component"], t["module"], t["role"], str(t["party_id"]),
                     json.dumps(t["params"]), now, now))

    def job(self, job_id: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM flow_jobs WHERE job_id=?",
                            (job_id,)).fetchone()
        return _row(JOB_COLUMNS, row) if row else None

    def jobs(self, where: Mapping[str, Any] | None = None, limit: int = -1, offset: int = 0,
             order: str = "created DESC") -> tuple[list[dict[str, Any]], int]:
        """Jobs matching column = value (a list: IN), newest first, and their total count."""
        sql, args = _where(where or {}, JOB_COLUMNS)
        with self.db.read() as c:
            (count,) = c.execute(f"SELECT count(*) FROM flow_jobs{sql}", args).fetchone()
            rows = c.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM flow_jobs{sql} "
                             f"ORDER BY {order} LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [_row(JOB_COLUMNS, r) for r in rows], int(count)

    def set_job(self, job_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        for k in fields:
            if k not in JOB_COLUMNS:
                raise KeyError(k)
        sets = ", ".join(f"{k}=?" for k in fields)
        values = [json.dumps(v) if k in _JSON else v for k, v in fields.items()]
        with self.db.transaction() as c:
            c.execute(f"UPDATE flow_jobs SET {sets} WHERE job_id=?", [*values, job_id])

    def reset_for_rerun(self, job_id: str) -> None:
        """Back to waiting with every task waiting again (one task version up)."""
        now = time.time()
        with self.db.transaction() as c:
            c.execute("UPDATE flow_jobs SET status='waiting', progress=0, tag='rerun', reason=NULL, "
                      "started=NULL, ended=NULL, updated=?, version=version+1 WHERE job_id=?",
                      (now, job_id))
            c.execute("UPDATE flow_tasks SET status='waiting', version=version+1, error=NULL, "
                      "started=NULL, ended=NULL, updated=? WHERE job_id=?", (now, job_id))
            for table in ("flow_outputs", "flow_metrics"):
                c.execute(f"DELETE FROM {table} WHERE job_id=?", (job_id,))

    def fail_interrupted(self, reason: str) -> list[str]:
        """Mark every waiting or running job failed (the node stopped under it)."""
        now = time.time()
        with self.db.transaction() as c:
            ids = [r[0] for r in c.execute(
                "SELECT job_id FROM flow_jobs WHERE status IN ('waiting', 'running')")]
            for job_id in ids:
                c.execute("UPDATE flow_jobs SET status='failed', tag='job_end', reason=?, "
                          "ended=?, updated=? WHERE job_id=?", (reason, now, now, job_id))
                c.execute("UPDATE flow_tasks SET status='failed', error=?, ended=?, updated=? "
                          "WHERE job_id=? AND status IN ('waiting', 'running')",
                          (reason, now, now, job_id))
        return ids

    # -- tasks ------------------------------------------------------------------------
    def tasks(self, where: Mapping[str, Any] | None = None, limit: int = -1,
              offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        sql, args = _where(where or {}, TASK_COLUMNS)
        with self.db.read() as c:
            (count,) = c.execute(f"SELECT count(*) FROM flow_tasks{sql}", args).fetchone()
            rows = c.execute(f"SELECT {', '.join(TASK_COLUMNS)} FROM flow_tasks{sql} "
                             "ORDER BY created, rowid LIMIT ? OFFSET ?",
                             [*args, limit, offset]).fetchall()
        return [_row(TASK_COLUMNS, r) for r in rows], int(count)

    def set_tasks(self, job_id: str, component: str, parties: Iterable[tuple[str, str]],
                  **fields: Any) -> None:
        fields["updated"] = time.time()
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.db.transaction() as c:
            for role, party in parties:
                c.execute(f"UPDATE flow_tasks SET {sets} WHERE job_id=? AND component=? AND "
                          "role=? AND party_id=?",
                          [*fields.values(), job_id, component, role, str(party)])

    def set_task_params(self, job_id: str, params: Iterable[tuple[str, str, str, Any]]) -> None:
        """(component, role, party, params) rows, in one transaction."""
        with self.db.transaction() as c:
            for cpn, role, party, value in params:
                c.execute("UPDATE flow_tasks SET params=?, updated=? WHERE job_id=? AND "
                          "component=? AND role=? AND party_id=?",
                          (json.dumps(value), time.time(), job_id, cpn, role, str(party)))

    # -- tracking ---------------------------------------------------------------------
    def put_output(self, job_id: str, component: str, role: str, party: str, kind: str,
                   body: Any) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO flow_outputs VALUES (?, ?, ?, ?, ?, ?)",
                      (job_id, component, role, str(party), kind, json.dumps(body)))

    def output(self, job_id: str, component: str, role: str, party: str, kind: str) -> Any:
        with self.db.read() as c:
            row = c.execute("SELECT body FROM flow_outputs WHERE job_id=? AND component=? AND "
                            "role=? AND party_id=? AND kind=?",
                            (job_id, component, role, str(party), kind)).fetchone()
        return json.loads(row[0]) if row else None

    def outputs(self, job_id: str, kind: str) -> list[tuple[str, str, str, Any]]:
        """(component, role, party, body) of a job's outputs of one kind."""
        with self.db.read() as c:
            rows = c.execute("SELECT component, role, party_id, body FROM flow_outputs WHERE "
                             "job_id=? AND kind=? ORDER BY rowid", (job_id, kind)).fetchall()
        return [(cpn, role, party, json.loads(body)) for cpn, role, party, body in rows]

    def party_outputs(self, job_id: str, role: str, party: str) -> list[tuple[str, str, Any]]:
        """(component, kind, body) of every output one party keeps of a job."""
        with self.db.read() as c:
            rows = c.execute("SELECT component, kind, body FROM flow_outputs WHERE job_id=? AND "
                             "role=? AND party_id=? ORDER BY rowid",
                             (job_id, role, str(party))).fetchall()
        return [(cpn, kind, json.loads(body)) for cpn, kind, body in rows]

    def import_party_model(self, models: Iterable[Mapping[str, Any]],
                           outputs: Iterable[tuple[str, str, str, str, str, Any]]) -> None:
        """One transaction: model rows and (job, component, role, party, kind, body) outputs."""
        now = time.time()
        with self.db.transaction() as c:
            _insert_models(c, models, now)
            for job_id, cpn, role, party, kind, body in outputs:
                c.execute("INSERT OR REPLACE INTO flow_outputs VALUES (?, ?, ?, ?, ?, ?)",
                          (job_id, cpn, role, str(party), kind, json.dumps(body)))

    def put_metric(self, job_id: str, component: str, role: str, party: str, namespace: str,
                   name: str, meta: Mapping[str, Any], data: list[list[Any]]) -> None:
        with self.db.transaction() as c:
            (seq,) = c.execute("SELECT count(*) FROM flow_metrics WHERE job_id=?",
                               (job_id,)).fetchone()
            c.execute("INSERT OR REPLACE INTO flow_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (job_id, component, role, str(party), namespace, name, json.dumps(meta),
                       json.dumps(data), seq))

    def metrics(self, job_id: str, component: str, role: str,
                party: str) -> list[tuple[str, str, dict[str, Any], list[list[Any]]]]:
        with self.db.read() as c:
            rows = c.execute("SELECT namespace, name, meta, data FROM flow_metrics WHERE "
                             "job_id=? AND component=? AND role=? AND party_id=? ORDER BY seq",
                             (job_id, component, role, str(party))).fetchall()
        return [(ns, n, json.loads(m), json.loads(d)) for ns, n, m, d in rows]

    # -- models -----------------------------------------------------------------------
    def store_model_doc(self, key: tuple[str, str, str, str], sha256: str, doc: bytes) -> None:
        """Keep one party's exported model (`key`: model id, version, role, party)."""
        with self.db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO flow_model_store VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (*key, sha256, doc, time.time()))

    def stored_model_doc(self, key: tuple[str, str, str, str]) -> tuple[str, bytes] | None:
        """(recorded SHA-256, document) of a stored model, or None."""
        with self.db.read() as c:
            row = c.execute("SELECT sha256, doc FROM flow_model_store WHERE model_id = ? AND "
                            "model_version = ? AND role = ? AND party_id = ?", key).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def forwarded(self, key: str) -> bool:
        """Whether `key` (a job id or a model version) was sent to the federation's admin."""
        with self.db.read() as c:
            return c.execute("SELECT 1 FROM flow_forwarded WHERE key = ?", (key,)).fetchone() \
                is not None

    def forwarded_jobs(self) -> list[str]:
        with self.db.read() as c:
            return [r[0] for r in c.execute(
                "SELECT key FROM flow_forwarded WHERE kind = 'job' ORDER BY created")]

    def put_forwarded(self, key: str, kind: str) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO flow_forwarded VALUES (?, ?, ?)",
                      (key, kind, time.time()))

    def put_models(self, rows: Iterable[Mapping[str, Any]]) -> None:
        now = time.time()
        with self.db.transaction() as c:
            _insert_models(c, rows, now)

    def models(self, where: Mapping[str, Any]) -> list[dict[str, Any]]:
        sql, args = _where(where, MODEL_COLUMNS)
        with self.db.read() as c:
            rows = c.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM flow_models{sql} "
                             "ORDER BY created, role, party_id", args).fetchall()
        return [_row(MODEL_COLUMNS, r) for r in rows]

    def update_models(self, model_id: str, model_version: str, *, loaded: bool = False,
                      service: str | None = None) -> int:
        with self.db.transaction() as c:
            rows = c.execute("SELECT role, party_id, services FROM flow_models WHERE "
                             "model_id=? AND model_version=?", (model_id, model_version)).fetchall()
            for role, party, services in rows:
                s = json.loads(services)
                if service and service not in s:
                    s.append(service)
                c.execute("UPDATE flow_models SET loaded_times=loaded_times+?, services=? WHERE "
                          "model_id=? AND model_version=? AND role=? AND party_id=?",
                          (int(loaded), json.dumps(s), model_id, model_version, role, party))
        return len(rows)


def _where(where: Mapping[str, Any], columns: tuple[str, ...]) -> tuple[str, list[Any]]:
    parts, args = [], []
    for k, v in where.items():
        if k not in columns:
            raise KeyError(k)
        if isinstance(v, (list, tuple, set, frozenset)):
            vs = list(v)
            parts.append(f"{k} IN ({', '.join('?' * len(vs))})" if vs else "0")
            args += vs
        else:
            parts.append(f"{k}=?")
            args.append(v)
    return (" WHERE " + " AND ".join(parts) if parts else ""), args


def _insert_models(c: Any, rows: Iterable[Mapping[str, Any]], now: float) -> None:
    """Model rows (a party's model of one version) written in the caller's transaction."""
    for r in rows:
        c.execute(
            "INSERT OR REPLACE INTO flow_models (model_id, model_version, role, party_id, "
            "job_id, parent, inference_dsl, train_dsl, train_conf, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (r["model_id"], r["model_version"], r["role"], str(r["party_id"]), r["job_id"],
             r.get("parent"), json.dumps(r["inference_dsl"]), json.dumps(r["train_dsl"]),
             json.dumps(r["train_conf"]), now))
