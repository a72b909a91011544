"""Request bodies of rows, read by the parser their Content-Type names — chosen here only.

    application/json (or none)               DataFrame {attributeNames, attributeTypes, data}
    text/csv                                 CSV with a header row; `?types=C,C,B` (default all C)
    application/vnd.apache.arrow.stream      an Arrow IPC stream

The fast paths live in `engine.ingest`; until it is installed, JSON falls back to
`orjson.loads` + `frame.parse_frame` and the bulk formats are refused with 415.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..engine.errors import FrameError
from ..engine.frame import Batch, parse_frame
from .errors import UnsupportedMedia

JSON_TYPES = ("application/json", "text/json", "")
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"

try:  # the fast parsers (written in parallel); the fallback keeps the node whole without them
    from ..engine import ingest as _ingest
except ImportError:  # pragma: no cover - only before engine.ingest exists
    _ingest = None  # type: ignore[assignment]


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_json(body: bytes) -> Any:
    """A JSON document (FrameError, so 400, when it is not one)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise FrameError(f"the body is not valid JSON: {e}") from None


def parse_rows(body: bytes, content_type: str | None, types: str | None = None) -> Batch:
    """The rows of a learn/forget/predict body, by its Content-Type."""
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        if _ingest is not None:
            return _ingest.parse_dataframe_bytes(body)
        return parse_frame(parse_json(body))
    if kind == CSV and _ingest is not None:
        return _ingest.parse_csv(body, types)
    if kind == ARROW and _ingest is not None:
        return _ingest.parse_arrow(body, types)
    raise UnsupportedMedia(
        f"cannot read rows from a {kind!r} body: send a JSON DataFrame ({JSON_TYPES[0]}), "
        f"{CSV} or {ARROW}"
    )


def parse_text_rows(text: str) -> Batch:
    """A WebSocket payload: a DataFrame as JSON text."""
    return parse_rows(text.encode("utf-8"), JSON_TYPES[0])
