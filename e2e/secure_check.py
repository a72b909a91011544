#!/usr/bin/env python3
"""The secured path on a real cluster: NATS's TLS, the operator's users, their revocation.

e2e/run.sh port-forwards NATS's client port and calls this after the federation worked:

- without the CA a TLS client is refused; with it, a member's own user logs in;
- no member's pod reads another member's Secrets (the Deployments as the cluster has them);
- a deleted Peer's user is refused within seconds (the authsync sidecar reloads NATS),
  while the others still log in, with no NATS pod restarted.

Exit 0 when all hold.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def kubectl(args: argparse.Namespace, *what: str) -> Any:
    out = subprocess.run([args.kubectl, "-n", args.namespace, *what, "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def credentials(args: argparse.Namespace, node: str) -> tuple[str, str]:
    data = kubectl(args, "get", "secret", f"{node}-nats")["data"]
    return base64.b64decode(data["user"]).decode(), base64.b64decode(data["password"]).decode()


def login(host: str, port: int, ca: str | None, user: str, password: str,
          namespace: str = "fedstats") -> bool:
    """NATS's answer to a login over TLS (SNI and verification as the nodes do them)."""
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.makefile("rb").readline()  # INFO, in clear: it says TLS is required
        ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
        with ctx.wrap_socket(raw, server_hostname=f"nats.{namespace}.svc") as tls:
            f = tls.makefile("rb")
            connect = {"user": user, "pass": password, "verbose": False, "protocol": 1}
            tls.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            return f.readline().startswith(b"PONG")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--namespace", default="fedstats")
    p.add_argument("--kubectl", default="kubectl")
    p.add_argument("--nats", default="127.0.0.1:14222", help="the port-forwarded client port")
    p.add_argument("--ca-file", required=True)
    p.add_argument("--delete-peer", default="hospital-c")
    p.add_argument("--keep-peer", default="hospital-a")
    args = p.parse_args()
    host, port = args.nats.rsplit(":", 1)
    ca = Path(args.ca_file).read_text()
    keep = credentials(args, f"{args.keep_peer}-peer")
    gone = credentials(args, f"{args.delete_peer}-peer")

    try:
        login(host, int(port), None, *keep)
        print("FAIL: a client without the CA got through", file=sys.stderr)
        return 1
    except ssl.SSLCertVerificationError:
        pass
    assert login(host, int(port), ca, *keep), "a member's own user was refused"

    mounted: dict[str, set[str]] = {}
    for dep in kubectl(args, "get", "deployments", "-l",
                       "app.kubernetes.io/managed-by=fedstats-operator")["items"]:
        pod = dep["spec"]["template"]["spec"]
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for c in pod["containers"]
                for e in c.get("env", []) if "secretKeyRef" in (e.get("valueFrom") or {})}
        mounted[dep["metadata"]["name"]] = refs | {
            v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for name, secrets in mounted.items():
        others = set().union(*(s for n, s in mounted.items() if n != name))
        shared = (secrets & others) - {"nats-tls"}  # the CA: public, mounted as ca.crt only
        assert not shared, f"{name} reads another member's Secrets: {shared}"

    restarts = [c.get("restartCount", 0) for pod in kubectl(
        args, "get", "pods", "-l", "app.kubernetes.io/name=nats")["items"]
        for c in pod["status"].get("containerStatuses", [])]
    subprocess.run([args.kubectl, "-n", args.namespace, "delete", "peer", args.delete_peer,
                    "--wait=false"], check=True)
    deadline = time.monotonic() + 15
    while login(host, int(port), ca, *gone):
        if time.monotonic() > deadline:
            print(f"FAIL: {args.delete_peer}'s user still logs in", file=sys.stderr)
            return 1
        time.sleep(0.2)  # another cluster's state: nothing to subscribe to from here
    assert login(host, int(port), ca, *keep), "the kept peer lost its user"
    after = [c.get("restartCount", 0) for pod in kubectl(
        args, "get", "pods", "-l", "app.kubernetes.io/name=nats")["items"]
        for c in pod["status"].get("containerStatuses", [])]
    assert after == restarts, f"NATS restarted: {restarts} -> {after}"
    print(f"secured path: TLS, per-member Secrets, {args.delete_peer} revoked without restart")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
