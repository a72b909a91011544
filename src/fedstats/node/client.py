"""A synchronous Python client for a node's REST API, every request signed.

Thin on purpose: `request` signs exactly the bytes and the query string it sends (it
builds the query itself, so no library can re-encode it after signing) and turns the
`{statusCode, statusString, values}` envelope into a dict or an `ApiError`. The helpers
name paths and bodies as the reference documents do, and answer the one entity of
`values` the call is for (`project_info` the `smlInfo`, `learn` the row count, `fed_info`
the decrypted `fedInfo`, `models` the `stringList`, ...), or None where the answer holds
nothing but its status. An answer lacking its entity is an `ApiError`, not a silent empty
value. `request` (and `fed`, for `fedml` paths) stays the raw escape hatch that answers
the whole envelope. Federation bodies are encrypted with the customer's key (AES-GCM, or
the legacy CBC scheme for a customer configured for it) and `*Encrypted` answers decrypted.

Paths are signed as given (`/symetry/...`); `base_url` is the scheme and host (plus any
prefix a proxy strips before the node sees the path).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from .client_ws import WsClient
from .security import aead
from .security.invites import open_invite
from .security.signing import signed_headers

__all__ = ["MAX_JOB_WAIT_S", "ApiError", "Client", "WsClient"]

# How long a node holds `GET /jobs/{id}?wait=S` at most (the node's `api.jobs.MAX_WAIT_S`;
# not imported, so that the client does not load the server's web framework).
MAX_JOB_WAIT_S = 30.0

T = TypeVar("T")


class ApiError(Exception):
    """A non-2xx answer: the HTTP status, the envelope's status string, message and values.

    Also raised for a 2xx answer that lacks the entity its call is for (a node of another
    kind, or a proxy answering in its place): `http_status` is then the 2xx status."""

    def __init__(self, http_status: int, status_string: str, message: str,
                 values: dict[str, Any] | None = None) -> None:
        super().__init__(f"{http_status} {status_string}: {message}")
        self.http_status = http_status
        self.status_string = status_string
        self.message = message
        self.values = values or {}


def ksvs_columns(ksvsmap: Mapping[str, Any]) -> dict[str, list[str]]:
    """A KSVSMap `{"values": [{"res": "1.5", ...}, ...]}` as columns `{"res": ["1.5", ...]}`,
    rows in order (a key some row lacks is "" there); the wire stays the reference's."""
    rows = ksvsmap.get("values") if isinstance(ksvsmap, Mapping) else None
    if not isinstance(rows, list):
        raise ValueError("not a KSVSMap: expected {'values': [row maps]}")
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return {k: [str(row.get(k, "")) for row in rows] for k in keys}


def string_list(found: Any) -> list[str]:
    """A StringList entity: the reference's `{"values": [...]}` (or a bare list)."""
    items = found.get("values") if isinstance(found, dict) else found
    if not isinstance(items, list):
        raise ApiError(200, "OK", "the answer holds no stringList", {})
    return [str(v) for v in items]


def encode_query(params: Mapping[str, Any] | None) -> str:
    """`k=v&...` in the given order; booleans as `true`/`false`, None values dropped."""
    if not params:
        return ""
    # Commas stay readable (`types=C,C,B`); everything else reserved is percent-encoded.
    return "&".join(f"{quote(str(k), safe='')}={quote(_param(v), safe=',')}"
                    for k, v in params.items() if v is not None)


