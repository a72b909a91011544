"""FATE-Flow v1 facade (spec/fateflow-v1.md): `/v1/...` with FATE's envelope and signature.

    envelope.py  retcodes, FlowError, the sorted, None-dropping envelope (pure)
    auth.py      TIMESTAMP/NONCE/APP_KEY/SIGNATURE HMAC-SHA1, ±60 s, replays refused
    tables.py    FATE tables as the node's row stores; upload, info, delete, history
    routes.py    data/upload(+history), data/download, table/table_info, delete, bind (PATH),
                 server/version/get; the handler plumbing every route shares
    dsl.py       DSL v2 / runtime conf v2 checks (pure); job/submit answers them
    state.py     configuration (FEDSTATS_FLOW_*) and what the routes share

    jobs.py      job/submit, query, list, stop, rerun, config, log download, task query/list
    tracking.py  tracking/component/*: list, metrics, parameters, output model/data, summary
    model.py     model/deploy, query, get/predict/{dsl,conf}, load, bind
    rows.py      job, task and model records in FATE's `f_` shape (pure)
    remote.py    jobs across parties on other nodes: forwarded to the federation's admin,
                 which calls each member's parties (federation/flowlink.py)

The jobs run in the service below (service/flowjobs). The composition root mounts the
package with one call, `mount(app)`, after the node's state is on `app.state`, and
stops its scheduler with `FlowState.shutdown` on the way out.
"""

from __future__ import annotations

from fastapi import FastAPI

from ...service.flowjobs import FlowJobs, Sites
from ...store.flowjobs import FlowJobStore
from . import jobs, model, remote, tracking
from .routes import fallback, router
from .state import FlowConfig, FlowState
from .tables import Tables

__all__ = ["FlowConfig", "FlowState", "mount", "router"]


def mount(app: FastAPI, config: FlowConfig | None = None) -> FlowState:
    """Serve `/v1` over the node's database, data directory and customers."""
    st = app.state
    config = config if config is not None else FlowConfig.from_env()
    tables = Tables(st.db, st.settings.data_dir)
    link = remote.link_for(app, config.party_ids, config.federation, config.call_timeout)
    flow_jobs = FlowJobs(FlowJobStore(st.db), Sites(config.party_ids, tables, link.site_for),
                         st.settings.data_dir)
    remote.wire(app, link, flow_jobs, flow_jobs.jobs_dir)
    state = FlowState(config=config, customers=st.customers, tables=tables,
                      data_dir=st.settings.data_dir, max_body=st.settings.max_body_bytes,
                      jobs=flow_jobs, link=link)
    st.flow = state
    for r in (router, jobs.router, tracking.router, model.router, fallback):
        app.include_router(r)
    return state
