"""Upstreams: feedback up, transfer down, parties registered — a hierarchy of stores.

Edge N's store has an upstream U (endpoint, store there, N's credentials at U). A
feedback uploads a verified local model to U as FEEDBACKED (with its provenance, so the
same model fed back twice is one record there) and returns U's model_info. A transfer
asks U for the newest model it hands down (AGGREGATED there, or TRANSFERRED to it from
further up: so a root's aggregate reaches a third level once the middle has transferred
it), streams it into a local file while hashing, checks size and SHA-256 against U's
record, and stores it as TRANSFERRED. Parties go to the node-wide upstream (the
configuration's top-level one); a node without one keeps the registry itself.

Every failure of U is an `UpstreamError` naming it; nothing is retried behind the
caller's back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx

from ..store.modelmeta import ModelRecord, PartyRecord
from .config import Upstream
from .errors import ConfigError, IntegrityError, UpstreamError, UpstreamNotConfigured
from .events import FlEvents
from .service import ModelStoreService, copy_request
from .upstream import UpstreamClient

log = logging.getLogger(__name__)


class Hierarchy:
    """The upstream-facing operations of a node's model store."""

    def __init__(self, service: ModelStoreService,
                 transport: Callable[[], httpx.BaseTransport | None] = lambda: None) -> None:
        self.svc = service
        self._transport = transport

    def _client(self, upstream: Upstream, store: str | None) -> UpstreamClient:
        return UpstreamClient(upstream, store, transport=self._transport())

    def _store_client(self, cid: str, store: str) -> UpstreamClient:
        self.svc.require_store(cid, store)
        upstream = self.svc.upstream_for(cid, store)
        if upstream is None:
            raise UpstreamNotConfigured(f"model store {store!r} has no upstream on this node",
                                        model_store_ddc=store)
        return self._client(upstream, store)

    # -- models --------------------------------------------------------------------------
    def feedback(self, cid: str, store: str, model_id: str) -> dict[str, Any]:
        """Upload a local model to the upstream store (FEEDBACKED); its model_info there."""
        rec, path = self.svc.open_verified(cid, store, model_id)
        client = self._store_client(cid, store)
        try:
            log.info("feedback of model %s (%d bytes) from %s to %s %s", rec.model_id,
                     rec.size, store, client.upstream.endpoint, client.store)
            req = copy_request(rec, FlEvents.FEEDBACKED, None)
            return client.put(path, {
                "model_kind": req.kind, "model_description": req.description,
                "model_meta": req.meta, "model_state": int(FlEvents.FEEDBACKED),
                "tenant_id": req.tenant_id, "round": req.round, "hop_count": req.hop_count,
                "source_model_id": rec.model_id, "source_model_store_ddc": store})
        finally:
            client.close()

    def proxy_request_transfer_info(self, cid: str, store: str) -> dict[str, Any] | ModelRecord:
        """The upstream's newest model to hand down; this node's own when it has none."""
        self.svc.require_store(cid, store)
        upstream = self.svc.upstream_for(cid, store)
        if upstream is None:
            return self.svc.latest_for_transfer(cid, store)
        client = self._client(upstream, store)
        try:
            return self._upstream_latest(client)
        finally:
            client.close()

    def _upstream_latest(self, client: UpstreamClient) -> dict[str, Any]:
        info = client.call("fl.get_latest_aggregated_model",
                           {"model_store_ddc": client.store, "include_transferred": True})
        if info is None:
            from .errors import NoAggregatedModel

            raise NoAggregatedModel("the upstream store holds no aggregated model",
                                    upstream_endpoint=client.upstream.endpoint,
                                    upstream_model_store_ddc=client.store)
        if not isinstance(info, dict) or not isinstance(info.get("model_id"), str):
            raise UpstreamError("the upstream answered a model_info without a model_id",
                                upstream_endpoint=client.upstream.endpoint)
        return info

    def request_transfer(self, cid: str, store: str) -> ModelRecord:
        """Bring the upstream's newest aggregated model here (TRANSFERRED), verified."""
        client = self._store_client(cid, store)
        try:
            info = self._upstream_latest(client)
            size, sha = info.get("model_size"), info.get("model_sha256")
            if not isinstance(size, int) or not isinstance(sha, str):
                raise UpstreamError("the upstream's model_info lacks model_size or "
                                    "model_sha256", upstream_endpoint=client.upstream.endpoint)
            for existing in self.svc.meta.models(cid, store, (FlEvents.TRANSFERRED,)):
                if existing.source_model_id == info["model_id"] and existing.sha256 == sha:
                    return existing  # transferred already: the same record, not a copy
            log.info("transfer of model %s (%d bytes) from %s %s into %s", info["model_id"],
                     size, client.upstream.endpoint, client.store, store)
            self.svc.check_written_size(size)
            writer = self.svc.new_writer()
            try:
                client.download(info["model_id"], writer.write)
                got = writer.finish()
                if writer.size != size or got != sha:
                    raise IntegrityError(
                        f"the upstream's model {info['model_id']} arrived as {writer.size} "
                        f"bytes hashing to {got}; its record says {size} bytes, {sha}",
                        model_store_ddc=store, model_id=info["model_id"],
                        upstream_endpoint=client.upstream.endpoint)
                meta = info.get("model_meta")
                req = _remote_copy(info, meta if isinstance(meta, dict) else {})
                req.source_endpoint = client.upstream.endpoint
                req.source_store = client.store
                return self.svc.commit_put(cid, store, writer, req)
            finally:
                writer.abort()
        finally:
            client.close()

    # -- parties -------------------------------------------------------------------------
    def _party_client(self) -> UpstreamClient | None:
        up = self.svc.config.upstream
        return self._client(up, None) if up is not None and up.enabled else None

    def create_party(self, cid: str, description: str, tenant_id: str | None = None,
                     tenant_name: str | None = None) -> dict[str, Any] | PartyRecord:
        client = None if tenant_id is not None else self._party_client()
        if client is None:  # an edge registering here, or this node is the root
            tid = tenant_id or self.svc.tenant_id
            name = tenant_name if tenant_name is not None else self.svc.tenant_name
            if not tid:
                raise ConfigError("no tenant_id: set it in the model store configuration")
            import uuid

            now = self.svc.clock()
            rec = PartyRecord(cid, str(uuid.uuid4()), tid, name, description, 1, now, now)
            self.svc.meta.add_party(rec)
            return rec
        try:
            return client.call("fl.create_party", {
                "description": description, "tenant_id": self.svc.tenant_id,
                "tenant_name": self.svc.tenant_name})
        finally:
            client.close()

    def get_parties(self, cid: str, here: bool = False) -> list[Any]:
        """The upstream's registry (asked with `here`, which a node sends: answered from
        this node's own), or this node's when it is the root."""
        client = None if here else self._party_client()
        if client is None:
            return list(self.svc.meta.parties(cid))
        try:
            result = client.call("fl.get_parties", {"here": True})
        finally:
            client.close()
        return list(result) if isinstance(result, list) else []

    def delete_party(self, cid: str, party_id: str, here: bool = False) -> int:
        client = None if here else self._party_client()
        if client is None:
            return self.svc.meta.delete_party(cid, party_id)
        try:
            return int(client.call("fl.delete_party", {"id": party_id, "here": True}))
        finally:
            client.close()


def _remote_copy(info: dict[str, Any], meta: dict[str, Any]) -> Any:
    from .service import PutRequest

    relayed = info.get("model_state") in (FlEvents.FEEDBACKED, FlEvents.TRANSFERRED)
    hop = info["hop_count"] if isinstance(info.get("hop_count"), int) else 0
    rnd = info["round"] if isinstance(info.get("round"), int) else 0
    tenant = info.get("tenant_id") if isinstance(info.get("tenant_id"), str) else None
    return PutRequest(kind=str(info.get("model_kind") or ""),
                      description=str(info.get("model_description") or ""), meta=meta,
                      state=FlEvents.TRANSFERRED, tenant_id=tenant, round=rnd,
                      hop_count=hop + (1 if relayed else 0),
                      source_model_id=info["model_id"])
