"""The operator's exceptions, each carrying its retry policy in its type.

    kopf.TemporaryError                 kopf retries the handler after `delay`
      └─ RetryLater (delay=10)
           ├─ KubeUnavailable           the API server failed or timed out (5xx, 429, network)
           ├─ KubeConflict              a write raced another writer (409)
           ├─ NatsUnavailable           the NATS server cannot be reached or refused a request
           ├─ NodeUnreachable           a node's REST API cannot be reached or failed (5xx)
           ├─ NodeRefused               a node answered a call with a client error (4xx)
           └─ WaitingFor (delay=15)     something the resource needs does not exist yet
    kopf.PermanentError                 kopf gives up until the resource changes
      └─ InvalidSpec                    the spec cannot be satisfied as written
           └─ KubeRejected              the API server refused an object (4xx other than above)

Foreign errors (httpx, nats-py, the node client's) are translated here, in
`from_http_status`, and at the three client edges (`kube.py`, `nats_admin.py`,
`nodeapi.py`), always chained with `from e`.
"""

from __future__ import annotations

import kopf


class RetryLater(kopf.TemporaryError):
    default_delay: float = 10.0

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message, delay=self.default_delay if delay is None else delay)


class KubeUnavailable(RetryLater):
    pass


class KubeConflict(RetryLater):
    default_delay = 2.0


class NatsUnavailable(RetryLater):
    pass


class NodeUnreachable(RetryLater):
    pass


class NodeRefused(RetryLater):
    """The node's own answer: its HTTP status and message (a PSR parse error's line and column).

    Retried, as an admin node that has not finished its bootstrap refuses what it will soon
    accept; where a refusal can only be fixed by an edit (a contract), the caller reports it
    in status instead of raising.
    """

    def __init__(self, message: str, status: int, delay: float | None = None) -> None:
        super().__init__(message, delay=delay)
        self.status = status
        self.node_message = message


class WaitingFor(RetryLater):
    default_delay = 15.0


class InvalidSpec(kopf.PermanentError):
    pass


class KubeRejected(InvalidSpec):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFound(Exception):
    """A read found nothing (404): callers decide whether that is an error."""


def from_http_status(status: int, message: str) -> Exception:
    """The exception for a failed Kubernetes API call with this HTTP status."""
    if status == 404:
        return KubeNotFound(message)
    if status == 409:
        return KubeConflict(message)
    if status == 429 or status >= 500:
        return KubeUnavailable(message)
    return KubeRejected(message, status)
