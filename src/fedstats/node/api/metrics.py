"""Prometheus metrics, one registry per app (two apps in one test process never collide).

A pure ASGI middleware (not `BaseHTTPMiddleware`, which costs a task per request) times
every HTTP request and labels it with the route *template* (`/symetry/rest/{cid}/...`),
never the concrete path, so customer and project ids do not explode the label space.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The node's counters and histograms, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("fedstats_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("fedstats_http_request_seconds", "HTTP request latency",
                                 ["route", "method"], buckets=_BUCKETS, registry=r)
        self.rows_learned = Counter("fedstats_rows_learned", "Rows learned", registry=r)
        self.rows_forgotten = Counter("fedstats_rows_forgotten", "Rows forgotten", registry=r)
        self.model_builds = Counter("fedstats_model_builds", "Models built", ["algo"],
                                    registry=r)
        self.errors = Counter("fedstats_errors", "Errors answered, by kind", ["kind"],
                              registry=r)
        self.ws_messages = Counter("fedstats_ws_messages", "WebSocket messages answered",
                                   ["service", "status"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times HTTP requests by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)


async def metrics_endpoint(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
