"""WebSocket client for learn / forget / predict (spec 003), every message signed.

One connection serves one service and one set of extra keys (the project id, and the
model id for predict); each message carries its own signed header, so the server can
check each one independently. Framing and signing are the pure functions of
`security.signing`; this module only holds the socket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Literal

import orjson
from websockets.sync.client import ClientConnection, connect

from .security.signing import build_ws_message, ws_signed_header

Service = Literal["learn", "forget", "predict"]
SERVICES = ("learn", "forget", "predict")


class WsClient:
    """`connect(service, extra_keys)`, then `send` / `recv` JSON messages; a context manager."""

    def __init__(self, base_url: str, customer_id: str, secret_key: str,
                 open_timeout: float = 10.0) -> None:
        url = base_url.rstrip("/")
        if url.startswith("http"):
            url = "ws" + url[len("http"):]
        self.base_url = url
        self.customer_id = customer_id
        self._secret = secret_key
        self.open_timeout = open_timeout
        self._conn: ClientConnection | None = None
        self._stack = ExitStack()
        self.service_path = ""
        self.extra_keys: Mapping[str, Any] | Sequence[Any] = []

    def __repr__(self) -> str:
        return f"WsClient({self.base_url!r}, customer_id={self.customer_id!r})"

    def connect(self, service: Service,
                extra_keys: Mapping[str, Any] | Sequence[Any] | None = None) -> WsClient:
        """Open `/symetry/ws/<service>`; `extra_keys` are signed into every message
        (learn/forget: the project id; predict: the project id then the model id)."""
        if service not in SERVICES:
            raise ValueError(f"service must be one of {SERVICES}, not {service!r}")
        self.close()
        self.service_path = f"/symetry/ws/{service}"
        self.extra_keys = extra_keys if extra_keys is not None else []
        # Entered as a context manager: the form websockets keeps supporting across versions.
        self._conn = self._stack.enter_context(
            connect(self.base_url + self.service_path, open_timeout=self.open_timeout))
        return self

    def send(self, payload: str | Mapping[str, Any]) -> None:
        """Sign and send one message; a mapping is sent as its JSON text."""
        text = payload if isinstance(payload, str) else orjson.dumps(payload).decode("utf-8")
        header = ws_signed_header(self.customer_id, self._secret, text, self.service_path,
                                  self.extra_keys)
        self._require().send(build_ws_message(header, text))

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next answer, decoded from JSON (the REST envelope shape)."""
        message = self._require().recv(timeout)
        data = orjson.loads(message)
        if not isinstance(data, dict):
            raise ValueError("the server answered with JSON that is not an object")
        return data

    def close(self) -> None:
        self._conn = None
        self._stack.close()

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self) -> ClientConnection:
        if self._conn is None:
            raise RuntimeError("not connected: call connect(service, extra_keys) first")
        return self._conn
