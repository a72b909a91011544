"""The node as a client of its upstream model store: signed calls, errors made explicit.

Every failure becomes an `UpstreamError` whose `data` names the upstream (endpoint and
store) and carries what it said (its JSON-RPC error object, or the transport's message);
nothing is retried silently here (a download resumes a cut transfer with Range, which
is the same request continued, not a retry of a refused one). Credentials are the
upstream's customer id and key, from the configuration or an admin's `set_upstream`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .config import Upstream
from .errors import IntegrityError, NoAggregatedModel, UpstreamError
from .rpcclient import IntegrityMismatch, RpcClient, RpcError, TransportError

log = logging.getLogger(__name__)

# The transport used for upstream calls; tests of a node in-process may replace it.
TransportFactory = Callable[[], httpx.BaseTransport | None]


class UpstreamClient:
    """Calls to one upstream for one local store."""

    def __init__(self, upstream: Upstream, local_store: str | None, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.upstream = upstream
        self.store = upstream.store_for(local_store) if local_store else None
        self._rpc = RpcClient(upstream.endpoint, upstream.apikey, upstream.secret,
                              timeout=timeout, transport=transport)

    def close(self) -> None:
        self._rpc.close()

    def _where(self) -> dict[str, Any]:
        return {"upstream_endpoint": self.upstream.endpoint,
                "upstream_model_store_ddc": self.store}

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except RpcError as e:
            if e.type == "NoAggregatedModel":
                raise NoAggregatedModel(f"the upstream has no aggregated model: {e.message}",
                                        **self._where()) from e
            raise UpstreamError(f"the upstream refused {what}: {e.message}",
                                upstream_error={"code": e.code, "message": e.message,
                                                "data": e.data}, **self._where()) from e
        except TransportError as e:
            raise UpstreamError(f"the upstream could not be reached for {what}: {e}",
                                upstream_error=str(e), **self._where()) from e
        except IntegrityMismatch as e:
            raise IntegrityError(f"the upstream's model failed verification: {e}",
                                 **self._where()) from e

    def call(self, method: str, params: dict[str, Any]) -> Any:
        with self._translated(method):
            return self._rpc.call(method, params)

    def put(self, path: Path, params: dict[str, Any]) -> dict[str, Any]:
        """Upload a local file with `fl.put_model`; the upstream's model_info."""
        with self._translated("fl.put_model"):
            result = self._rpc.upload("fl.put_model", {**params, "model_store_ddc": self.store},
                                      path, filename=path.name)
        if not isinstance(result, dict):
            raise UpstreamError("the upstream answered a put with no model_info",
                                **self._where())
        return result

    def download(self, model_id: str, sink: Callable[[bytes], object]) -> dict[str, str]:
        with self._translated("fl.load_model"):
            return self._rpc.download({"model_store_ddc": self.store, "model_id": model_id},
                                      sink)
