"""Prometheus metrics of the reconcilers, served by `fedstats operator --metrics-port`.

Counted around each reconcile so a scrape shows how often each kind is reconciled, how it
ended, and how long it took; `kopf`'s liveness endpoint is separate (it says only "alive").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "fedstats_operator_reconciles_total", "Reconciles by resource kind and outcome",
    ["kind", "outcome"],
)
RECONCILE_SECONDS = Histogram(
    "fedstats_operator_reconcile_seconds", "Time spent in one reconcile", ["kind"],
)
STREAM_OPERATIONS = Counter(
    "fedstats_operator_stream_operations_total", "JetStream stream upkeep calls",
    ["operation", "outcome"],
)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception as e:
        RECONCILES.labels(kind, type(e).__name__).inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)
