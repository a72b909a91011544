"""Failures after a learn is durable do not fail it; a failed COMMIT leaves the database
usable; a job whose result cannot be stored ends failed, never stuck running."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fedstats.node.api.jobs import JobRunner
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats.node.store import JobStore, open_database
from fedstats_harness.frames import frame
from fedstats_harness.inprocess import serve


def test_a_failed_checkpoint_does_not_fail_the_learn(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {"c1": new_secret_key(), "c2": new_secret_key()}
    gen = serve(Settings(data_dir=tmp_path, checkpoint_every=1), keys)
    node = next(gen)
    c = node.client()
    c.create_project("p")
    store = node.app.state.service.projects_store

    def disk_full(*_a: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "checkpoint", disk_full)
    assert c.learn("p", frame([[1.0], [2.0]])) == 2  # logged: acknowledged
    assert c.learn("p", frame([[3.0]])) == 1
    assert c.project_info("p")["rows"] == 3
    monkeypatch.undo()
    gen.close()
    node = next(gen := serve(Settings(data_dir=tmp_path, checkpoint_every=1), keys))
    try:
        uni = node.client().explore("p", "uni", {})["x0"]
        assert uni["count"] == 3 and uni["mean"] == pytest.approx(2.0)
    finally:
        gen.close()


def test_a_failed_commit_is_rolled_back_and_the_database_stays_usable(tmp_path: Path) -> None:
    db = open_database(tmp_path / "node.db")
    try:
        with db.transaction() as c:
            c.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            c.execute("CREATE TABLE child (pid INTEGER REFERENCES parent (id)"
                      " DEFERRABLE INITIALLY DEFERRED)")
        with pytest.raises(sqlite3.IntegrityError), db.transaction() as c:  # fails at COMMIT
            c.execute("INSERT INTO child (pid) VALUES (42)")
        with db.transaction() as c:  # a new transaction can begin
            c.execute("INSERT INTO parent (id) VALUES (1)")
        with db.read() as c:
            assert c.execute("SELECT count(*) FROM child").fetchone() == (0,)
            assert c.execute("SELECT count(*) FROM parent").fetchone() == (1,)
    finally:
        db.close()


def test_a_job_whose_result_cannot_be_stored_ends_failed(tmp_path: Path) -> None:
    db = open_database(tmp_path / "node.db")
    executor = ThreadPoolExecutor(2)
    try:
        store = JobStore(db)
        runner = JobRunner(store, executor)

        async def run() -> int:
            job_id = await runner.submit("c1", "build", lambda: {"model": object()})
            await runner.wait(job_id, 10)
            return job_id

        job_id = asyncio.run(run())
        rec = store.get("c1", job_id)
        assert rec is not None and rec.status == "failed"
        assert rec.error_kind == "internal" and "could not be stored" in (rec.error or "")
    finally:
        executor.shutdown(wait=True)
        db.close()
