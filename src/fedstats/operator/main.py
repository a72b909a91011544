"""`fedstats operator`: runs the kopf operator in a cluster or against a kubeconfig.

Standalone (one replica, no peering objects) unless `--peering NAME` is given, in which
case replicas elect one active instance through kopf's KopfPeering resources. Liveness is
kopf's own endpoint; Prometheus metrics are served on a separate port.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedstats operator", description=__doc__)
    p.add_argument("-n", "--namespace", action="append", default=[],
                   help="watch this namespace (repeatable); default: all namespaces")
    p.add_argument("--peering", metavar="NAME",
                   help="coordinate replicas through this KopfPeering; default: standalone")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz",
                   help="kopf's liveness endpoint URL ('' to disable)")
    p.add_argument("--metrics-port", type=int, default=9090,
                   help="port of the Prometheus /metrics endpoint (0 to disable)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    kopf.configure(verbose=args.verbose)  # sets up logging too
    from . import handlers  # noqa: F401  (registers the handlers with kopf)

    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness or None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
