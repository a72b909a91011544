"""`fedstats flow -f <function> ...`: FATE-Flow's reference CLI syntax against a node's /v1.

The functions of `fate_flow_client.py -f` for tables (`upload`, `upload_history`,
`table_info`, `table_delete`, `table_bind`, `version`), jobs (`submit_job` with `-c conf
-d dsl`, `query_job`, `stop_job`, `rerun_job`, `job_config`, `job_log` and
`component_output_data` written as tar.gz into `-o`, `query_task`, `list_jobs`),
tracking (`component_parameters`, `component_metric_all`, `component_metrics`,
`component_output_model`, `component_summary`, `component_list`) and models (`deploy`,
`query_model`, `load`, `bind`) with its flags (`-c -d -n -t -limit -j -drop -r -p -cpn
-o -m -v`). The server is `--ip/--port` or FEDSTATS_FLOW_URL,
the app key and secret a customer's id and key (`--app-key/--secret-key` or
FEDSTATS_FLOW_APP_KEY / FEDSTATS_FLOW_SECRET_KEY); every request is signed as
fate-client signs it. The answer is printed as JSON indented by 4, as FATE's CLI does.
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
             "table_bind": "table/bind", "version": "server/version/get",
             "submit_job": "job/submit", "query_job": "job/query", "stop_job": "job/stop",
             "rerun_job": "job/rerun", "job_config": "job/config",
             "job_log": "job/log/download", "query_task": "job/task/query",
             "list_jobs": "job/list/job",
             "component_parameters": "tracking/component/parameters",
             "component_metric_all": "tracking/component/metric/all",
             "component_metrics": "tracking/component/metrics",
             "component_output_model": "tracking/component/output/model",
             "component_output_data": "tracking/component/output/data/download",
             "component_summary": "tracking/component/summary/download",
             "component_list": "tracking/component/list",
             "deploy": "model/deploy", "query_model": "model/query", "load": "model/load",
             "bind": "model/bind"}
DOWNLOADS = {"job_log": "job_{job_id}_log.tar.gz",
             "component_output_data": "job_{job_id}_{component_name}_{role}_{party_id}"
                                      "_output_data.tar.gz"}
FLAGS = ("namespace", "table_name", "job_id", "limit", "drop", "role", "party_id",
         "component_name", "model_id", "model_version")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedstats flow", description=__doc__.split("\n\n")[0])
    p.add_argument("-f", "--function", required=True, choices=sorted(ENDPOINTS))
    p.add_argument("-c", "--config", help="the conf file (JSON)")
    p.add_argument("-n", "--namespace")
    p.add_argument("-t", "--table_name", "--table-name", dest="table_name")
    p.add_argument("-j", "--job_id", "--job-id", dest="job_id")
    p.add_argument("-limit", "--limit", type=int)
    p.add_argument("-drop", "--drop", type=int, choices=(0, 1))
    p.add_argument("-d", "--dsl", help="the DSL file of submit_job (JSON)")
    p.add_argument("-r", "--role")
    p.add_argument("-p", "--party_id", "--party-id", dest="party_id")
    p.add_argument("-cpn", "--component_name", "--component-name", dest="component_name")
    p.add_argument("-m", "--model_id", "--model-id", dest="model_id")
    p.add_argument("-v", "--model_version", "--model-version", dest="model_version")
    p.add_argument("-o", "--output_path", "--output-path", dest="output_path",
                   help="folder the tar.gz of job_log / component_output_data goes to")
    p.add_argument("--ip", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--app-key", default=os.environ.get("FEDSTATS_FLOW_APP_KEY"))
    p.add_argument("--secret-key", default=os.environ.get("FEDSTATS_FLOW_SECRET_KEY"))
    return p


def _base(args: argparse.Namespace) -> str:
    if args.ip or args.port:
        return f"http://{args.ip or '127.0.0.1'}:{args.port or 9380}/v1"
    return os.environ.get("FEDSTATS_FLOW_URL", "http://127.0.0.1:9380").rstrip("/") + "/v1"


def _sign(request: httpx.Request, args: argparse.Namespace, signed_body: bytes) -> None:
    if args.app_key and args.secret_key:
        ts, nonce = str(round(time.time() * 1000)), str(uuid.uuid1())
        path_url = request.url.raw_path.decode("ascii")
        request.headers.update({"TIMESTAMP": ts, "NONCE": nonce, "APP_KEY": args.app_key,
                                "SIGNATURE": signature(args.secret_key, ts, nonce, args.app_key,
                                                       path_url, signed_body)})


REFUSED = {"retcode": 100, "retmsg": "Connection refused. Please check if the fate flow "
           "service is started."}


def _post(client: httpx.Client, request: httpx.Request, args: argparse.Namespace,
          signed_body: bytes) -> httpx.Response | None:
    """The signed request's response; None when the server cannot be reached."""
    _sign(request, args, signed_body)
    try:
        return client.send(request)
    except httpx.ConnectError:
        return None


def _send(client: httpx.Client, request: httpx.Request, args: argparse.Namespace,
          signed_body: bytes) -> dict[str, Any]:
    r = _post(client, request, args, signed_body)
    if r is None:
        return dict(REFUSED)
    try:
        out: dict[str, Any] = r.json()
    except ValueError:
        out = {"retcode": 100, "retmsg": r.text}
    return out


def run(argv: Sequence[str]) -> dict[str, Any]:
    """The server's answer to one `-f` call."""
    args = _parser().parse_args(list(argv))
    conf: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}
    if args.function == "submit_job":
        if not args.dsl:
            return {"retcode": 100, "retmsg": "submit_job needs -d, the job's DSL file"}
        conf = {"job_runtime_conf": conf,
                "job_dsl": json.loads(Path(args.dsl).read_text())}
    for key in FLAGS:
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
        if args.function in DOWNLOADS:
            return _download(client, req, args, body, conf)
        return _send(client, req, args, body)


def _download(client: httpx.Client, request: httpx.Request, args: argparse.Namespace,
              body: bytes, conf: dict[str, Any]) -> dict[str, Any]:
    """A tar.gz answer written into `-o` (FATE's CLI does the same); a JSON answer (an
    error) returned as it is."""
    if not args.output_path:
        return {"retcode": 100, "retmsg": f"{args.function} needs -o, the output folder"}
    r = _post(client, request, args, body)
    if r is None:
        return dict(REFUSED)
    if "json" in r.headers.get("content-type", ""):
        answer: dict[str, Any] = r.json()
        return answer
    names = {k: conf.get(k, "") for k in ("job_id", "component_name", "role", "party_id")}
    folder = Path(args.output_path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / DOWNLOADS[args.function].format(**names)
    target.write_bytes(r.content)
    return {"retcode": 0, "retmsg": f"download successfully, please check {target}",
            "directory": str(target)}


def main(argv: Sequence[str]) -> int:
    out = run(argv)
    print(json.dumps(out, indent=4, ensure_ascii=False))
    return 0 if out.get("retcode") == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
