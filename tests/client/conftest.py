"""A tiny signed-API server for the client tests: Starlette on a free port, verifying
every request and WebSocket message with the real `Verifier`.

The listening socket is bound before uvicorn starts, so the port is known at once and
early connections wait in the backlog: no polling for readiness.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fedstats.node.security import (
    AuthError,
    CryptoError,
    Customer,
    TokenBook,
    Verifier,
    aead,
    new_secret_key,
    parse_ws_message,
    seal_invite,
)


@dataclass
class Fake:
    """What the fake node saw and the state it keeps between calls."""

    customers: dict[str, Customer]
    verifier: Verifier
    seen: list[dict[str, Any]] = field(default_factory=list)
    projects: set[str] = field(default_factory=set)
    job_polls: int = 0
    tokens: TokenBook = field(default_factory=TokenBook)
    fed_key: str = field(default_factory=new_secret_key)


def envelope(http: int, code: str, text: str, values: dict | None = None,
             headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"statusCode": code, "statusString": text, "values": values or {}},
                        status_code=http, headers=headers)


def build_app(fake: Fake) -> Starlette:
    def decrypt_body(customer: Customer, body: bytes) -> Any:
        opener = aead.decrypt_legacy if customer.legacy_cbc else aead.decrypt
        return orjson.loads(opener(customer.secret_key, body.decode()))

    async def rest(request: Request) -> Response:
        body = await request.body()
        cid, rest_path = request.path_params["cid"], request.path_params["rest"]
        try:
            customer = fake.verifier.verify(request.method, request.url.path,
                                            request.url.query or None, request.headers, body, cid)
        except AuthError as e:
            return envelope(401, "UNAUTHORIZED", e.reason)
        seen = {"method": request.method, "path": request.url.path, "query": request.url.query,
                "headers": dict(request.headers), "body": body}
        fake.seen.append(seen)
        return route(customer, request.method, rest_path, request.query_params, body, seen)

    def route(customer: Customer, method: str, path: str, q: Any, body: bytes,
              seen: dict) -> Response:
        key = customer.secret_key
        if (method, path) == ("POST", "projects"):
            if q["pid"] in fake.projects:
                return envelope(409, "CONFLICT", f"Customer [{customer.id}] already has {q['pid']}")
            fake.projects.add(q["pid"])
            return envelope(201, "CREATED", f"Created with id:{q['pid']}")
        if (method, path) == ("POST", "projects/p1/build"):
            return envelope(202, "ACCEPTED", "Job Created",
                            headers={"Location": f"http://testserver/symetry/rest/{customer.id}/jobs/7"})
        if (method, path) == ("GET", "jobs/7"):
            fake.job_polls += 1
            if fake.job_polls < 3:
                return envelope(202, "ACCEPTED", "running")
            return envelope(200, "OK", "OK", {"jobinfo": {"status": "done"}})
        if path == "fedml/teapot":
            return PlainTextResponse("not an envelope", status_code=418)
        try:
            if (method, path) == ("POST", "fedml/create"):
                seen["decrypted"] = decrypt_body(customer, body)
                return envelope(201, "CREATED", f"Created with id:{q['pid']}")
            if (method, path) == ("GET", "fedml/p1/info"):
                return envelope(200, "OK", "OK", {"fedInfoEncrypted": aead.encrypt_json(
                    key, {"fed_name": "f1", "is_pulsing": "false"})})
            if (method, path) == ("POST", "fedml/p1/getInvitation"):
                asked = decrypt_body(customer, body)
                token = fake.tokens.issue(60, "join", admin=customer.id)
                invite = seal_invite(asked["passwd"], {
                    "fed_name": "f1", "fed_secret_key": fake.fed_key, "sync_sched": "m30",
                    "fed_rest_url": asked["fed_rest_host"], "fed_req_token": token})
                return envelope(200, "OK", "OK", {"fedInfoEncrypted": invite})
            if (method, path) == ("POST", "fedml/createJoin"):
                joined = decrypt_body(customer, body)
                seen["decrypted"] = joined
                fake.tokens.redeem(joined["fed_req_token"], "join")
                return envelope(201, "CREATED", "Fed Project created with join")
        except CryptoError as e:
            return envelope(401, "UNAUTHORIZED", str(e))
        return envelope(200, "OK", "OK")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                try:
                    header, payload = parse_ws_message(text)
                    customer = fake.verifier.verify_ws(header, payload, websocket.url.path)
                except (AuthError, ValueError) as e:
                    reason = e.reason if isinstance(e, AuthError) else str(e)
                    await websocket.send_json({"statusCode": "UNAUTHORIZED",
                                               "statusString": reason, "values": {}})
                    continue
                await websocket.send_json({"statusCode": "OK", "statusString": "OK", "values": {
                    "customer": customer.id, "extraKeys": header.get("extraKeys"),
                    "payload": payload}})
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[
        Route("/symetry/rest/{cid}/{rest:path}", rest,
              methods=["GET", "POST", "PUT", "DELETE"]),
        WebSocketRoute("/symetry/ws/{service}", ws),
    ])


@dataclass
class LiveServer:
    url: str
    fake: Fake


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    customers = {"c1": Customer("c1", new_secret_key()),
                 "c2": Customer("c2", new_secret_key(), legacy_cbc=True)}
    fake = Fake(customers, Verifier(customers))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(fake), log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", fake)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def fake(live_server: LiveServer) -> Fake:
    live_server.fake.seen.clear()
    return live_server.fake
