"""The node's HTTP surface: signed REST + WebSocket API (FastAPI) over `ProjectService`.

    app.py       create_app(settings) -> FastAPI (assembly; the federation plugs in here)
    auth.py      signed_customer: the dependency verifying every /symetry/rest request
    envelope.py  {statusCode, statusString, values}; encrypted body helpers
    errors.py    every exception -> HTTP status + envelope (the one mapping)
    body.py      the parser of a rows body, chosen by Content-Type
    projects.py  projects, learn/forget, explore      models.py  build, models, predict
    jobs.py      async jobs                           ws.py      WebSocket learn/forget/predict
    metrics.py   Prometheus                           health.py  /healthz, /readyz
"""

from .app import create_app

__all__ = ["create_app"]
