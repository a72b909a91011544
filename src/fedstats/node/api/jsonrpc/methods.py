"""The model store's JSON-RPC methods: the reference's 22 `fl.*` and fedstats' extensions.

Each method is its params (in the reference's order, which is the by-position order) and
a synchronous function of the call's context; the dispatcher runs it in a worker thread.
`fl.put_model`, `fl.put_aggregated_model` and `fl.load_model` carry bytes, so they are
served by the upload and download routes; asked on `/jsonrpc`, they answer -32601 naming
the route to use. Extensions (`fedstats.*`): `aggregate` (the exact merge of a store's
fed-back snapshots), `put_project_snapshot` (a project's statistics into a store),
`get_upstream`, and the admin-only `set_upstream` / `delete_upstream`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ...engine.codec import encode_snapshot
from ...modelstore.config import parse_upstream
from ...modelstore.errors import InvalidParams
from ...modelstore.events import SNAPSHOT_KIND, FlEvents
from ...modelstore.service import PutRequest, check_store_name
from .protocol import Param
from .render import any_info, ddc_info, model_info
from .state import ModelStoreState

STORE = Param("model_store_ddc", (str,))
MODEL = Param("model_id", (str,))
OPT_STR = (str, type(None))
OPT_INT = (int, type(None))


@dataclass(frozen=True)
class Ctx:
    state: ModelStoreState
    cid: str


@dataclass(frozen=True)
class Method:
    params: tuple[Param, ...]
    fn: Callable[..., Any]
    heavy: bool = False  # moves a model: logged at INFO
    inline: bool = False  # one indexed metadata read: run on the event loop, no thread hop


def _server_version(ctx: Ctx) -> str:
    try:
        return version("fedstats")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0.0.0"


def _initialize(ctx: Ctx, model_store_ddc: str) -> Any:
    rec, count = ctx.state.service.initialize_store(ctx.cid, model_store_ddc)
    return ddc_info(rec, count)


def _latest(*states: FlEvents) -> Callable[..., Any]:
    def fn(ctx: Ctx, model_store_ddc: str) -> Any:
        rec = ctx.state.service.latest(ctx.cid, model_store_ddc, *states)
        return model_info(rec) if rec is not None else None
    return fn


def _latest_aggregated(ctx: Ctx, model_store_ddc: str, include_transferred: bool) -> Any:
    states = (FlEvents.AGGREGATED, FlEvents.TRANSFERRED) if include_transferred else (
        FlEvents.AGGREGATED,)
    rec = ctx.state.service.latest(ctx.cid, model_store_ddc, *states)
    return model_info(rec) if rec is not None else None


def _put_project_snapshot(ctx: Ctx, model_store_ddc: str, project: str,
                          model_description: str, model_meta: dict[str, Any]) -> Any:
    from ...service import NotFound

    svc = ctx.state.service
    svc.require_store(ctx.cid, model_store_ddc)
    try:
        acc = ctx.state.projects.local_accumulator(ctx.cid, project)
    except NotFound as e:
        raise InvalidParams(str(e), project=project) from e
    rec = svc.put_bytes(ctx.cid, model_store_ddc, encode_snapshot(acc), PutRequest(
        kind=SNAPSHOT_KIND, description=model_description,
        meta={**model_meta, "fedstats_project": project, "fedstats_rows": acc.n}))
    return model_info(rec)


def _set_upstream(ctx: Ctx, model_store_ddc: str, upstream_endpoint: str,
                  upstream_apikey: str, upstream_secret: str,
                  upstream_model_store_ddc: str | None, enabled: bool) -> Any:
    if upstream_model_store_ddc is not None:
        check_store_name(upstream_model_store_ddc)
    try:
        up = parse_upstream({"endpoint": upstream_endpoint, "apikey": upstream_apikey,
                             "secret": upstream_secret, "enabled": enabled,
                             "model_store_ddc": upstream_model_store_ddc}, "upstream")
    except ValueError as e:
        raise InvalidParams(str(e), model_store_ddc=model_store_ddc) from e
    assert up is not None
    ctx.state.service.set_upstream(ctx.cid, model_store_ddc, up)
    return {"model_store_ddc": model_store_ddc, **up.public()}


def _get_upstream(ctx: Ctx, model_store_ddc: str) -> Any:
    ctx.state.service.require_store(ctx.cid, model_store_ddc)
    up = ctx.state.service.upstream_for(ctx.cid, model_store_ddc)
    return {"model_store_ddc": model_store_ddc, **up.public()} if up is not None else None


def _elsewhere(route: str) -> Callable[..., Any]:
    def fn(ctx: Ctx, **_: Any) -> Any:
        raise AssertionError(route)  # never called: the dispatcher answers -32601
    fn.route = route  # type: ignore[attr-defined]
    return fn


def _svc(ctx: Ctx) -> Any:
    return ctx.state.service


def _h(ctx: Ctx) -> Any:
    return ctx.state.hierarchy


METHODS: dict[str, Method] = {
    "fl.get_server_version": Method((), _server_version),
    "fl.initialize_model_store": Method((STORE,), _initialize),
    "fl.exists_store": Method((STORE,), lambda c, model_store_ddc:
                              _svc(c).exists_store(c.cid, model_store_ddc), inline=True),
    "fl.delete_store": Method(
        (STORE, Param("raise_if_no_exists", (bool,), True)),
        lambda c, model_store_ddc, raise_if_no_exists:
            _svc(c).delete_store(c.cid, model_store_ddc, raise_if_no_exists)),
    "fl.put_model": Method((), _elsewhere("/jsonrpc/upload/fl.put_model")),
    "fl.put_aggregated_model": Method((), _elsewhere("/jsonrpc/upload/fl.put_aggregated_model")),
    "fl.load_model": Method((), _elsewhere("/jsonrpc/download/fl.load_model")),
    "fl.feedback": Method((STORE, MODEL), lambda c, model_store_ddc, model_id:
                          _h(c).feedback(c.cid, model_store_ddc, model_id), heavy=True),
    "fl.request_transfer": Method((STORE,), lambda c, model_store_ddc: model_info(
        _h(c).request_transfer(c.cid, model_store_ddc)), heavy=True),
    "fl.proxy_request_transfer_info": Method((STORE,), lambda c, model_store_ddc: any_info(
        _h(c).proxy_request_transfer_info(c.cid, model_store_ddc))),
    "fl.get_model_info": Method((STORE, MODEL), lambda c, model_store_ddc, model_id:
                                model_info(_svc(c).get_model(c.cid, model_store_ddc, model_id)),
                                inline=True),
    "fl.exists_model": Method((STORE, MODEL), lambda c, model_store_ddc, model_id:
                              _svc(c).exists_model(c.cid, model_store_ddc, model_id),
                              inline=True),
    "fl.delete_model": Method(
        (STORE, MODEL, Param("raise_if_no_exists", (bool,), True)),
        lambda c, model_store_ddc, model_id, raise_if_no_exists:
            _svc(c).delete_model(c.cid, model_store_ddc, model_id, raise_if_no_exists)),
    "fl.delete_all_model": Method((STORE,), lambda c, model_store_ddc:
                                  _svc(c).delete_all(c.cid, model_store_ddc)),
    "fl.get_models": Method((STORE,), lambda c, model_store_ddc: [
        model_info(m) for m in _svc(c).models(c.cid, model_store_ddc)]),
    "fl.get_model_info_latest": Method((STORE,), _latest()),
    "fl.get_latest_feedbacked_models": Method(
        (STORE, Param("round", OPT_INT, None)),
        lambda c, model_store_ddc, round: [
            model_info(m) for m in _svc(c).latest_feedbacked(c.cid, model_store_ddc, round)]),
    "fl.get_latest_aggregated_model": Method(
        (STORE, Param("include_transferred", (bool,), False)), _latest_aggregated),
    "fl.get_latest_transferred_model": Method((STORE,), _latest(FlEvents.TRANSFERRED)),
    "fl.get_parties": Method((Param("here", (bool,), False),), lambda c, here: any_info(
        _h(c).get_parties(c.cid, here))),
    "fl.create_party": Method(
        (Param("description", (str,), ""), Param("tenant_id", OPT_STR, None),
         Param("tenant_name", OPT_STR, None)),
        lambda c, description, tenant_id, tenant_name: any_info(
            _h(c).create_party(c.cid, description, tenant_id, tenant_name))),
    "fl.delete_party": Method((Param("id", (str,)), Param("here", (bool,), False)),
                              lambda c, id, here: _h(c).delete_party(c.cid, id, here)),
    # -- fedstats' extensions ------------------------------------------------------------
    "fedstats.aggregate": Method((STORE,), lambda c, model_store_ddc: model_info(
        _svc(c).aggregate(c.cid, model_store_ddc))),
    "fedstats.put_project_snapshot": Method(
        (STORE, Param("project", (str,)), Param("model_description", (str,), ""),
         Param("model_meta", (dict,), {})), _put_project_snapshot),
    "fedstats.get_upstream": Method((STORE,), _get_upstream),
    "fedstats.set_upstream": Method(
        (STORE, Param("upstream_endpoint", (str,)), Param("upstream_apikey", (str,)),
         Param("upstream_secret", (str,)), Param("upstream_model_store_ddc", OPT_STR, None),
         Param("enabled", (bool,), True)), _set_upstream),
    "fedstats.delete_upstream": Method((STORE,), lambda c, model_store_ddc:
                                       _svc(c).delete_upstream(c.cid, model_store_ddc)),
}

# The upload route's params, in the reference's order (`file` is the form's file part).
UPLOAD_PARAMS: tuple[Param, ...] = (
    STORE, Param("model_kind", (str,), ""), Param("model_description", (str,), ""),
    Param("model_meta", (dict,), {}), Param("model_state", OPT_INT, None),
    # a node feeding back sets these (provenance and the fields a copy keeps)
    Param("tenant_id", OPT_STR, None), Param("round", OPT_INT, None),
    Param("hop_count", (int,), 0), Param("source_model_id", OPT_STR, None),
    Param("source_model_store_ddc", OPT_STR, None),
)
UPLOAD_DEFAULT_STATE = {"fl.put_model": FlEvents.CREATED,
                        "fl.put_aggregated_model": FlEvents.AGGREGATED}
DOWNLOAD_PARAMS: tuple[Param, ...] = (STORE, MODEL)


def route_of(method: Method) -> str | None:
    """The route a bytes-carrying method is served on, None for plain methods."""
    return getattr(method.fn, "route", None)
