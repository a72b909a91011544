"""What the FATE-Flow routes share: the configuration, customers, nonces and tables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...security.customers import Customer
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FlowConfig:
        auth = env.get("FEDSTATS_FLOW_AUTH", "on").strip().lower()
        if auth not in ("on", "off"):
            raise ValueError(f"FEDSTATS_FLOW_AUTH must be on or off, got {auth!r}")
        root = env.get("FEDSTATS_FLOW_ROOT")
        return cls(auth=auth == "on", root=Path(root).resolve() if root else None,
                   party_id=int(env.get("FEDSTATS_FLOW_PARTY_ID", "0")))


@dataclass
class FlowState:
    config: FlowConfig
    customers: Mapping[str, Customer]
    tables: Tables
    data_dir: Path
    max_body: int
    nonces: NonceCache = field(default_factory=NonceCache)

    @property
    def incoming(self) -> Path:
        return self.data_dir / "flow" / "incoming"

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
