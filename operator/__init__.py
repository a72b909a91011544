"""fedstats.operator: the kopf operator for Federation, Peer and PsrContract resources.

Layers, each importing only those below it:

    main            `fedstats operator`: kopf.run, liveness, Prometheus metrics
    handlers        kopf registrations: status, Events, retries
    federations, peers, contracts    one reconcile per kind (idempotent)
    nodes, nats_admin, kube          the edges: a node's objects, JetStream, the API server
    builders, conditions, names, errors, outcome, metrics    pure pieces

Importing this package registers nothing with kopf; `handlers` does.
"""

from __future__ import annotations

__all__ = ["CRD_FILES"]

CRD_FILES = ("federations.yaml", "peers.yaml", "psrcontracts.yaml")
