"""`fedstats flow -f <function> ...`: FATE-Flow's reference CLI syntax against a node's /v1.

The functions of `fate_flow_client.py -f` for tables (`upload`, `upload_history`,
`table_info`, `table_delete`, `table_bind` answered by the server, `version`) with its
flags (`-c -n -t -limit -j -drop`). The server is `--ip/--port` or FEDSTATS_FLOW_URL,
the app key and secret a customer's id and key (`--app-key/--secret-key` or
FEDSTATS_FLOW_APP_KEY / FEDSTATS_FLOW_SECRET_KEY); every request is signed as
fate-client signs it. The answer is printed as JSON indented by 4, as FATE's CLI does.
Job, tracking and model functions are not served yet (docs/flow.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from .node.api.flow.auth import signature

ENDPOINTS = {"upload": "data/upload", "upload_history": "data/upload/history",
             "table_info": "table/table_info", "table_delete": "table/delete",
             "table_bind": "table/bind", "version": "server/version/get"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedstats flow", description=__doc__.split("\n\n")[0])
    p.add_argument("-f", "--function", required=True, choices=sorted(ENDPOINTS))
    p.add_argument("-c", "--config", help="the conf file (JSON)")
    p.add_argument("-n", "--namespace")
    p.add_argument("-t", "--table_name", "--table-name", dest="table_name")
    p.add_argument("-j", "--job_id", "--job-id", dest="job_id")
    p.add_argument("-limit", "--limit", type=int)
    p.add_argument("-drop", "--drop", type=int, choices=(0, 1))
    p.add_argument("--ip", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--app-key", default=os.environ.get("FEDSTATS_FLOW_APP_KEY"))
    p.add_argument("--secret-key", default=os.environ.get("FEDSTATS_FLOW_SECRET_KEY"))
    return p


def _base(args: argparse.Namespace) -> str:
    if args.ip or args.port:
        return f"http://{args.ip or '127.0.0.1'}:{args.port or 9380}/v1"
    return os.environ.get("FEDSTATS_FLOW_URL", "http://127.0.0.1:9380").rstrip("/") + "/v1"


def _send(client: httpx.Client, request: httpx.Request, args: argparse.Namespace,
          signed_body: bytes) -> dict[str, Any]:
    if args.app_key and args.secret_key:
        ts, nonce = str(round(time.time() * 1000)), str(uuid.uuid1())
        path_url = request.url.raw_path.decode("ascii")
        request.headers.update({"TIMESTAMP": ts, "NONCE": nonce, "APP_KEY": args.app_key,
                                "SIGNATURE": signature(args.secret_key, ts, nonce, args.app_key,
                                                       path_url, signed_body)})
    try:
        r = client.send(request)
    except httpx.ConnectError:
        return {"retcode": 100, "retmsg": "Connection refused. Please check if the fate flow "
                "service is started."}
    try:
        out: dict[str, Any] = r.json()
    except ValueError:
        out = {"retcode": 100, "retmsg": r.text}
    return out


def run(argv: Sequence[str]) -> dict[str, Any]:
    """The server's answer to one `-f` call."""
    args = _parser().parse_args(list(argv))
    conf: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}
    for key in ("namespace", "table_name", "job_id", "limit", "drop"):
        if getattr(args, key) is not None:
            conf[key] = getattr(args, key)
    url = f"{_base(args)}/{ENDPOINTS[args.function]}"
    with httpx.Client(timeout=None) as client:
        if args.function == "upload" and int(conf.get("use_local_data", 1)) != 0:
            file = Path(str(conf.get("file", "")))
            if not file.is_file():
                return {"retcode": 100, "retmsg": f"The file {str(file)!r} does not exist on "
                        "this machine"}
            with open(file, "rb") as fp:
                req = client.build_request("POST", url, params={json.dumps(conf): ""},
                                           files={"file": (file.name, fp, "application/octet-stream")})
                return _send(client, req, args, b"")
        body = json.dumps(conf).encode()
        req = client.build_request("POST", url, content=body,
                                   headers={"Content-Type": "application/json"})
        return _send(client, req, args, body)


def main(argv: Sequence[str]) -> int:
    out = run(argv)
    print(json.dumps(out, indent=4, ensure_ascii=False))
    return 0 if out.get("retcode") == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
