"""A job's log files, laid out as FATE-Flow lays them (what `job/log/download` tars).

    <logs>/<job_id>/fate_flow_schedule.log          the scheduler's lines
    <logs>/<job_id>/<role>/<party>/INFO.log          the party's lines
    <logs>/<job_id>/<role>/<party>/ERROR.log         its errors (with the reason a job failed)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path


class JobLogs:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def directory(self, job_id: str) -> Path:
        return self.root / job_id

    def _write(self, path: Path, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"[{stamp}] {line}\n")

    def schedule(self, job_id: str, line: str) -> None:
        self._write(self.directory(job_id) / "fate_flow_schedule.log", line)

    def party(self, job_id: str, role: str, party: str, line: str, error: bool = False) -> None:
        base = self.directory(job_id) / role / str(party)
        self._write(base / "INFO.log", line)
        if error:
            self._write(base / "ERROR.log", line)
