"""The xData-style model store facade: JSON-RPC 2.0 on `/jsonrpc` (spec/xdata-fl.md).

    protocol.py  JSON-RPC 2.0 parsing, params binding and responses (pure)
    methods.py   the 22 fl.* methods and fedstats' extensions, by name
    dispatch.py  a body's requests run and answered (notifications, batches)
    codes.py     exception types -> JSON-RPC codes (and HTTP statuses off /jsonrpc)
    routes.py    POST /jsonrpc, /jsonrpc/upload/<method>, /jsonrpc/download/fl.load_model
    auth.py      the APIKey header + the node's REST signature (or, configured, Secret)
    render.py    model_info, ddc_info, party_info, typed datetimes
    state.py     what the routes share

The store itself (files, metadata, quotas, upstreams, aggregation) is
`fedstats.node.modelstore`; this package only speaks its wire. The composition root
mounts it with one call, `mount(app)`, after the node's state is on `app.state`.
"""

from __future__ import annotations

from fastapi import FastAPI

from ...modelstore.config import ModelStoreConfig, load_config
from ...modelstore.hierarchy import Hierarchy
from ...modelstore.service import ModelStoreService
from .routes import router
from .state import ModelStoreState

__all__ = ["ModelStoreState", "mount", "router"]


def mount(app: FastAPI, config: ModelStoreConfig | None = None) -> ModelStoreState:
    """Open the model store over the node's database and data directory, and serve it.

    Reads `app.state.settings`, `.db`, `.verifier` and `.service`; the configuration is
    `load_config(settings.data_dir)` unless given."""
    st = app.state
    config = config if config is not None else load_config(st.settings.data_dir)
    service = ModelStoreService(st.db, st.settings.data_dir, config)
    state = ModelStoreState(service=service, hierarchy=Hierarchy(service), config=config,
                            verifier=st.verifier, projects=st.service)
    st.modelstore = state
    app.include_router(router)
    return state
