"""JSON Schemas of the request bodies, for the OpenAPI document only.

Handlers read raw bytes (the hot path has no pydantic); these schemas describe what they
accept so that generated clients and schemathesis send the right shapes.
"""

from __future__ import annotations

from typing import Any

DATAFRAME: dict[str, Any] = {
    "type": "object",
    "required": ["attributeNames", "attributeTypes", "data"],
    "properties": {
        "attributeNames": {"type": "array", "items": {"type": "string"}},
        "attributeTypes": {"type": "array",
                           "items": {"type": "string", "enum": list("CBTSLX")}},
        "data": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        # sent by the reference's client (sym-rest-rc); read and not acted on
        "errorHandling": {"type": "integer"},
    },
}

# Appendix A writes attribute indexes as strings ("targets":["3"]); numbers are accepted too
_INDEX = {"anyOf": [{"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": "^[0-9]+$"}]}

MLCONTEXT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "targets": {"type": "array", "items": _INDEX},
        "inputAttributes": {"type": "array", "items": _INDEX},
        "inputAttributeNames": {"type": "array", "items": {"type": "string"}},
        "targetAttributeNames": {"type": "array", "items": {"type": "string"}},
        "extraParameters": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

AUTOSELECT: dict[str, Any] = {
    "type": "object",
    "required": ["dataframe"],
    "properties": {"dataframe": DATAFRAME, "mlcontext": MLCONTEXT},
}

EXPLORE_CONTEXT: dict[str, Any] = {
    "type": "object",
    "properties": {"values": {"type": "array", "items": MLCONTEXT}},
}


def body(schema: dict[str, Any], *extra_media: str) -> dict[str, Any]:
    """`openapi_extra` declaring a required JSON body of `schema` (plus other media types)."""
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    for media in extra_media:
        content[media] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}
