#!/usr/bin/env python3
"""Drives a federation that the operator deployed, through the nodes' signed REST API.

e2e/run.sh port-forwards each node's Service and calls this with the local URLs; each
node's customer id and key are read from its `<node>-customers` Secret (as a user would,
with kubectl). The operator's pods made the federation themselves (the admin creates it,
each peer joins with the invitation the operator stored), every node holding it as the
project named after the federation: this learns a split of scikit-learn's diabetes rows
on every node, waits until every row is merged, builds `mlr` on the admin and compares
its predictions with scikit-learn's LinearRegression on the pooled rows. Exit 0 when they
agree to 1e-9.

`learn_and_compare()` takes ready Clients, so tests/operator runs it on the operator's
pods run locally; `drive()` also makes the federation itself over REST (create, invite,
join), which tests/delivery runs against plain local nodes.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from fedstats.node.client import Client

TOLERANCE = 1e-9


def frame(rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    return {"attributeNames": names, "attributeTypes": ["C"] * len(names),
            "data": [[repr(float(v)) for v in row] for row in rows]}


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)  # polling other processes over REST: nothing to await


def drive(clients: Mapping[str, Client], admin: str, *, fed_name: str, nats_url: str,
          admin_rest_host: str, timeout: float = 120.0) -> dict[str, Any]:
    """The whole flow; returns the federated and pooled predictions and their worst error.

    `clients` maps each node's project id to a Client of that node (the admin's first),
    `nats_url` and `admin_rest_host` are as the nodes themselves reach NATS and the admin.
    """
    clients[admin].fed_create(admin, {"fed_name": fed_name, "nats_hosts": nats_url,
                                      "sync_sched": "s1", "nats_req_timeout": 10})
    for pid, client in clients.items():
        if pid != admin:
            invite = clients[admin].fed_invitation(admin, "e2e-password",
                                                   fed_rest_host=admin_rest_host,
                                                   fed_peer_id=pid)
            client.fed_join(pid, invite, "e2e-password")
    for pid, client in clients.items():
        client.start_pulse(pid)
    return learn_and_compare(clients, admin, {pid: pid for pid in clients}, timeout=timeout)


def learn_and_compare(clients: Mapping[str, Client], admin: str, projects: Mapping[str, str],
                      *, timeout: float = 120.0) -> dict[str, Any]:
    """Learns a split of the rows on every node of a pulsing federation, then compares the
    admin's federated model with the pooled one. `projects` names each node's project."""
    x, y = load_diabetes(return_X_y=True)
    names = [f"x{i}" for i in range(x.shape[1])] + ["y"]
    rows = np.column_stack([x, y])
    parts = dict(zip(clients, np.array_split(np.arange(len(y)), len(clients)), strict=True))
    for name, client in clients.items():
        client.learn(projects[name], frame(rows[parts[name]], names))
    pid = projects[admin]

    def merged() -> bool:
        info = clients[admin].project_info(pid)
        return int(info["rows"]) == len(y)

    _wait(merged, timeout, "the admin to merge every peer's rows")
    context = {"inputAttributeNames": names[:-1], "targetAttributeNames": ["y"]}
    clients[admin].build(pid, "e2e-mlr", "mlr", context, timeout=timeout)  # fails: ApiError
    answer = clients[admin].predict(pid, "e2e-mlr", frame(rows, names))["values"]["KSVSMap"]
    column = [row["res"] for row in answer["values"]]
    federated = np.asarray(column, dtype=float)
    pooled = LinearRegression().fit(x, y).predict(x)
    worst = float(np.max(np.abs(federated - pooled) / np.abs(pooled)))
    return {"rows": len(y), "nodes": list(clients), "worst_relative_error": worst,
            "federated_head": federated[:3].tolist(), "pooled_head": pooled[:3].tolist()}


def customers_of(kubectl: str, namespace: str, node: str) -> tuple[str, str]:
    """(customer id, Base64 key) from the node's `<node>-customers` Secret."""
    data = subprocess.run(
        [kubectl, "get", "secret", f"{node}-customers", "-n", namespace, "-o",
         "jsonpath={.data.customers\\.json}"], check=True, capture_output=True, text=True,
    ).stdout
    [(cid, key)] = json.loads(base64.b64decode(data)).items()
    return cid, key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--namespace", default="fedstats")
    p.add_argument("--kubectl", default="kubectl")
    p.add_argument("--federation", default="demo",
                   help="the federation's name: each node's project is named after it")
    p.add_argument("--nats-url", help="(ignored: the operator's pods make the federation)")
    p.add_argument("--admin-rest-host", help="(ignored: as --nats-url)")
    p.add_argument("--node", action="append", required=True, metavar="NAME=URL",
                   help="a node's Service name and its local URL; the admin first")
    args = p.parse_args(argv)
    clients: dict[str, Client] = {}
    for spec in args.node:
        name, _, url = spec.partition("=")
        cid, key = customers_of(args.kubectl, args.namespace, name)
        clients[name] = Client(url, cid, key)
    admin = next(iter(clients))
    result = learn_and_compare(clients, admin, dict.fromkeys(clients, args.federation))
    print(json.dumps(result, indent=2))
    ok = result["worst_relative_error"] < TOLERANCE
    print("federated == pooled scikit-learn" if ok else "MISMATCH", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
