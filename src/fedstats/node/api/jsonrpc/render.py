"""Records as the reference's JSON: model_info, ddc_info, party_info, typed datetimes.

Datetimes travel as `{"_type": "datetime", "val": "<ISO-8601, offset, microseconds>"}`,
the wrapper the reference's v2 answers show; the Python client turns them back into
aware datetimes. `location` is `[longitude, latitude]` floats (never the WKB hex that
leaks through one of the reference's answers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...store.modelmeta import ModelRecord, PartyRecord, StoreRecord


def when(ts: float) -> dict[str, str]:
    return {"_type": "datetime", "val": datetime.fromtimestamp(ts, UTC).isoformat(
        timespec="microseconds")}


def model_info(rec: ModelRecord) -> dict[str, Any]:
    return {
        "model_id": rec.model_id,
        "model_store_ddc": rec.store,
        "model_kind": rec.kind,
        "model_description": rec.description,
        "model_meta": rec.meta,
        "model_state": rec.state,
        "model_hash": rec.sha256[:32],
        "model_sha256": rec.sha256,
        "model_size": rec.size,
        "tenant_id": rec.tenant_id,
        "round": rec.round,
        "hop_count": rec.hop_count,
        "location": [rec.lon, rec.lat],
        "start_datetime": when(rec.start),
        "end_datetime": when(rec.end),
        "source_model_id": rec.source_model_id,
        "source_model_store_ddc": rec.source_store,
        "source_endpoint": rec.source_endpoint,
    }


def ddc_info(rec: StoreRecord, model_count: int) -> dict[str, Any]:
    return {"id": rec.id, "model_store_ddc": rec.name, "short_form": rec.name,
            "ddc_type": "model_store", "created_at": when(rec.created),
            "updated_at": when(rec.updated), "model_count": model_count}


def party_info(rec: PartyRecord) -> dict[str, Any]:
    return {"id": rec.id, "tenant_id": rec.tenant_id, "tenant_name": rec.tenant_name,
            "description": rec.description, "hop_count": rec.hop_count,
            "created_at": when(rec.created), "updated_at": when(rec.updated)}


def any_info(value: Any) -> Any:
    """A record rendered, or a dict already in wire form (an upstream's answer) as is."""
    if isinstance(value, ModelRecord):
        return model_info(value)
    if isinstance(value, PartyRecord):
        return party_info(value)
    if isinstance(value, list):
        return [any_info(v) for v in value]
    return value
