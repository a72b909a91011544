"""What the FATE-Flow routes share: the configuration, customers, nonces, tables and jobs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...federation.flowlink import FlowLink
from ...security.customers import Customer
from ...service.flowjobs import FlowJobs
from .auth import NonceCache
from .envelope import ARGUMENT_ERROR, FlowError
from .tables import Tables


@dataclass(frozen=True)
class FlowConfig:
    """`auth` off only when asked (FEDSTATS_FLOW_AUTH=off); `root` confines server paths
    (FEDSTATS_FLOW_ROOT; None refuses every server path); `party_id` is the node's FATE id."""

    auth: bool = True
    root: Path | None = None
    party_id: int = 0
    local_parties: tuple[int, ...] = ()  # more party ids served here, FATE-standalone style
    sql_hosts: frozenset[str] = frozenset()  # "host:port" a MYSQL table/bind may read from
    federation: tuple[str, str] | None = None  # FEDSTATS_FLOW_FEDERATION=<customer>/<project>
    call_timeout: float = 120.0  # FEDSTATS_FLOW_CALL_TIMEOUT: one call on another party

    @property
    def party_ids(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys((self.party_id, *self.local_parties)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FlowConfig:
        auth = env.get("FEDSTATS_FLOW_AUTH", "on").strip().lower()
        if auth not in ("on", "off"):
            raise ValueError(f"FEDSTATS_FLOW_AUTH must be on or off, got {auth!r}")
        root = env.get("FEDSTATS_FLOW_ROOT")
        local = env.get("FEDSTATS_FLOW_LOCAL_PARTIES", "")
        try:
            party = int(env.get("FEDSTATS_FLOW_PARTY_ID", "0"))
            parties = tuple(int(p) for p in local.replace(",", " ").split())
        except ValueError:
            raise ValueError("FEDSTATS_FLOW_PARTY_ID and FEDSTATS_FLOW_LOCAL_PARTIES must be "
                             f"integer party ids, got {env.get('FEDSTATS_FLOW_PARTY_ID')!r}, "
                             f"{local!r}") from None
        hosts = frozenset(h.strip() for h in env.get("FEDSTATS_FLOW_SQL_HOSTS", "").split(",")
                          if h.strip())
        fed = env.get("FEDSTATS_FLOW_FEDERATION", "").strip()
        federation = None
        if fed:
            cid, sep, pid = fed.partition("/")
            if not sep or not cid or not pid or "/" in pid:
                raise ValueError(f"FEDSTATS_FLOW_FEDERATION must be <customer>/<project>, got "
                                 f"{fed!r}")
            federation = (cid, pid)
        try:
            call_timeout = float(env.get("FEDSTATS_FLOW_CALL_TIMEOUT", "120"))
        except ValueError:
            call_timeout = -1.0
        if not 0 < call_timeout < 86400:
            raise ValueError("FEDSTATS_FLOW_CALL_TIMEOUT must be seconds above 0, got "
                             f"{env.get('FEDSTATS_FLOW_CALL_TIMEOUT')!r}")
        return cls(auth=auth == "on", root=Path(root).resolve() if root else None,
                   party_id=party, local_parties=parties, sql_hosts=hosts,
                   federation=federation, call_timeout=call_timeout)


@dataclass
class FlowState:
    config: FlowConfig
    customers: Mapping[str, Customer]
    tables: Tables
    data_dir: Path
    max_body: int
    jobs: FlowJobs | None = None
    link: FlowLink | None = None  # jobs across parties on other nodes (federation/flowlink)
    nonces: NonceCache = field(default_factory=NonceCache)

    async def shutdown(self) -> None:
        """The scheduler stops (a running job fails, saying the node shut down)."""
        if self.jobs is not None:
            await asyncio.to_thread(self.jobs.close)

    @property
    def incoming(self) -> Path:
        return self.data_dir / "flow" / "incoming"

    def sql_host_allowed(self, host: str, port: int) -> None:
        """FlowError unless `host:port` is one of FEDSTATS_FLOW_SQL_HOSTS."""
        if f"{host}:{port}" not in self.config.sql_hosts:
            raise FlowError(ARGUMENT_ERROR, f"database server {host}:{port} is refused: it is not "
                            "in this node's FEDSTATS_FLOW_SQL_HOSTS "
                            f"({', '.join(sorted(self.config.sql_hosts)) or 'none'})")

    def confined(self, path: str) -> Path:
        """A server path inside the configured root, or FlowError saying it is refused."""
        if self.config.root is None:
            raise FlowError(ARGUMENT_ERROR, "server-side paths are refused: this node has no "
                            "FEDSTATS_FLOW_ROOT")
        p = Path(path)
        resolved = (p if p.is_absolute() else self.config.root / p).resolve()
        if not resolved.is_relative_to(self.config.root):
            raise FlowError(ARGUMENT_ERROR, f"path {path!r} is outside the server root "
                            f"{str(self.config.root)!r}: refused")
        return resolved
