"""A synchronous Python client for a node's REST API, every request signed.

Thin on purpose: `request` signs exactly the bytes and the query string it sends (it
builds the query itself, so no library can re-encode it after signing) and turns the
`{statusCode, statusString, values}` envelope into a dict or an `ApiError`; the helpers
only name paths and bodies as the reference documents do. Federation bodies are
encrypted with the customer's key (AES-GCM, or the legacy CBC scheme for a customer
configured for it) and `*Encrypted` answers decrypted.

Paths are signed as given (`/symetry/...`); `base_url` is the scheme and host (plus any
prefix a proxy strips before the node sees the path).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from .client_ws import WsClient
from .security import aead
from .security.invites import open_invite
from .security.signing import signed_headers

__all__ = ["ApiError", "Client", "WsClient"]


class ApiError(Exception):
    """A non-2xx answer: the HTTP status, the envelope's status string, message and values."""

    def __init__(self, http_status: int, status_string: str, message: str,
                 values: dict[str, Any] | None = None) -> None:
        super().__init__(f"{http_status} {status_string}: {message}")
        self.http_status = http_status
        self.status_string = status_string
        self.message = message
        self.values = values or {}


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


class Client:
    """Signed REST calls for one customer of one node."""

    def __init__(self, base_url: str, customer_id: str, secret_key: str, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, *,
                 legacy_cbc: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.customer_id = customer_id
        self._secret = secret_key
        self.legacy_cbc = legacy_cbc
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
        """Send a signed request; the envelope for 2xx, `ApiError` otherwise."""
        return self._send(method, path, params=params, json=json, content=content,
                          headers=headers)[1]

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              json: Any = None, content: bytes | str | None = None,
              headers: Mapping[str, str] | None = None) -> tuple[httpx.Response, dict[str, Any]]:
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
            resp = self._http.request(method.upper(), url, content=body or None, headers=extra)
        except httpx.HTTPError as e:
            raise ConnectionError(f"{method.upper()} {path}: {e}") from e
        envelope = _envelope(resp)
        if not resp.is_success:
            message = envelope.get("statusString") or envelope.get("detail") or ""
            raise ApiError(resp.status_code, str(envelope.get("statusCode", "")),
                           str(message), envelope.get("values") or {})
        return resp, envelope

    def _rest(self, *parts: str) -> str:
        return "/symetry/rest/" + "/".join(quote(p, safe="") for p in (self.customer_id, *parts))

    # -- projects -----------------------------------------------------------------------

    def create_project(self, pid: str, type: str = "cpu") -> dict[str, Any]:
        return self.request("POST", self._rest("projects"), params={"pid": pid, "type": type})

    def delete_project(self, pid: str) -> dict[str, Any]:
        return self.request("DELETE", self._rest("projects", pid))

    def project_info(self, pid: str) -> dict[str, Any]:
        return self.request("GET", self._rest("projects", pid, "info"))

    def list_projects(self) -> dict[str, Any]:
        return self.request("GET", self._rest("projects", "list"))

    def learn(self, pid: str, frame: Mapping[str, Any], async_: bool = False) -> dict[str, Any]:
        params = {"async": True} if async_ else None
        return self.request("POST", self._rest("projects", pid, "learn"), params=params,
                            json=frame)

    def forget(self, pid: str, frame: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._rest("projects", pid, "forget"), json=frame)

    def learn_csv(self, pid: str, csv_bytes: bytes,
                  types: Sequence[str] | str | None = None) -> dict[str, Any]:
        """Bulk learn: CSV text with a header row; `types` as `C,C,B` when not all `C`."""
        params = {"types": types} if types else None
        return self.request("POST", self._rest("projects", pid, "learn"), params=params,
                            content=csv_bytes, headers={"Content-Type": "text/csv"})

    def explore(self, pid: str, metric: str, context: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._rest("projects", pid, "explore"),
                            params={"metric": metric}, json=context)

    def explore_pca(self, pid: str, context: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._rest("projects", pid, "explorepca"), json=context)

    # -- models and jobs ----------------------------------------------------------------

    def build(self, pid: str, modelid: str, algo: str, context: Mapping[str, Any],
              wait: bool = True, timeout: float = 60) -> dict[str, Any]:
        """Start a build; with `wait`, poll its job until done and return the job's envelope."""
        resp, envelope = self._send("POST", self._rest("projects", pid, "build"),
                                    params={"modelid": modelid, "algo": algo}, json=context)
        location = resp.headers.get("Location")
        if not wait or resp.status_code != 202 or not location:
            return envelope
        return self.wait_job(httpx.URL(location).path, timeout)

    def wait_job(self, job_path: str, timeout: float = 60) -> dict[str, Any]:
        """Poll a job path (200 done, 202 running) until done; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            resp, envelope = self._send("GET", job_path)
            if resp.status_code != 202:
                return envelope
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"job {job_path} still running after {timeout} s")
            time.sleep(delay)  # polling is the protocol here: the server pushes nothing
            delay = min(delay * 2, 1.0)

    def job(self, job_id: str | int) -> dict[str, Any]:
        return self.request("GET", self._rest("jobs", str(job_id)))

    def jobs(self) -> dict[str, Any]:
        return self.request("GET", self._rest("jobs"))

    def model(self, pid: str, modelid: str) -> dict[str, Any]:
        return self.request("GET", self._rest("projects", pid, "models", modelid))

    def models(self, pid: str) -> dict[str, Any]:
        return self.request("GET", self._rest("projects", pid, "models"))

    def delete_model(self, pid: str, modelid: str) -> dict[str, Any]:
        return self.request("DELETE", self._rest("projects", pid, "models", modelid))

    def predict(self, pid: str, modelid: str, frame: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._rest("projects", pid, "predict", modelid), json=frame)

    # -- federation (spec 000 / 001) -------------------------------------------------------

    def fed(self, method: str, name: str, *, pid: str | None = None,
            params: Mapping[str, Any] | None = None, body: Any = None,
            encrypt_with: str | None = None, decrypt_answer: bool = True) -> dict[str, Any]:
        """A `fedml` call. With `encrypt_with` (a Base64 key) the JSON body is sent encrypted
        and, unless `decrypt_answer` is False, each `<name>Encrypted` string of the answer is
        decrypted into `values[<name>]` (the encrypted text stays beside it)."""
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
                   persist: bool | None = None) -> dict[str, Any]:
        """Create a federation administered by this project (`fed_name` required)."""
        return self.fed("POST", "create", params={"pid": pid, "persist": persist},
                        body=dict(options), encrypt_with=self._secret)

    def fed_info(self, pid: str) -> dict[str, Any]:
        """The federation info, decrypted into `values["fedInfo"]`."""
        return self.fed("GET", "info", pid=pid, encrypt_with=self._secret)

    def fed_invitation(self, pid: str, password: str, fed_rest_host: str | None = None,
                       endpoint: str = "getInvitation", **extra: Any) -> str:
        """A one-time invitation for a peer, sealed with `password` (older name: getEncrypted)."""
        body = {"passwd": password, "fed_rest_host": fed_rest_host or self.base_url, **extra}
        envelope = self.fed("POST", endpoint, pid=pid, body=body, encrypt_with=self._secret,
                            decrypt_answer=False)
        values = envelope.get("values") or {}
        invite = values.get("fedInfoEncrypted") or values.get("encryptedGroupInfo")
        if not isinstance(invite, str):
            raise ApiError(200, str(envelope.get("statusCode", "")),
                           "answer holds no fedInfoEncrypted invitation", values)
        return invite

    def fed_join(self, pid: str, invitation: str, password: str,
                 **options: Any) -> dict[str, Any]:
        """Open the invitation locally, then create `pid` joined to that federation."""
        body = {**open_invite(password, invitation), **options}
        return self.fed("POST", "createJoin", params={"pid": pid}, body=body,
                        encrypt_with=self._secret)

    def start_pulse(self, pid: str) -> dict[str, Any]:
        return self.fed("GET", "startPulse", pid=pid)

    def stop_pulse(self, pid: str) -> dict[str, Any]:
        return self.fed("GET", "stopPulse", pid=pid)

    def remove_peer(self, pid: str, peer: str) -> dict[str, Any]:
        """Admin only: the peer's statistics leave every merge; a new invitation readmits it."""
        return self.fed("GET", "removePeer", pid=pid, params={"peer": peer})

    def new_schedule(self, pid: str, schedule: str) -> dict[str, Any]:
        return self.fed("GET", "newSchedule", pid=pid, params={"newSchedule": schedule})

    def full_sync(self, pid: str) -> dict[str, Any]:
        return self.fed("GET", "fullSyncRequest", pid=pid)

    def set_explore_peers(self, pid: str, allow: bool) -> dict[str, Any]:
        return self.fed("GET", "setExplorePeers", pid=pid, params={"allowExplore": allow})

    def validate_contract(self, pid: str, rules: Sequence[str]) -> dict[str, Any]:
        """Check PSR rules (a StringList body `{"values": [...]}`) without applying them."""
        return self.fed("POST", "psrContractValidate", pid=pid, body={"values": list(rules)})

    def add_contract(self, pid: str, rules: Sequence[str]) -> dict[str, Any]:
        """Replace the federation's PSR contract (admin only; validate first)."""
        return self.fed("POST", "addPsrContract", pid=pid, body={"values": list(rules)})

    def error_log(self, pid: str) -> dict[str, Any]:
        return self.fed("GET", "getErrorLog", pid=pid)

    def clear_error_log(self, pid: str) -> dict[str, Any]:
        return self.fed("DELETE", "clearErrorLog", pid=pid)

    def sync_log(self, pid: str) -> dict[str, Any]:
        return self.fed("GET", "getSyncLog", pid=pid)

    def sync_stats(self, pid: str) -> dict[str, Any]:
        return self.fed("GET", "syncStats", pid=pid)


def _envelope(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(resp.content) if resp.content else {}
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return {"statusCode": resp.reason_phrase.upper().replace(" ", "_"),
                "statusString": resp.text[:500], "values": {}}
    return data
