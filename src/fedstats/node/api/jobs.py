"""Asynchronous jobs (model builds, `?async=true` learns) and `GET /jobs[/{id}]`.

`JobRunner.submit` records the job (durably) and runs it on the worker threads; the
outcome is written to the store, so a job's answer survives a restart, and a job cut
off by a crash reads as failed (`JobStore.fail_interrupted` at start).

`GET /symetry/rest/{cid}/jobs/{id}` answers:
    (statusString "Job still running" / "Job is finished", as symetryml-job-information.md;
    `jobinfo` holds Appendix A's JobInfo fields beside fedstats' own)
    202 ACCEPTED  while it runs (`?wait=S` holds the request up to S seconds, at most 30,
                  until it ends, so clients need not poll in a tight loop)
    200 OK        when done: `jobinfo` plus the job's own values (e.g. `modelInfo`)
    400 / 500     when it failed: the status its error maps to (400 for a mistake in the
                  request, 500 when it broke or the node stopped under it), `jobinfo` in values
    400           for an id this customer has no job under (as for unknown projects)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..service import NotFound
from ..store.jobs import DONE, RUNNING, JobRecord, JobStore
from .auth import signed_customer
from .context import run_sync
from .envelope import STATUS_CODES, envelope_bytes, ok
from .errors import classify

MAX_WAIT_S = 30.0
log = logging.getLogger(__name__)


class JobRunner:
    """Runs jobs on the worker threads and records their outcome."""

    def __init__(self, store: JobStore, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self.executor = executor
        self._running: dict[int, asyncio.Future[None]] = {}

    async def submit(self, cid: str, kind: str, fn: Callable[[], dict[str, Any]]) -> int:
        """Start `fn` (returning the job's values) as a job; its id."""
        loop = asyncio.get_running_loop()
        job_id = await loop.run_in_executor(self.executor, self.store.create, cid, kind)
        fut = loop.run_in_executor(self.executor, self._run, job_id, fn)
        self._running[job_id] = fut
        fut.add_done_callback(lambda _: self._running.pop(job_id, None))
        return job_id

    def _run(self, job_id: int, fn: Callable[[], dict[str, Any]]) -> None:
        try:
            result = fn()
        except Exception as e:  # every failure is recorded on the job, none escapes
            status, message = classify(e)[:2]
            self._fail(job_id, message, "client" if status < 500 else "internal")
            return
        try:
            self.store.finish(job_id, result)
        except Exception as e:  # a result that cannot be stored must not leave it running
            log.error("job %d: storing its result failed: %s: %s", job_id,
                      type(e).__name__, e)
            self._fail(job_id, "the job ran but its result could not be stored "
                       "(logged on the node)", "internal")

    def _fail(self, job_id: int, message: str, kind: str) -> None:
        try:
            self.store.fail(job_id, message, kind)
        except Exception as e:  # the store itself is failing: at least say so
            log.error("job %d: recording its failure failed too: %s: %s", job_id,
                      type(e).__name__, e)

    async def wait(self, job_id: int, timeout: float) -> None:
        """Until the job ends or `timeout` passes (at once when it is not running here)."""
        fut = self._running.get(job_id)
        if fut is None or timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), timeout)


def job_path(cid: str, job_id: int) -> str:
    return f"/symetry/rest/{cid}/jobs/{job_id}"


def runner_of(request: Request) -> JobRunner:
    return request.app.state.jobs


router = APIRouter(prefix="/symetry/rest/{cid}", tags=["jobs"],
                   dependencies=[Depends(signed_customer)])


def _parse_id(cid: str, job_id: str) -> int:
    # isdigit() alone is true of '¹' and other Unicode digits int() refuses
    if not (job_id.isascii() and job_id.isdigit()) or len(job_id) > 18:
        raise NotFound(f"Cannot find job id [{job_id}] for customer id [{cid}]")
    return int(job_id)


@router.get("/jobs/{job_id}", summary="A job's state and, once done, its result")
async def get_job(request: Request, cid: str, job_id: str,
                  wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_S)) -> Response:
    jid = _parse_id(cid, job_id)
    runner = runner_of(request)
    rec = await run_sync(request, runner.store.get, cid, jid)
    if rec is None:
        raise NotFound(f"Cannot find job id [{job_id}] for customer id [{cid}]")
    if rec.status == RUNNING and wait:
        await runner.wait(jid, wait)
        rec = await run_sync(request, runner.store.get, cid, jid) or rec
    return _job_response(rec)


def job_info(rec: JobRecord) -> dict[str, Any]:
    """Appendix A's JobInfo (jobId, jobType, owner, startingDate in ms, current, maximum,
    isOnBoundedExecutor, isStarted, isDone, details), then fedstats' fields (id, kind,
    status, created, finished, result, error)."""
    done = rec.status != RUNNING
    details = {"status": rec.status}
    if rec.error is not None:
        details["error"] = rec.error
    return {
        "jobId": rec.id,
        "jobType": rec.kind,
        "owner": rec.cid,
        "startingDate": int(rec.created * 1000),
        "current": 1 if done else 0,
        "maximum": 1,
        "isOnBoundedExecutor": True,
        "isStarted": True,
        "isDone": done,
        "details": details,
        **rec.info(),
    }


def _job_response(rec: JobRecord) -> Response:
    info = job_info(rec)
    if rec.status == RUNNING:
        return ok({"jobinfo": info}, status=202, status_string="Job still running")
    if rec.status == DONE:
        values = {"jobinfo": info}
        if isinstance(rec.result, dict):
            values.update(rec.result)
        return ok(values, status_string="Job is finished")
    status = 400 if rec.error_kind == "client" else 500
    body = envelope_bytes(status, rec.error, {"jobinfo": info, "error": rec.error,
                                              "errorKind": rec.error_kind})
    return Response(body, status_code=status, media_type="application/json")


@router.get("/jobs", summary="This customer's jobs, newest first")
async def list_jobs(request: Request, cid: str) -> Response:
    recs = await run_sync(request, runner_of(request).store.list, cid)
    return ok({"stringList": [str(r.id) for r in recs], "jobs": [job_info(r) for r in recs]})


__all__ = ["STATUS_CODES", "JobRunner", "job_path", "router"]
