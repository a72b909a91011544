"""FATE-Flow's JSON envelope and return codes (fateflow-v1.md §1.2), as pure functions.

FATE answers logical errors with HTTP 200 and `{retcode, retmsg}`; its clients read the
retcode, never the status. `FlowError` carries such an answer out of a handler; the
router turns it into the envelope here, so the node's one error mapping never sees it.
Keys are sorted and `None` values dropped, as Flask's `jsonify` does in FATE-Flow 1.11.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

SUCCESS = 0
EXCEPTION_ERROR = 100
ARGUMENT_ERROR = 101
DATA_ERROR = 102
OPERATING_ERROR = 103
FEDERATED_ERROR = 104
PERMISSION_ERROR = 108
AUTHENTICATION_ERROR = 109


class FlowError(Exception):
    """A logical failure answered as `{retcode, retmsg[, data]}` with HTTP 200."""

    def __init__(self, retcode: int, retmsg: str, data: Any = None) -> None:
        super().__init__(retmsg)
        self.retcode = retcode
        self.retmsg = retmsg
        self.data = data


def body(retcode: int = SUCCESS, retmsg: str = "success", data: Any = None,
         job_id: str | None = None, meta: Any = None) -> dict[str, Any]:
    """The envelope as a dict: None values dropped, keys sorted."""
    raw = {"retcode": retcode, "retmsg": retmsg, "data": data, "jobId": job_id, "meta": meta}
    return {k: raw[k] for k in sorted(raw) if raw[k] is not None}


def respond(retcode: int = SUCCESS, retmsg: str = "success", data: Any = None,
            job_id: str | None = None, meta: Any = None, status: int = 200) -> Response:
    """The envelope as FATE sends it: compact JSON, sorted keys."""
    payload = orjson.dumps(body(retcode, retmsg, data, job_id, meta),
                           option=orjson.OPT_SORT_KEYS)
    return Response(payload, status_code=status, media_type="application/json")


def of_error(e: FlowError) -> Response:
    return respond(e.retcode, e.retmsg, e.data)
