"""Party id → site: where a party's rows are and its operations run.

`Sites` maps every party id a job names to a `Site`. This node's own party ids (its
`FEDSTATS_FLOW_PARTY_ID`, plus any `FEDSTATS_FLOW_LOCAL_PARTIES` it serves FATE-standalone
style) map to a `LocalSite`; any other party id is asked of `remote` (the federation's
`flowlink`: at the admin, a site whose calls go to the member that announced the party),
and a party id nobody serves refuses the job at submit, naming it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from . import ops
from .errors import ComponentFailed, JobRefused
from .frames import Frame


class TableSource(Protocol):
    """The node's FATE tables, as the facade holds them."""

    def exists(self, namespace: str, name: str) -> bool: ...

    def read(self, namespace: str, name: str) -> tuple[list[str], np.ndarray] | None: ...


class Site(Protocol):
    party_id: int

    def has_table(self, namespace: str, name: str) -> bool: ...

    def read(self, job_id: str, role: str, output: str, namespace: str, name: str) -> Any: ...

    def call(self, job_id: str, role: str, op: str, inputs: Sequence[str], output: str | None,
             **args: Any) -> Any: ...

    def has(self, job_id: str, role: str, ref: str) -> bool: ...

    def release(self, job_id: str) -> None: ...


class LocalSite:
    """A party on this node: its frames in memory for the job's life, its tables read here."""

    def __init__(self, party_id: int, tables: TableSource) -> None:
        self.party_id = party_id
        self._tables = tables
        self._frames: dict[tuple[str, str, str], Frame] = {}
        self._lock = threading.Lock()

    def has_table(self, namespace: str, name: str) -> bool:
        return self._tables.exists(namespace, name)

    def read(self, job_id: str, role: str, output: str, namespace: str, name: str) -> Any:
        table = self._tables.read(namespace, name)
        if table is None:
            raise ComponentFailed(f"table {namespace}.{name} does not exist at {role} "
                                  f"{self.party_id}")
        frame, answer = ops.read(table)
        with self._lock:
            self._frames[(job_id, role, output)] = frame
        return answer

    def call(self, job_id: str, role: str, op: str, inputs: Sequence[str], output: str | None,
             **args: Any) -> Any:
        with self._lock:
            try:
                frames = [self._frames[(job_id, role, ref)] for ref in inputs]
            except KeyError as e:
                raise ComponentFailed(f"{role} {self.party_id} has no data {e.args[0][2]!r}") from None
        frame, answer = ops.OPS[op](*frames, **args)
        if output is not None and frame is not None:
            with self._lock:
                self._frames[(job_id, role, output)] = frame
        return answer

    def has(self, job_id: str, role: str, ref: str) -> bool:
        with self._lock:
            return (job_id, role, ref) in self._frames

    def release(self, job_id: str) -> None:
        with self._lock:
            for key in [k for k in self._frames if k[0] == job_id]:
                del self._frames[key]


class Sites:
    """The party id → site map a job's parties are resolved through."""

    def __init__(self, local: Iterable[int], tables: TableSource,
                 remote: Callable[[int], Site | None] | None = None) -> None:
        self._sites: dict[int, Any] = {p: LocalSite(p, tables) for p in local}
        self._local = set(self._sites)
        self.remote = remote

    def register(self, party_id: int, site: Site) -> None:
        """Plug a site in for a party id (a cross-party dispatcher's remote member)."""
        self._sites[int(party_id)] = site

    @property
    def party_ids(self) -> list[int]:
        return sorted(self._sites)

    def serves(self, party_id: int | str) -> bool:
        """Whether this node itself serves the party (its own rows)."""
        return int(party_id) in self._local

    def local_site(self, party_id: int | str) -> LocalSite:
        """This node's own site for the party (a member answering the admin's calls)."""
        if not self.serves(party_id):
            raise JobRefused(f"party {party_id} is not served by this node (it serves "
                             f"{', '.join(map(str, sorted(self._local))) or 'none'})")
        site: LocalSite = self._sites[int(party_id)]
        return site

    def site(self, party_id: int | str) -> Any:
        pid = int(party_id)
        site = self._sites.get(pid)
        if site is None and self.remote is not None:
            site = self.remote(pid)
        if site is None:
            raise JobRefused(
                f"party {party_id} is not in the federation: no member announced it and this "
                f"node serves party id(s) {', '.join(map(str, sorted(self._local))) or 'none'}")
        return site
