"""What one federated project counts and logs: `syncStats` counters, error and sync logs.

Every refusal and failure goes through here, so none is silently dropped: it is counted
(persisted at once, like the logs, in `federation.sqlite`) and written to the Python log.
"""

from __future__ import annotations

import logging
from typing import Any

from .state import FedState

log = logging.getLogger("fedstats.federation")


class Journal:
    """The counters and logs of project `cid`/`pid`."""

    def __init__(self, state: FedState, cid: str, pid: str) -> None:
        self.state, self.cid, self.pid = state, cid, pid
        self.counters = state.counters(cid, pid)

    def count(self, name: str, peer: str | None = None) -> None:
        if peer is None:
            self.counters[name] += 1
        else:
            self.counters[name][peer] = self.counters[name].get(peer, 0) + 1
        self.state.save_counters(self.cid, self.pid, self.counters)

    def error(self, message: str) -> None:
        log.warning("federation %s/%s: %s", self.cid, self.pid, message)
        self.state.log(self.cid, self.pid, "error", message)

    def sync(self, message: str) -> None:
        log.info("federation %s/%s: %s", self.cid, self.pid, message)
        self.state.log(self.cid, self.pid, "sync", message)

    def sync_stats(self) -> dict[str, Any]:
        """The FedSyncStats entity: counters, error log, sync log."""
        return {
            **self.counters,
            "rcvContractError": dict(self.counters["rcvContractError"]),
            "errorLog": self.state.logs(self.cid, self.pid, "error"),
            "syncLog": self.state.logs(self.cid, self.pid, "sync"),
        }
