"""The node's HTTP surface: the facades (FastAPI) over the service, federation and stores.

    app.py       create_app(settings) -> FastAPI: the one composition root (opens the hub,
                 mounts every router and facade package, orders startup/shutdown)
    auth.py      signed_customer: the dependency verifying every /symetry/rest request
    envelope.py  {statusCode, statusString, values}; encrypted body helpers
    errors.py    every exception -> HTTP status + envelope (the one mapping)
    body.py      the parser of a rows body, chosen by Content-Type
    projects.py  projects, learn/forget, explore      models.py  build, models, predict
    jobs.py      async jobs                           ws.py      WebSocket learn/forget/predict
    metrics.py   Prometheus                           health.py  /healthz, /readyz
    fedml.py     the SymetryML federation REST API
    jsonrpc/     the xData-style JSON-RPC model store   flow/  the FATE-Flow v1 API

A facade never mounts itself nor registers an error handler: app.py mounts it, and its
exceptions reach the client through errors.py (JSON-RPC and FATE-Flow wrap their own
logical errors in their protocols' envelopes, as those protocols require).
"""

from .app import create_app

__all__ = ["create_app"]
