"""FATE-Flow v1 facade (spec/fateflow-v1.md): `/v1/...` with FATE's envelope and signature.

    envelope.py  retcodes, FlowError, the sorted, None-dropping envelope (pure)
    auth.py      TIMESTAMP/NONCE/APP_KEY/SIGNATURE HMAC-SHA1, ±60 s, replays refused
    tables.py    FATE tables as the node's row stores; upload, info, delete, history
    routes.py    data/upload(+history), data/download, table/table_info, delete, bind (PATH),
                 server/version/get
    dsl.py       DSL v2 / runtime conf v2 checks (pure); job/submit answers them
    state.py     configuration (FEDSTATS_FLOW_*) and what the routes share

Jobs, tracking and models are not served yet (see docs/flow.md). The composition root
mounts the package with one call, `mount(app)`, after the node's state is on `app.state`.
"""

from __future__ import annotations

from fastapi import FastAPI

from .routes import router
from .state import FlowConfig, FlowState
from .tables import Tables

__all__ = ["FlowConfig", "FlowState", "mount", "router"]


def mount(app: FastAPI, config: FlowConfig | None = None) -> FlowState:
    """Serve `/v1` over the node's database, data directory and customers."""
    st = app.state
    config = config if config is not None else FlowConfig.from_env()
    state = FlowState(config=config, customers=st.customers,
                      tables=Tables(st.db, st.settings.data_dir),
                      data_dir=st.settings.data_dir, max_body=st.settings.max_body_bytes)
    st.flow = state
    app.include_router(router)
    return state
