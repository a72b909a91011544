"""What the model store's routes share, created once by `mount` and kept on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...modelstore.config import ModelStoreConfig
from ...modelstore.hierarchy import Hierarchy
from ...modelstore.service import ModelStoreService
from ...security.signing import Verifier
from .signatures import Signatures

MAX_RPC_BODY = 4 << 20  # a batch of small calls; models go through the upload route


@dataclass
class ModelStoreState:
    service: ModelStoreService
    hierarchy: Hierarchy
    config: ModelStoreConfig
    verifier: Verifier
    projects: Any  # the node's ProjectService (fedstats.put_project_snapshot)
    max_rpc_body: int = MAX_RPC_BODY
    signatures: Signatures = field(init=False)

    def __post_init__(self) -> None:
        self.signatures = Signatures(self.verifier)