def _param(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def pick(values: Any, key: str, kind: type[T], http_status: int = 200,
         status_string: str = "OK") -> T:
    """`values[key]` of an answer, checked to be a `kind`; `ApiError` when it is not there."""
    found = values.get(key) if isinstance(values, dict) else None
    if not isinstance(found, kind):
        raise ApiError(http_status, status_string, f"the answer holds no {kind.__name__} {key}",
                       values if isinstance(values, dict) else {})
    return found


def entity(envelope: Mapping[str, Any], key: str, kind: type[T], http_status: int = 200) -> T:
    """`values[key]` of an envelope, checked to be a `kind` (see `pick`)."""
    return pick(envelope.get("values"), key, kind, http_status,
                str(envelope.get("statusCode", "")))


class Client:
    """Signed REST calls for one customer of one node."""

    def __init__(self, base_url: str, customer_id: str, secret_key: str, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, *,
                 legacy_cbc: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.customer_id = customer_id
        self._secret = secret_key
        self.legacy_cbc = legacy_cbc
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, customer_id={self.customer_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one place requests are made ---------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, content: bytes | str | None = None,
                headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Send a signed request; the whole envelope for 2xx, `ApiError` otherwise."""
        return self._send(method, path, params=params, json=json, content=content,
                          headers=headers)[1]

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              json: Any = None, content: bytes | str | None = None,
              headers: Mapping[str, str] | None = None,
              timeout: float | None = None) -> tuple[httpx.Response, dict[str, Any]]:
        if not path.startswith("/"):
            path = "/" + path
        query = encode_query(params)
        body = b""
        extra = {}
        if json is not None:
            body = orjson.dumps(json)
            extra["Content-Type"] = "application/json"
        elif content is not None:
            body = content.encode("utf-8") if isinstance(content, str) else content
            extra["Content-Type"] = "text/plain; charset=utf-8"
        extra.update(headers or {})
        extra.update(signed_headers(self.customer_id, self._secret, method, path,
                                    query or None, body))
        url = self.base_url + path + (f"?{query}" if query else "")
        try:
            resp = self._http.request(method.upper(), url, content=body or None, headers=extra,
                                      timeout=self.timeout if timeout is None else timeout)
        except httpx.HTTPError as e:
            raise ConnectionError(f"{method.upper()} {path}: {e}") from e
        envelope = _envelope(resp)
        if not resp.is_success:
            message = envelope.get("statusString") or envelope.get("detail") or ""
            raise ApiError(resp.status_code, str(envelope.get("statusCode", "")),
                           str(message), envelope.get("values") or {})
        return resp, envelope

    def _get(self, key: str, kind: type[T], method: str, path: str, **kwargs: Any) -> T:
        """The `values[key]` entity of a signed call's answer."""
        resp, envelope = self._send(method, path, **kwargs)
        return entity(envelope, key, kind, resp.status_code)

    def _rest(self, *parts: str) -> str:
        return "/symetry/rest/" + "/".join(quote(p, safe="") for p in (self.customer_id, *parts))

    # -- projects -----------------------------------------------------------------------

    def create_project(self, pid: str, type: str = "cpu") -> None:
        """Create project `pid` (`ApiError` 409 when it exists)."""
        self.request("POST", self._rest("projects"), params={"pid": pid, "type": type})

    def delete_project(self, pid: str) -> None:
        """Delete a project with its statistics and models."""
        self.request("DELETE", self._rest("projects", pid))

    def project_info(self, pid: str) -> dict[str, Any]:
        """The project's `smlInfo`: rows (peers' included), localRows, attributes, columns,
        version, models."""
        return self._get("smlInfo", dict, "GET", self._rest("projects", pid, "info"))

    def list_projects(self) -> list[str]:
        """This customer's project ids."""
        return string_list(self._get("stringList", object, "GET", self._rest("projects", "list")))

    def learn(self, pid: str, frame: Mapping[str, Any]) -> int:
        """Learn a JSON DataFrame; the number of rows learned, once they are durable."""
        return self._get("rows", int, "POST", self._rest("projects", pid, "learn"), json=frame)

    def start_learn(self, pid: str, frame: Mapping[str, Any]) -> str:
        """Learn as a job (`?async=true`); the job's path, for `wait_job` (its `rows`)."""
        resp, envelope = self._send("POST", self._rest("projects", pid, "learn"),
                                    params={"async": True}, json=frame)
        return _job_location(resp, envelope)

    def forget(self, pid: str, frame: Mapping[str, Any]) -> int:
        """Forget rows learned before; the number of rows forgotten."""
        return self._get("rows", int, "POST", self._rest("projects", pid, "forget"), json=frame)

    def learn_csv(self, pid: str, csv_bytes: bytes,
                  types: Sequence[str] | str | None = None) -> int:
        """Bulk learn: CSV text with a header row; `types` as `C,C,B` when not all `C`.
        The number of rows learned."""
        params = {"types": types} if types else None
        return self._get("rows", int, "POST", self._rest("projects", pid, "learn"),
                         params=params, content=csv_bytes, headers={"Content-Type": "text/csv"})

    def explore(self, pid: str, metric: str, context: Mapping[str, Any]) -> dict[str, Any]:
        """The `KSVDMap`: per attribute statistics (`uni`), or covar, linCorr, cond* (`bi`)."""
        return self._get("KSVDMap", dict, "POST", self._rest("projects", pid, "explore"),
                         params={"metric": metric}, json=context)

    def explore_pca(self, pid: str, context: Mapping[str, Any]) -> dict[str, Any]:
        """The answer's values: `pcaValues`, `pcaVectors` and the whole decomposition `pca`."""
        resp, envelope = self._send("POST", self._rest("projects", pid, "explorepca"),
                                    json=context)
        entity(envelope, "pca", dict, resp.status_code)
        values: dict[str, Any] = envelope["values"]
        return values

    # -- models and jobs ----------------------------------------------------------------

    def start_build(self, pid: str, modelid: str, algo: str,
                    context: Mapping[str, Any]) -> str:
        """Start building a model; the job's path (its `Location`), for `wait_job`."""
        resp, envelope = self._send("POST", self._rest("projects", pid, "build"),
                                    params={"modelid": modelid, "algo": algo}, json=context)
        return _job_location(resp, envelope)

    def build(self, pid: str, modelid: str, algo: str, context: Mapping[str, Any],
              timeout: float = 60) -> dict[str, Any]:
        """Build a model and wait for it; its `modelInfo`. A failed build is the job's
        `ApiError` (400 for a mistake in the request), a slow one `TimeoutError`."""
        done = self.wait_job(self.start_build(pid, modelid, algo, context), timeout)
        return pick(done, "modelInfo", dict)

    def wait_job(self, job: str, timeout: float = 60) -> dict[str, Any]:
        """Wait for a job (its path or `Location`) to end; its values (`jobinfo` and the
        job's own, e.g. `modelInfo` or `rows`). A failed job is an `ApiError` with the
        status its error maps to; `TimeoutError` when it still runs after `timeout` s.

        Each request asks the node to hold it until the job ends (`?wait=`, up to
        `MAX_JOB_WAIT_S`), so a long job costs a request per 30 s, not a polling loop."""
        path = httpx.URL(job).path
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            hold = round(min(max(deadline - time.monotonic(), 0.0), MAX_JOB_WAIT_S), 3)
            asked = time.monotonic()
            resp, envelope = self._send("GET", path, params={"wait": hold},
                                        timeout=hold + self.timeout)
            if resp.status_code != 202:
                values: dict[str, Any] = envelope.get("values") or {}
                return values
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"job {path} still running after {timeout} s")
            if now - asked < hold / 2:
                # Answered "running" well before the time asked: a server that does not
                # hold requests. Back off rather than spin against it.
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, 1.0)

    def job(self, job_id: str | int) -> dict[str, Any]:
        """A job's values now: `jobinfo` (id, kind, status, ...), plus its result once done."""
        values: dict[str, Any] = self.request("GET", self._rest("jobs", str(job_id))).get(
            "values") or {}
        return values

    def jobs(self) -> list[dict[str, Any]]:
        """This customer's jobs' `jobinfo`, newest first."""
        return self._get("jobs", list, "GET", self._rest("jobs"))

    def model(self, pid: str, modelid: str) -> dict[str, Any]:
        """The model's `modelInfo`."""
        return self._get("modelInfo", dict, "GET", self._rest("projects", pid, "models", modelid))

    def models(self, pid: str) -> list[str]:
        """The project's model ids."""
        return string_list(self._get("stringList", object, "GET",
                                     self._rest("projects", pid, "models")))

    def delete_model(self, pid: str, modelid: str) -> None:
        self.request("DELETE", self._rest("projects", pid, "models", modelid))

    def predict(self, pid: str, modelid: str, frame: Mapping[str, Any]) -> dict[str, Any]:
        """The whole envelope; the predictions are its `values["KSVSMap"]["values"]`, one
        map of strings per row (`res` always); `ksvs_columns` turns them into columns."""
        return self.request("POST", self._rest("projects", pid, "predict", modelid), json=frame)

    # -- federation (spec 000 / 001) -------------------------------------------------------

    def fed(self, method: str, name: str, *, pid: str | None = None,
            params: Mapping[str, Any] | None = None, body: Any = None,
            encrypt_with: str | None = None, decrypt_answer: bool = True) -> dict[str, Any]:
        """A `fedml` call; the whole envelope. With `encrypt_with` (a Base64 key) the JSON
        body is sent encrypted and, unless `decrypt_answer` is False, each `<name>Encrypted`
        string of the answer is decrypted into `values[<name>]` (the encrypted text stays
        beside it)."""
        path = self._rest("fedml", pid, name) if pid else self._rest("fedml", name)
        if encrypt_with is None:
            return self.request(method, path, params=params,
                                json=body if body is not None else None)
        token = self._encrypt(encrypt_with, orjson.dumps(body if body is not None else {}))
        envelope = self.request(method, path, params=params, content=token)
        values = envelope.get("values")
        if decrypt_answer and isinstance(values, dict):
            for key, value in list(values.items()):
                if key.endswith("Encrypted") and isinstance(value, str):
                    values[key[: -len("Encrypted")]] = orjson.loads(
                        self._decrypt(encrypt_with, value))
        return envelope

    def _encrypt(self, key: str, data: bytes) -> str:
        return aead.encrypt_legacy(key, data) if self.legacy_cbc else aead.encrypt(key, data)

    def _decrypt(self, key: str, token: str) -> bytes:
        return aead.decrypt_legacy(key, token) if self.legacy_cbc else aead.decrypt(key, token)

    def fed_create(self, pid: str, options: Mapping[str, Any],
                   persist: bool | None = None) -> None:
        """Create a federation administered by this project (`fed_name` required)."""
        self.fed("POST", "create", params={"pid": pid, "persist": persist},
                 body=dict(options), encrypt_with=self._secret)

    def fed_info(self, pid: str) -> dict[str, Any]:
        """The project's `fedInfo`, decrypted: fed_name, fed_type, fed_is_admin, fed_peer_id,
        sync_sched, is_pulsing, peersInfo, contract, ... (and the federation's key)."""
        return entity(self.fed("GET", "info", pid=pid, encrypt_with=self._secret),
                      "fedInfo", dict)

    def fed_invitation(self, pid: str, password: str, fed_rest_host: str | None = None,
                       endpoint: str = "getInvitation", **extra: Any) -> str:
        """A one-time invitation for a peer, sealed with `password` (older name: getEncrypted)."""
        body = {"passwd": password, "fed_rest_host": fed_rest_host or self.base_url, **extra}
        envelope = self.fed("POST", endpoint, pid=pid, body=body, encrypt_with=self._secret,
                            decrypt_answer=False)
        values = envelope.get("values") or {}
        key = "fedInfoEncrypted" if "fedInfoEncrypted" in values else "encryptedGroupInfo"
        return entity(envelope, key, str)

    def fed_join(self, pid: str, invitation: str, password: str, **options: Any) -> None:
        """Open the invitation locally, then create `pid` joined to that federation."""
        body = {**open_invite(password, invitation), **options}
        self.fed("POST", "createJoin", params={"pid": pid}, body=body,
                 encrypt_with=self._secret)

    def start_pulse(self, pid: str) -> None:
        self.fed("GET", "startPulse", pid=pid)

    def stop_pulse(self, pid: str) -> None:
        self.fed("GET", "stopPulse", pid=pid)

    def remove_peer(self, pid: str, peer: str) -> None:
        """Admin only: the peer's statistics leave every merge; a new invitation readmits it."""
        self.fed("GET", "removePeer", pid=pid, params={"peer": peer})

    def new_schedule(self, pid: str, schedule: str) -> None:
        """Admin only: the federation's pulse schedule (`m30`, `h1`, ...)."""
        self.fed("GET", "newSchedule", pid=pid, params={"newSchedule": schedule})

    def full_sync(self, pid: str) -> None:
        """Ask every peer to republish its statistics."""
        self.fed("GET", "fullSyncRequest", pid=pid)

    def set_explore_peers(self, pid: str, allow: bool) -> None:
        self.fed("GET", "setExplorePeers", pid=pid, params={"allowExplore": allow})

    def validate_contract(self, pid: str, rules: Sequence[str]) -> None:
        """Check PSR rules (a StringList body `{"values": [...]}`) without applying them;
        rules that do not parse are an `ApiError` 400 whose message begins
        `Invalid PSR contract` and gives the line and column."""
        self.fed("POST", "psrContractValidate", pid=pid, body={"values": list(rules)})

    def add_contract(self, pid: str, rules: Sequence[str]) -> None:
        """Replace the federation's PSR contract (admin only; validate first)."""
        self.fed("POST", "addPsrContract", pid=pid, body={"values": list(rules)})

    def error_log(self, pid: str) -> list[str]:
        """The federation's background errors, oldest first."""
        return entity(self.fed("GET", "getErrorLog", pid=pid), "stringList", list)

    def clear_error_log(self, pid: str) -> None:
        self.fed("DELETE", "clearErrorLog", pid=pid)

    def sync_log(self, pid: str) -> list[str]:
        """The synchronization log (snapshots sent and received), oldest first."""
        return entity(self.fed("GET", "getSyncLog", pid=pid), "stringList", list)

    def sync_stats(self, pid: str) -> dict[str, Any]:
        """The `fedSyncStats`: sndCount, rcvCount and the other counters, errorLog, syncLog."""
        return entity(self.fed("GET", "syncStats", pid=pid), "fedSyncStats", dict)


def _job_location(resp: httpx.Response, envelope: dict[str, Any]) -> str:
    location = resp.headers.get("Location")
    if resp.status_code != 202 or not location:
        raise ApiError(resp.status_code, str(envelope.get("statusCode", "")),
                       "the answer is not a 202 with the job's Location",
                       envelope.get("values") or {})
    return httpx.URL(location).path


def _envelope(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(resp.content) if resp.content else {}
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return {"statusCode": resp.reason_phrase.upper().replace(" ", "_"),
                "statusString": resp.text[:500], "values": {}}
    return data
