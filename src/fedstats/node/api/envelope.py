"""The response envelope `{statusCode, statusString, values}` every answer wears, errors too.

Responses are serialized with orjson straight to bytes (no pydantic, no jsonable_encoder):
the learn/predict hot path answers small envelopes thousands of times a second.

For routers written elsewhere (the federation's `fedml` router):

    ok(values, status=200, status_string=None, headers=None) -> Response
    accepted(job_path, job_id) -> Response           202 + Location + sym-job-id
    envelope_bytes(status, message, values) -> bytes  (WebSocket answers)
    decrypt_body(customer, body) -> Any               AES-GCM JSON body (legacy CBC when the
                                                      customer is configured for it)
    encrypted(customer, obj) -> str                   the same scheme, for `...Encrypted` values
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from ..security import aead
from ..security.customers import Customer
from ..security.errors import CryptoError

# HTTP status -> the spec's statusCode strings
STATUS_CODES: dict[int, str] = {
    200: "OK",
    201: "CREATED",
    202: "ACCEPTED",
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
JSON = "application/json"
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def status_code(status: int) -> str:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    try:
        return HTTPStatus(status).name
    except ValueError:
        return str(status)


def envelope_bytes(status: int, status_string: str | None = None,
                   values: Mapping[str, Any] | None = None) -> bytes:
    """The envelope as JSON bytes."""
    code = status_code(status)
    return orjson.dumps(
        {"statusCode": code, "statusString": status_string or code, "values": values or {}},
        option=_OPTS,
    )


def ok(values: Mapping[str, Any] | None = None, status: int = 200,
       status_string: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    """A success envelope."""
    return Response(envelope_bytes(status, status_string, values), status_code=status,
                    media_type=JSON, headers=dict(headers) if headers else None)


JOB_ID_HEADER = "sym-job-id"


def accepted(job_path: str, job_id: str, status_string: str = "Job Created") -> Response:
    """202 with `Location: <job path>`, as the spec answers async work, and the job id in
    `sym-job-id` (the header the reference's client `sym-rest-rc` reads it from)."""
    return ok({"jobinfo": {"id": job_id, "jobId": int(job_id), "status": "running"}},
              status=202, status_string=status_string,
              headers={"Location": job_path, JOB_ID_HEADER: job_id})


def error(status: int, message: str, kind: str,
          extra: Mapping[str, Any] | None = None) -> Response:
    """An error envelope: the message in `statusString` and in `values.error`, plus an
    error's own entities (`extra`: a bad signature's `stringToSign`)."""
    body = envelope_bytes(status, message, {"error": message, "errorKind": kind,
                                            **(extra or {})})
    return Response(body, status_code=status, media_type=JSON)


def decrypt_body(customer: Customer, body: bytes) -> Any:
    """The JSON object an encrypted request body holds (CryptoError -> 400)."""
    text = body.decode("ascii", "replace").strip()
    if customer.legacy_cbc:
        try:
            return orjson.loads(aead.decrypt_legacy(customer.secret_key, text))
        except (CryptoError, orjson.JSONDecodeError):
            pass  # a legacy customer may also use the default scheme
    plain = aead.decrypt(customer.secret_key, text)
    try:
        return orjson.loads(plain)
    except orjson.JSONDecodeError as e:
        raise CryptoError("the decrypted body is not JSON") from e


def encrypted(customer: Customer, obj: Any) -> str:
    """`obj` as JSON, encrypted for this customer (legacy CBC only if configured so)."""
    data = orjson.dumps(obj, option=_OPTS)
    if customer.legacy_cbc:
        return aead.encrypt_legacy(customer.secret_key, data)
    return aead.encrypt(customer.secret_key, data)
