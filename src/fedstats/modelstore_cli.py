"""`fedstats modelstore ...`: the model store's methods from a shell, over the Python client.

    fedstats modelstore --endpoint URL --apikey ID --secret KEY COMMAND ...

(or `XDATA_FL_ENDPOINT`, `XDATA_FL_APIKEY`, `XDATA_FL_SECRET`). Answers are printed as
JSON; a server error prints its code, message and data on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedstats modelstore",
                                description="call a node's JSON-RPC model store")
    p.add_argument("--endpoint", help="the node's URL (default $XDATA_FL_ENDPOINT)")
    p.add_argument("--apikey", help="customer id (default $XDATA_FL_APIKEY)")
    p.add_argument("--secret", help="customer key (default $XDATA_FL_SECRET)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name: str, help_text: str, *args: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text)
        for a in args:
            c.add_argument(a)
        return c

    cmd("version", "the server's version")
    cmd("init", "create a store", "store")
    cmd("exists", "whether a store exists", "store")
    cmd("delete-store", "delete a store and its models", "store")
    put = cmd("put", "upload a model file", "store", "file")
    put.add_argument("--kind", default="")
    put.add_argument("--description", default="")
    put.add_argument("--meta", default="{}", help="model_meta as JSON")
    put.add_argument("--aggregated", action="store_true", help="fl.put_aggregated_model")
    load = cmd("load", "download a model", "store", "model_id")
    load.add_argument("-o", "--output", required=True)
    cmd("info", "a model's model_info", "store", "model_id")
    cmd("models", "every model_info of a store", "store")
    latest = cmd("latest", "the latest model of a store", "store")
    latest.add_argument("--state", choices=["any", "aggregated", "transferred", "feedbacked"],
                        default="any")
    cmd("delete", "delete a model", "store", "model_id")
    cmd("feedback", "feed a model back to the store's upstream", "store", "model_id")
    cmd("transfer", "bring the upstream's latest aggregated model here", "store")
    cmd("aggregate", "merge the store's fed-back fedstats snapshots exactly", "store")
    cmd("snapshot", "put a project's statistics into a store", "store", "project")
    cmd("parties", "the parties registered upstream")
    cmd("create-party", "register this node upstream", "description")
    cmd("delete-party", "remove a party upstream", "id")
    return p


def _actions(api: Any, a: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    return {
        "version": api.get_server_version,
        "init": lambda: api.initialize_model_store(a.store),
        "exists": lambda: api.exists_store(a.store),
        "delete-store": lambda: api.delete_store(a.store),
        "put": lambda: (api.put_aggregated_model if a.aggregated else api.put_model)(
            a.store, a.file, a.kind, a.description, json.loads(a.meta)),
        "load": lambda: api.load_model_to(a.store, a.model_id, a.output),
        "info": lambda: api.get_model_info(a.store, a.model_id),
        "models": lambda: api.get_models(a.store),
        "latest": lambda: {
            "any": api.get_model_info_latest, "aggregated": api.get_latest_aggregated_model,
            "transferred": api.get_latest_transferred_model,
            "feedbacked": api.get_latest_feedbacked_models}[a.state](a.store),
        "delete": lambda: api.delete_model(a.store, a.model_id),
        "feedback": lambda: api.feedback(a.store, a.model_id),
        "transfer": lambda: api.request_transfer(a.store),
        "aggregate": lambda: api.aggregate(a.store),
        "snapshot": lambda: api.put_project_snapshot(a.store, a.project),
        "parties": api.get_parties,
        "create-party": lambda: api.create_party(a.description),
        "delete-party": lambda: api.delete_party(a.id),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from .node.modelstore.rpcclient import TransportError
    from .node.modelstore_client import Api, FlError

    args = _parser().parse_args(argv)
    try:
        with Api(args.endpoint, args.apikey, args.secret) as api:
            result = _actions(api, args)[args.cmd]()
    except FlError as e:
        print(json.dumps({"code": e.code, "message": e.message, "data": e.data}),
              file=sys.stderr)
        return 1
    except (TransportError, ValueError) as e:
        print(f"fedstats modelstore: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=4, default=_default))
    return 0


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
