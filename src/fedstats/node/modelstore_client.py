"""The model store's Python client, with the reference's names and signatures.

    from xdata_fl.client import Api, set_logger      (or from fedstats.node.modelstore_client)
    api = Api()                                       endpoint and credentials from the env
    api.initialize_model_store("ddc:my_first_model_store")
    api.put_model("ddc:my_first_model_store", "./my_models/model_1", model_description="...")
    b"".join(api.load_model("ddc:my_first_model_store", model_id))

`Api()` takes no argument in the reference: the endpoint, customer id and key come from
`XDATA_FL_ENDPOINT` (default http://127.0.0.1:8080), `XDATA_FL_APIKEY` and
`XDATA_FL_SECRET` unless given. Every method takes its params by position or by name in
the reference's order; errors raise `FlError` (with `.code`, `.message`, `.data`), of the
subclass named by `data.type` (`StoreNotFound`, `ModelNotFound`, `UpstreamError`, ...).
Datetimes come back as aware `datetime`s. Heavy calls (the ones that move a model) are
logged at INFO, the rest at DEBUG, on the logger `set_logger` installs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from .modelstore.events import FlEvents
from .modelstore.rpcclient import FileArg, RpcClient, RpcError

__all__ = ["Api", "FlError", "FlEvents", "set_logger"]

_logger = logging.getLogger("xdata_fl")


def set_logger(logger: logging.Logger) -> None:
    """Log the client's calls on `logger` (INFO: model transfers; DEBUG: the rest)."""
    global _logger
    _logger = logger


class FlError(RpcError):
    """A model store error; `code`, `message`, `data` as the server answered them."""


_KINDS: dict[str, type[FlError]] = {
    name: type(name, (FlError,), {"__doc__": f"The server's {name}."})
    for name in ("InvalidParams", "StoreNotFound", "StoreAlreadyExists", "ModelNotFound",
                 "UpstreamNotConfigured", "UpstreamError", "NoAggregatedModel",
                 "PartyNotFound", "IntegrityError", "ModelTooLarge", "ConfigError",
                 "QuotaExceeded", "Forbidden", "AggregationError")
}
globals().update(_KINDS)
__all__ += sorted(_KINDS)


