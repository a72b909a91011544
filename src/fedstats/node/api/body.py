"""Request bodies of rows, read by the parser their Content-Type names — chosen here only.

    application/json (or none)               DataFrame {attributeNames, attributeTypes, data}
    text/csv                                 CSV with a header row; `?types=C,C,B` (default all C)
    application/vnd.apache.arrow.stream      an Arrow IPC stream

The parsers live in `engine.ingest` (a fast byte-level JSON path, CSV and Arrow readers);
any other Content-Type is refused with 415.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..engine import ingest
from ..engine.errors import FrameError
from ..engine.frame import DEFAULT_LIMITS, Batch
from ..limits import Limits
from .errors import UnsupportedMedia

JSON_TYPES = ("application/json", "text/json", "")
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"

def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_json(body: bytes) -> Any:
    """A JSON document (FrameError, so 400, when it is not one)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise FrameError(f"the body is not valid JSON: {e}") from None


def parse_rows(body: bytes, content_type: str | None, types: str | None = None,
               limits: Limits = DEFAULT_LIMITS) -> Batch:
    """The rows of a learn/forget/predict body, by its Content-Type, within `limits`."""
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        return ingest.parse_dataframe_bytes(body, limits)
    if kind == CSV:
        return ingest.parse_csv(body, types, limits)
    if kind == ARROW:
        return ingest.parse_arrow(body, types, limits)
    raise UnsupportedMedia(
        f"cannot read rows from a {kind!r} body: send a JSON DataFrame ({JSON_TYPES[0]}), "
        f"{CSV} or {ARROW}"
    )


def parse_text_rows(text: str, limits: Limits = DEFAULT_LIMITS) -> Batch:
    """A WebSocket payload: a DataFrame as JSON text."""
    return parse_rows(text.encode("utf-8"), JSON_TYPES[0], None, limits)
