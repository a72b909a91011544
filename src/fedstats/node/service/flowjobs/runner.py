"""FATE jobs on this node: submit, a FIFO scheduler thread, FATE's state machine.

A job is `waiting` once submitted (durable before `job/submit` answers), `running` while
its components run in DSL order, and ends `success`, `failed` (a component failed: the
job's reason names it), `canceled` (`job/stop`) or `timeout` (job_parameters.common.timeout).
Each component is one task per (role, party): waiting, running, then success, failed,
canceled, timeout — or `pass` where its `need_run` is false. Progress is the share of
components finished. Parties are resolved through `Sites` (party id → site): the
components never see where a party runs. A job that was waiting or running when the
node stopped is failed, with that reason, when the node starts again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ...engine.errors import ModelError
from ...store.flowjobs import FlowJobStore
from . import conf as confs
from . import dag
from .components import RUNNERS, Context, PartyTask
from .errors import ComponentFailed, Interrupted, JobNotFound, JobRefused
from .logs import JobLogs
from .sites import Sites

log = logging.getLogger(__name__)
INTERRUPTED = "the node stopped while the job was {status}: it was marked failed at restart"
END = ("success", "failed", "canceled", "timeout")


@dataclass
class _Recorder:
    store: FlowJobStore
    job_id: str
    component: str

    def metric(self, role: str, party: str, namespace: str, name: str,
               meta: dict[str, Any], data: list[list[Any]]) -> None:
        self.store.put_metric(self.job_id, self.component, role, party, namespace, name, meta, data)

    def output(self, role: str, party: str, kind: str, body: Any) -> None:
        self.store.put_output(self.job_id, self.component, role, party, kind, body)


class FlowJobs:
    """The job machinery of one node: store, sites, logs and the scheduler thread."""

    def __init__(self, store: FlowJobStore, sites: Sites, data_dir: Path) -> None:
        self.store = store
        self.sites = sites
        self.jobs_dir = Path(data_dir) / "flow" / "jobs"
        self.logs = JobLogs(Path(data_dir) / "flow" / "logs")
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stops: dict[str, str] = {}
        self._lock = threading.Lock()
        self._shutdown = False
        for job_id in store.fail_interrupted(INTERRUPTED.format(status="waiting or running")):
            self.logs.schedule(job_id, "failed: " + INTERRUPTED.format(status="waiting or running"))
        self._thread = threading.Thread(target=self._loop, name="fedstats-flow-jobs", daemon=True)
        self._thread.start()

    def output_path(self, job_id: str, role: str, party: str, component: str) -> Path:
        """Where a party's output data of one component is written (and served from)."""
        return self.jobs_dir / job_id / role / party / component / "data.arrow"

    def close(self) -> None:
        """Stop the scheduler: a running job fails at its next check, saying why."""
        with self._lock:
            self._shutdown = True
        self._queue.put(None)
        self._thread.join(timeout=60)

    # -- submit -----------------------------------------------------------------------
    def submit(self, job_id: str, dsl: Mapping[str, Any], conf: Mapping[str, Any],
               roles: Mapping[str, list[int]]) -> dict[str, Any]:
        """Create the job (waiting) and queue it; the submit-result data."""
        common = confs.job_params(conf)
        job_type = str(common.get("job_type", "train"))
        if job_type not in ("train", "predict"):
            raise JobRefused(f"job_type {job_type!r} is not train or predict")
        for ids in roles.values():
            for pid in ids:
                self.sites.site(pid)
        initiator = conf["initiator"]
        if job_type == "predict":
            model_id, model_version = self._check_predict(common, roles)
        else:
            model_id, model_version = confs.model_id_of(roles), job_id
        tasks = []
        for name in dag.order(dsl):
            module = dsl["components"][name]["module"]
            for role, ids in roles.items():
                for index, pid in enumerate(ids):
                    params = confs.component_params(conf, name, role, index)
                    if module == "Reader" and role != "arbiter":
                        self._check_table(name, role, pid, index, params)
                    tasks.append({"component": name, "module": module, "role": role,
                                  "party_id": pid, "params": params})
        self.store.create_job({"job_id": job_id, "job_type": job_type, "dsl": dsl, "conf": conf,
                               "roles": roles, "initiator_role": initiator["role"],
                               "initiator_party": initiator["party_id"], "model_id": model_id,
                               "model_version": model_version}, tasks)
        base = self.jobs_dir / job_id
        base.mkdir(parents=True, exist_ok=True)
        (base / "job_dsl.json").write_bytes(orjson.dumps(dsl, option=orjson.OPT_INDENT_2))
        (base / "job_runtime_conf.json").write_bytes(orjson.dumps(conf, option=orjson.OPT_INDENT_2))
        self.logs.schedule(job_id, f"submitted: {job_type} job of components "
                                   f"{', '.join(dag.order(dsl))}, parties {dict(roles)}")
        self._queue.put(job_id)
        role, party = initiator["role"], initiator["party_id"]
        return {"job_id": job_id, "code": 0, "message": "success",
                "model_info": {"model_id": model_id, "model_version": model_version},
                "logs_directory": str(self.logs.directory(job_id)),
                "dsl_path": str(base / "job_dsl.json"),
                "runtime_conf_path": str(base / "job_runtime_conf.json"),
                "runtime_conf_on_party_path": str(base / role / str(party) /
                                                  "job_runtime_on_party_conf.json"),
                "train_runtime_conf_path": str(base / "train_runtime_conf.json"),
                "pipeline_dsl_path": str(base / "pipeline_dsl.json"),
                "board_url": ""}

    def _check_table(self, name: str, role: str, pid: int, index: int,
                     params: Mapping[str, Any]) -> None:
        table = params.get("table") or {}
        if not isinstance(table, Mapping) or not table.get("name") or not table.get("namespace"):
            raise JobRefused(f"{name}: no table for {role} {pid} (component_parameters.role."
                             f"{role}.{index}.{name}.table {{name, namespace}})")
        if not self.sites.site(pid).has_table(str(table["namespace"]), str(table["name"])):
            raise JobRefused(f"{name}: table {table['namespace']}.{table['name']} of {role} {pid} "
                             "does not exist (no find table)")

    def _check_predict(self, common: Mapping[str, Any],
                       roles: Mapping[str, list[int]]) -> tuple[str, str]:
        model_id, version = common.get("model_id"), common.get("model_version")
        if not model_id or not version:
            raise JobRefused("a predict job needs job_parameters.common.model_id and model_version")
        rows = self.store.models({"model_id": str(model_id), "model_version": str(version)})
        if not rows:
            raise JobRefused(f"model {model_id} {version} does not exist")
        if not any(r["parent"] for r in rows):
            raise JobRefused("model has not been deployed yet: deploy it (model/deploy) and use "
                             "the model_version that answers")
        have = {(r["role"], str(r["party_id"])) for r in rows}
        for role, ids in roles.items():
            for pid in ids:
                if (role, str(pid)) not in have:
                    raise JobRefused(f"the model has no part for {role} {pid}")
        return str(model_id), str(version)

    def predict_dsl_of(self, model_id: str, model_version: str) -> dict[str, Any]:
        rows = self.store.models({"model_id": model_id, "model_version": model_version})
        if not rows:
            raise JobRefused(f"model {model_id} {model_version} does not exist")
        dsl: dict[str, Any] = rows[0]["inference_dsl"]
        return dsl

    # -- stop, rerun ------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any]:
        job = self.store.job(job_id)
        if job is None:
            raise JobNotFound("can not found job")
        return job

    def stop(self, job_id: str, status: str = "canceled") -> None:
        if status not in ("canceled", "failed", "timeout"):
            raise JobRefused(f"stop_status {status!r} is not canceled, failed or timeout")
        job = self.job(job_id)
        if job["status"] in END:
            raise JobRefused(f"job {job_id} is already {job['status']}")
        with self._lock:
            self._stops[job_id] = status
        if job["status"] == "waiting":
            self._finish(job_id, status, f"stopped ({status}) before it ran")
        self.logs.schedule(job_id, f"stop requested: {status}")

    def rerun(self, job_id: str, force: bool = False) -> None:
        job = self.job(job_id)
        if job["status"] in ("waiting", "running"):
            raise JobRefused(f"job {job_id} is {job['status']}: it cannot be rerun now")
        if job["status"] == "success" and not force:
            raise JobRefused(f"job {job_id} succeeded: rerun it with force")
        self.store.reset_for_rerun(job_id)
        with self._lock:
            self._stops.pop(job_id, None)
        self.logs.schedule(job_id, "rerun: every component runs again")
        self._queue.put(job_id)

    def update_parameters(self, job_id: str, job_parameters: Mapping[str, Any] | None,
                          component_parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """Merge new parameters into a job that is not waiting or running (then rerun it)."""
        job = self.job(job_id)
        if job["status"] in ("waiting", "running"):
            raise JobRefused(f"job {job_id} is {job['status']}: its parameters cannot change now")
        conf = dict(job["conf"])
        if job_parameters:
            conf["job_parameters"] = confs.merge(conf.get("job_parameters") or {}, job_parameters)
        if component_parameters:
            conf["component_parameters"] = confs.merge(conf.get("component_parameters") or {},
                                                       component_parameters)
        names = set((component_parameters or {}).get("common") or {})
        for by_index in ((component_parameters or {}).get("role") or {}).values():
            for block in (by_index or {}).values():
                names |= set(block or {})
        unknown = sorted(names - set(job["dsl"]["components"]))
        if unknown:
            raise JobRefused(f"component_parameters name {unknown}, not components of the job")
        tasks, _ = self.store.tasks({"job_id": job_id})
        updates = []
        for t in tasks:
            index = [str(p) for p in job["roles"][t["role"]]].index(t["party_id"])
            updates.append((t["component"], t["role"], t["party_id"],
                            confs.component_params(conf, t["component"], t["role"], index)))
        self.store.set_task_params(job_id, updates)
        self.store.set_job(job_id, conf=conf)
        return {"job_parameters": conf.get("job_parameters") or {},
                "component_parameters": conf.get("component_parameters") or {},
                "components": sorted(names)}

    # -- the scheduler ------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                if self._shutdown:
                    return
            try:
                self._run(job_id)
            except Exception:  # the store went away (node stopping): nothing to record in
                log.exception("FATE job %s could not be run", job_id)

    def _finish(self, job_id: str, status: str, reason: str | None) -> None:
        job = self.store.job(job_id)
        now = time.time()
        self.store.set_job(job_id, status=status, tag="job_end", reason=reason, ended=now)
        tasks, _ = self.store.tasks({"job_id": job_id, "status": ["waiting", "running"]})
        by_cpn: dict[str, list[tuple[str, str]]] = {}
        for t in tasks:
            by_cpn.setdefault(t["component"], []).append((t["role"], t["party_id"]))
        for cpn, parties in by_cpn.items():
            running = any(t["status"] == "running" for t in tasks if t["component"] == cpn)
            self.store.set_tasks(job_id, cpn, parties, status=status if running else "canceled",
                                 error=reason if running else None, ended=now)
        line = f"job {status}" + (f": {reason}" if reason else "")
        self.logs.schedule(job_id, line)
        if job is not None:
            for role, ids in job["roles"].items():
                for pid in ids:
                    self.logs.party(job_id, role, str(pid), line, error=status != "success")

    def _run(self, job_id: str) -> None:
        job = self.store.job(job_id)
        if job is None or job["status"] != "waiting":
            return
        started = time.time()
        deadline = started + confs.timeout_of(job["conf"])
        self.store.set_job(job_id, status="running", started=started)
        self.logs.schedule(job_id, "running")

        def check() -> None:
            with self._lock:
                status = self._stops.get(job_id)
                shutdown = self._shutdown
            if shutdown:
                raise Interrupted("failed", "the node shut down while the job was running")
            if status is not None:
                raise Interrupted(status, f"the job was stopped ({status})")
            if time.time() > deadline:
                raise Interrupted("timeout", "the job ran past its timeout of "
                                  f"{confs.timeout_of(job['conf']):g} s")

        order = dag.order(job["dsl"])
        try:
            for i, name in enumerate(order):
                check()
                self._component(job, name, check)
                self.store.set_job(job_id, progress=(i + 1) * 100 // len(order))
            if job["job_type"] == "train":
                self._register_model(job)
            self._finish(job_id, "success", None)
        except Interrupted as e:
            self._finish(job_id, e.status, str(e))
        except (ComponentFailed, ModelError) as e:
            self._finish(job_id, "failed", str(e))
        except Exception as e:
            self.logs.schedule(job_id, traceback.format_exc())
            self._finish(job_id, "failed", f"internal error: {e!r}")
        finally:
            for pid in {p for ids in job["roles"].values() for p in ids}:
                with contextlib.suppress(JobRefused):
                    self.sites.site(pid).release(job_id)
            with self._lock:
                self._stops.pop(job_id, None)

    def _component(self, job: dict[str, Any], name: str, check: Any) -> None:
        job_id = job["job_id"]
        spec = job["dsl"]["components"][name]
        module = spec["module"]
        data, model_refs = dag.refs(spec)
        tasks, _ = self.store.tasks({"job_id": job_id, "component": name})
        parties = []
        for t in tasks:
            index = [str(p) for p in job["roles"][t["role"]]].index(t["party_id"])
            p = PartyTask(t["role"], t["party_id"], index, self.sites.site(t["party_id"]),
                          t["params"], data, self._upstream_model(job, model_refs, t))
            parties.append(p)
        keys = [(p.role, p.party_id) for p in parties]
        self.store.set_tasks(job_id, name, keys, status="running", started=time.time())
        for p in parties:
            self.logs.party(job_id, p.role, p.party_id, f"{name} ({module}): running")
        ctx = Context(job_id, name, module, job["job_type"], parties,
                      _Recorder(self.store, job_id, name), check)
        try:
            RUNNERS[module](ctx)
        except Interrupted:
            raise
        except (ComponentFailed, ModelError) as e:
            raise ComponentFailed(f"component {name} ({module}) failed: {e}") from None
        for p in ctx.data_parties():
            if p.site.has(job_id, p.role, ctx.out):
                path = self.output_path(job_id, p.role, p.party_id, name)
                info = p.site.call(job_id, p.role, "save", [ctx.out], None, path=str(path))
                self.store.put_output(job_id, name, p.role, p.party_id, "data_meta",
                                      {**info, "path": str(path), "data_name": "data"})
        now = time.time()
        for p in parties:
            status = "success" if p.need_run else "pass"
            self.store.set_tasks(job_id, name, [(p.role, p.party_id)], status=status, ended=now)
            self.logs.party(job_id, p.role, p.party_id, f"{name} ({module}): {status}")
        self.store.put_output(job_id, name, "*", "*", "params", {})

    def _upstream_model(self, job: dict[str, Any], refs: list[str],
                        task: dict[str, Any]) -> dict[str, Any] | None:
        for ref in refs:
            if ref.startswith("pipeline."):
                cpn = ref.split(".")[1]
                rows = self.store.models({"model_id": job["model_id"],
                                          "model_version": job["model_version"],
                                          "role": task["role"], "party_id": task["party_id"]})
                source = rows[0]["job_id"] if rows else None
            else:
                cpn, source = ref.split(".")[0], job["job_id"]
            if source is None:
                continue
            body = self.store.output(source, cpn, task["role"], task["party_id"], "model")
            if body is not None:
                return dict(body)
        return None

    def _register_model(self, job: dict[str, Any]) -> None:
        inference = dag.predict_dsl(job["dsl"])
        self.store.put_models(
            {"model_id": job["model_id"], "model_version": job["model_version"], "role": role,
             "party_id": pid, "job_id": job["job_id"], "parent": None,
             "inference_dsl": inference, "train_dsl": job["dsl"], "train_conf": job["conf"]}
            for role, ids in job["roles"].items() for pid in ids)

    # -- models -----------------------------------------------------------------------
    def deploy(self, model_id: str, model_version: str, new_version: str,
               cpn_list: list[str] | None, dsl: Mapping[str, Any] | None) -> dict[str, Any]:
        rows = self.store.models({"model_id": model_id, "model_version": model_version})
        if not rows:
            raise JobNotFound(f"model {model_id} {model_version} not found")
        train_dsl = rows[0]["train_dsl"]
        if dsl is not None:
            inference = dict(dsl)
        else:
            unknown = [c for c in cpn_list or [] if c not in train_dsl["components"]]
            if unknown:
                raise JobRefused(f"cpn_list names {unknown}, not components of the model")
            inference = dag.predict_dsl(train_dsl, cpn_list)
        self.store.put_models(
            {**r, "model_version": new_version, "parent": model_version,
             "inference_dsl": inference} for r in rows)
        out: dict[str, Any] = {"model_id": model_id, "model_version": new_version, "detail": {}}
        for r in rows:
            out.setdefault(r["role"], {})[str(r["party_id"])] = 0
            out["detail"].setdefault(r["role"], {})[str(r["party_id"])] = {
                "retcode": 0, "retmsg": "deploy model success"}
        return out
