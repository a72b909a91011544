"""WebSocket learn / forget / predict (spec 003): `<header length>,<header JSON><payload>`.

Every message is signed on its own (`Verifier.verify_ws`: date window, replay, MD5,
HMAC over the payload, the service path and the extra keys). The service path may be
signed as the path (`/symetry/ws/learn`, the page's form) or as the full URL the client
connected to (`ws://host:port/symetry/ws/learn`, what the reference's client sym-rest-rc
signs); a message may also come without its length prefix, as the page's samples show. The extra keys — the
project id, and for predict the model id — are mandatory on the first message and
remembered for the connection; a later message may repeat them but not change them.

Answers are envelopes on the socket, one per message, errors included. An
authentication failure is answered (401) and the socket closed with 1008 (policy
violation); a message over `max_ws_message_bytes` with 1009 (message too big). Any other
error leaves the connection open for the next message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket

from ..security.errors import AuthError
from ..security.signing import parse_ws_message
from ..service import BadRequest
from .auth import addressed_url
from .body import parse_text_rows
from .context import limits_of, run_sized, run_sync, service_of
from .envelope import envelope_bytes
from .errors import classify

SERVICES = ("learn", "forget", "predict")
POLICY_VIOLATION, MESSAGE_TOO_BIG = 1008, 1009

router = APIRouter(tags=["websocket"])


def _keys(extra: Any) -> list[str]:
    if extra is None:
        return []
    values = extra.values() if isinstance(extra, Mapping) else extra
    if not isinstance(values, list) and not isinstance(extra, Mapping):
        raise BadRequest("extraKeys must be a list")
    return [str(v) for v in values]


@router.websocket("/symetry/ws/{service}")
async def ws_endpoint(ws: WebSocket, service: str) -> None:
    await ws.accept()
    if service not in SERVICES:
        reason = f"unknown WebSocket service {service!r}: use one of {', '.join(SERVICES)}"
        await ws.send_text(envelope_bytes(400, reason, {"error": reason}).decode("utf-8"))
        await ws.close(POLICY_VIOLATION)
        return
    session = _Session(ws, service)
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", "replace")
        if not await session.handle(text):
            return


class _Session:
    def __init__(self, ws: WebSocket, service: str) -> None:
        self.ws = ws
        self.service = service
        self.path = f"/symetry/ws/{service}"
        self.urls = [addressed_url(ws.headers, ws.url.scheme, self.path)]
        self.customer_id: str | None = None
        self.keys: list[str] | None = None
        self.metrics = ws.app.state.metrics
        self.limit = ws.app.state.settings.max_ws_message_bytes
        self.gate = ws.app.state.gate

    async def handle(self, text: str) -> bool:
        """Answer one message; False when the connection was closed."""
        if len(text) > self.limit:
            await self._answer(413, f"message exceeds the limit of {self.limit} bytes")
            await self.ws.close(MESSAGE_TOO_BIG)
            return False
        try:
            header, payload = parse_ws_message(text)
            customer = self.ws.app.state.verifier.verify_ws(header, payload, self.path,
                                                            self.urls)
            if self.customer_id not in (None, customer.id):
                raise AuthError(f"this connection belongs to customer {self.customer_id!r}")
        except AuthError as e:
            await self._answer(401, e.reason, getattr(e, "envelope_values", None))
            await self.ws.close(POLICY_VIOLATION)
            return False
        except Exception as e:  # a message that does not parse: answered, socket kept
            await self._answer(*classify(e)[:2])
            return True
        self.customer_id = customer.id
        self.gate.verified(self.ws.client.host if self.ws.client else None)
        try:
            values = await self._serve(customer.id, header, payload)
        except Exception as e:
            await self._answer(*classify(e)[:2])
            return True
        await self._answer(200, None, values)
        return True

    async def _serve(self, cid: str, header: dict[str, Any], payload: str) -> dict[str, Any]:
        keys = _keys(header.get("extraKeys"))
        if keys:
            if self.keys is not None and keys != self.keys:
                raise BadRequest(f"extraKeys {keys} differ from this connection's {self.keys}")
            self.keys = keys
        if not self.keys:
            raise BadRequest("extraKeys (the project id) are required on the first message")
        need = 2 if self.service == "predict" else 1
        if len(self.keys) < need:
            raise BadRequest(f"{self.service} needs {need} extraKeys: project id"
                             + (" and model id" if need == 2 else ""))
        svc = service_of(self.ws)
        limits = limits_of(self.ws)
        pid = self.keys[0]
        if self.service == "predict":
            model_id = self.keys[1]

            def predict() -> dict[str, Any]:
                return {"KSVSMap": svc.predict(cid, pid, model_id,
                                               parse_text_rows(payload, limits))}

            return await run_sized(self.ws, len(payload), predict)
        apply = svc.learn if self.service == "learn" else svc.forget
        svc.require_project(cid, pid)
        # a learn waits on a disk commit: always off the event loop
        rows = await run_sync(self.ws, lambda: apply(cid, pid, parse_text_rows(payload, limits)))
        counter = self.metrics.rows_learned if self.service == "learn" else \
            self.metrics.rows_forgotten
        counter.inc(rows)
        return {"rows": rows}

    async def _answer(self, status: int, message: str | None,
                      values: dict[str, Any] | None = None) -> None:
        if status >= 300 and message is not None:
            values = {"error": message, **(values or {})}
        self.metrics.ws_messages.labels(self.service, str(status)).inc()
        await self.ws.send_text(envelope_bytes(status, message, values).decode("utf-8"))