def _raise(e: RpcError) -> FlError:
    cls = _KINDS.get(e.type or "", FlError)
    return cls(e.code, e.message, e.data, e.http_status)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("_type") == "datetime" and isinstance(value.get("val"), str):
            return datetime.fromisoformat(value["val"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class Api:
    """The `fl.*` methods of one model store, as the reference's client names them."""

    def __init__(self, endpoint: str | None = None, apikey: str | None = None,
                 secret: str | None = None, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        endpoint = endpoint or os.environ.get("XDATA_FL_ENDPOINT", "http://127.0.0.1:8080")
        apikey = apikey or os.environ.get("XDATA_FL_APIKEY", "")
        secret = secret or os.environ.get("XDATA_FL_SECRET", "")
        if not apikey or not secret:
            raise ValueError("Api needs a customer id and key: pass apikey= and secret=, "
                             "or set XDATA_FL_APIKEY and XDATA_FL_SECRET")
        self._rpc = RpcClient(endpoint, apikey, secret, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._rpc.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, params: dict[str, Any], heavy: bool = False) -> Any:
        _logger.log(logging.INFO if heavy else logging.DEBUG, "%s %s", method, params)
        try:
            return _decode(self._rpc.call(method, params))
        except RpcError as e:
            raise _raise(e) from e

    # -- stores --------------------------------------------------------------------------
    def get_server_version(self) -> str:
        return str(self._call("fl.get_server_version", {}))

    def initialize_model_store(self, model_store_ddc: str) -> dict[str, Any]:
        return self._call("fl.initialize_model_store", {"model_store_ddc": model_store_ddc})

    def exists_store(self, model_store_ddc: str) -> bool:
        return bool(self._call("fl.exists_store", {"model_store_ddc": model_store_ddc}))

    def delete_store(self, model_store_ddc: str, raise_if_no_exists: bool = True) -> int:
        return int(self._call("fl.delete_store", {"model_store_ddc": model_store_ddc,
                                                  "raise_if_no_exists": raise_if_no_exists}))

    # -- models --------------------------------------------------------------------------
    def put_model(self, model_store_ddc: str, file: FileArg, model_kind: str = "",
                  model_description: str = "", model_meta: dict[str, Any] | None = None,
                  model_state: int = FlEvents.CREATED) -> dict[str, Any]:
        return self._put("fl.put_model", model_store_ddc, file, model_kind,
                         model_description, model_meta, model_state)

    def put_aggregated_model(self, model_store_ddc: str, file: FileArg, model_kind: str = "",
                             model_description: str = "",
                             model_meta: dict[str, Any] | None = None,
                             model_state: int = FlEvents.AGGREGATED) -> dict[str, Any]:
        return self._put("fl.put_aggregated_model", model_store_ddc, file, model_kind,
                         model_description, model_meta, model_state)

    def _put(self, method: str, store: str, file: FileArg, kind: str, description: str,
             meta: dict[str, Any] | None, state: int) -> dict[str, Any]:
        params = {"model_store_ddc": store, "model_kind": kind,
                  "model_description": description, "model_meta": meta or {},
                  "model_state": int(state)}
        _logger.info("%s into %s", method, store)
        try:
            return _decode(self._rpc.upload(method, params, file))
        except RpcError as e:
            raise _raise(e) from e

    def load_model(self, model_store_ddc: str, model_id: str) -> Iterator[bytes]:
        """The model's bytes, in chunks, verified (size and SHA-256) once all arrived; a cut
        transfer is resumed with Range."""
        _logger.info("fl.load_model %s %s", model_store_ddc, model_id)
        chunks: list[bytes] = []
        try:
            self._rpc.download({"model_store_ddc": model_store_ddc, "model_id": model_id},
                               chunks.append)
        except RpcError as e:
            raise _raise(e) from e
        return iter(chunks)

    def load_model_to(self, model_store_ddc: str, model_id: str, path: str) -> dict[str, str]:
        """Stream a model into a file (for models larger than memory)."""
        _logger.info("fl.load_model %s %s -> %s", model_store_ddc, model_id, path)
        with open(path, "wb") as f:
            try:
                return self._rpc.download({"model_store_ddc": model_store_ddc,
                                           "model_id": model_id}, f.write)
            except RpcError as e:
                raise _raise(e) from e

    def feedback(self, model_store_ddc: str, model_id: str) -> dict[str, Any]:
        return self._call("fl.feedback", {"model_store_ddc": model_store_ddc,
                                          "model_id": model_id}, heavy=True)

    def request_transfer(self, model_store_ddc: str) -> dict[str, Any]:
        return self._call("fl.request_transfer", {"model_store_ddc": model_store_ddc},
                          heavy=True)

    def proxy_request_transfer_info(self, model_store_ddc: str) -> dict[str, Any]:
        return self._call("fl.proxy_request_transfer_info", {"model_store_ddc": model_store_ddc})

    def get_model_info(self, model_store_ddc: str, model_id: str) -> dict[str, Any]:
        return self._call("fl.get_model_info", {"model_store_ddc": model_store_ddc,
                                                "model_id": model_id})

    def exists_model(self, model_store_ddc: str, model_id: str) -> bool:
        return bool(self._call("fl.exists_model", {"model_store_ddc": model_store_ddc,
                                                   "model_id": model_id}))

    def delete_model(self, model_store_ddc: str, model_id: str,
                     raise_if_no_exists: bool = True) -> int:
        return int(self._call("fl.delete_model", {"model_store_ddc": model_store_ddc,
                                                  "model_id": model_id,
                                                  "raise_if_no_exists": raise_if_no_exists}))

    def delete_all_model(self, model_store_ddc: str) -> int:
        return int(self._call("fl.delete_all_model", {"model_store_ddc": model_store_ddc}))

    def get_models(self, model_store_ddc: str) -> list[dict[str, Any]]:
        return self._call("fl.get_models", {"model_store_ddc": model_store_ddc})

    def get_model_info_latest(self, model_store_ddc: str) -> dict[str, Any] | None:
        return self._call("fl.get_model_info_latest", {"model_store_ddc": model_store_ddc})

    def get_latest_feedbacked_models(self, model_store_ddc: str,
                                     round: int | None = None) -> list[dict[str, Any]]:
        return self._call("fl.get_latest_feedbacked_models",
                          {"model_store_ddc": model_store_ddc, "round": round})

    def get_latest_aggregated_model(self, model_store_ddc: str) -> dict[str, Any] | None:
        return self._call("fl.get_latest_aggregated_model", {"model_store_ddc": model_store_ddc})

    def get_latest_transferred_model(self, model_store_ddc: str) -> dict[str, Any] | None:
        return self._call("fl.get_latest_transferred_model",
                          {"model_store_ddc": model_store_ddc})

    # -- parties -------------------------------------------------------------------------
    def get_parties(self) -> list[dict[str, Any]]:
        return self._call("fl.get_parties", {})

    def create_party(self, description: str = "") -> dict[str, Any]:
        return self._call("fl.create_party", {"description": description})

    def delete_party(self, id: str) -> int:
        return int(self._call("fl.delete_party", {"id": id}))

    # -- fedstats' extensions ------------------------------------------------------------
    def aggregate(self, model_store_ddc: str) -> dict[str, Any]:
        return self._call("fedstats.aggregate", {"model_store_ddc": model_store_ddc},
                          heavy=True)

    def put_project_snapshot(self, model_store_ddc: str, project: str,
                             model_description: str = "") -> dict[str, Any]:
        return self._call("fedstats.put_project_snapshot", {
            "model_store_ddc": model_store_ddc, "project": project,
            "model_description": model_description})
