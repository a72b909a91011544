"""What the federation needs from the project service, and nothing more: `ProjectPort`.

The hub creates and deletes a federated project's local half, asks whether one exists,
reads its own statistics for the agent to publish, and registers itself as a source of
peers' statistics for the service's merged view. Typing the hub against this Protocol
instead of `ProjectService` (or `Any`) keeps the layer below swappable and says exactly
which calls the federation depends on; `ProjectService` satisfies it structurally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..engine.accumulator import Accumulator
from ..service import PeerSource

if TYPE_CHECKING:
    from ..service import ProjectService


class ProjectPort(Protocol):
    """The project service as the federation sees it (see `fedstats.node.service`)."""

    def project_exists(self, cid: str, pid: str) -> bool:
        """Whether this node holds the project (quarantined ones do not count)."""
        ...

    def require_project(self, cid: str, pid: str) -> None:
        """Raise the service's NotFound (or Unavailable) unless the project exists."""
        ...

    def create_project(self, cid: str, pid: str, engine: str | None = None,
                       keep_rows: bool = False) -> None:
        """Create an empty project; the service's Conflict if it exists."""
        ...

    def delete_project(self, cid: str, pid: str) -> None:
        """Delete the project and what the service keeps of it."""
        ...

    def local_view(self, cid: str, pid: str) -> Accumulator:
        """This node's own statistics of the project, read-only (never mutated once given)."""
        ...

    def register_peer_source(self, fn: PeerSource) -> None:
        """Have `fn(cid, pid)`'s accumulators merged into the project's view."""
        ...


if TYPE_CHECKING:  # mypy checks that the service offers everything the hub needs

    def _conforms(service: ProjectService) -> ProjectPort:
        return service
