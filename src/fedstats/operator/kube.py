"""A small async Kubernetes API client: server-side apply, create-if-absent, get, list, delete.

kopf watches and patches the custom resources itself; the objects they imply are written
here. Server-side apply (`PATCH ... application/apply-patch+yaml`, forced, one field
manager) makes every write idempotent and undoes drift in the fields the operator owns,
without read-modify-write races. Credentials come from kopf's own login functions, so the
operator and its writes always act as the same identity.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import kopf
import orjson

from . import errors
from .names import MANAGER
from .types import Body, Obj

# The REST path segment (group/version, plural) of each kind the operator writes or reads.
_KINDS = {
    "Secret": ("api/v1", "secrets"),
    "Service": ("api/v1", "services"),
    "PersistentVolumeClaim": ("api/v1", "persistentvolumeclaims"),
    "Deployment": ("apis/apps/v1", "deployments"),
    "Ingress": ("apis/networking.k8s.io/v1", "ingresses"),
    "Federation": ("apis/fedstats.io/v1alpha1", "federations"),
    "Peer": ("apis/fedstats.io/v1alpha1", "peers"),
    "PsrContract": ("apis/fedstats.io/v1alpha1", "psrcontracts"),
}


def path_of(kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = _KINDS[kind]
    base = f"/{prefix}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


class Kube:
    """One connection to one API server; share it across handlers (it is safe to)."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 30.0) -> None:
        headers = {"Accept": "application/json"}
        if info.token:
            headers["Authorization"] = f"Bearer {info.token}"
        auth = httpx.BasicAuth(info.username, info.password or "") if info.username else None
        self._http = httpx.AsyncClient(base_url=info.server.rstrip("/"), headers=headers,
                                       auth=auth, verify=_ssl_context(info), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, content: bytes | None = None,
                    params: Mapping[str, str] | None = None,
                    content_type: str = "application/json") -> Obj:
        headers = {"Content-Type": content_type} if content is not None else None
        try:
            resp = await self._http.request(method, path, content=content, params=params,
                                            headers=headers)
        except httpx.HTTPError as e:
            raise errors.KubeUnavailable(f"{method} {path}: {e!r}") from e
        if resp.status_code >= 400:
            raise errors.from_http_status(resp.status_code, _message(method, path, resp))
        result: Obj = resp.json() if resp.content else {}
        return result

    async def apply(self, obj: Body) -> Obj:
        """Server-side apply of `obj` as the operator's field manager, taking fields over."""
        meta = obj["metadata"]
        path = path_of(obj["kind"], meta["namespace"], meta["name"])
        return await self._call("PATCH", path, content=orjson.dumps(obj),
                                params={"fieldManager": MANAGER, "force": "true"},
                                content_type="application/apply-patch+yaml")

    async def create_if_absent(self, obj: Body) -> tuple[Obj, bool]:
        """The existing object, or `obj` created now; True when it was created by this call.

        For objects holding generated secrets: applying them again would replace a key
        that nodes already use.
        """
        meta = obj["metadata"]
        existing = await self.get(obj["kind"], meta["namespace"], meta["name"])
        if existing is not None:
            return existing, False
        try:
            created = await self._call("POST", path_of(obj["kind"], meta["namespace"]),
                                       content=orjson.dumps(obj))
        except errors.KubeConflict:  # made by a concurrent handler run in the meantime
            again = await self.get(obj["kind"], meta["namespace"], meta["name"])
            if again is None:
                raise
            return again, False
        return created, True

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._call("GET", path_of(kind, namespace, name))
        except errors.KubeNotFound:
            return None

    async def list(self, kind: str, namespace: str) -> list[Obj]:
        items: list[Obj] = (await self._call("GET", path_of(kind, namespace))).get("items", [])
        for item in items:  # a list's items carry neither; the builders want both
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", "fedstats.io/v1alpha1" if "fedstats" in
                            _KINDS[kind][0] else _KINDS[kind][0].removeprefix("api/"))
        return items

    async def watch_one(self, kind: str, namespace: str, name: str, resource_version: str,
                        timeout: int = 300) -> AsyncIterator[tuple[str, Obj]]:
        """The watch events (type, object) of one object from `resource_version` on, until
        the server ends the watch (after `timeout` s, or 410 Gone: read again then)."""
        params = {"watch": "1", "fieldSelector": f"metadata.name={name}",
                  "resourceVersion": resource_version, "timeoutSeconds": str(timeout),
                  "allowWatchBookmarks": "false"}
        try:
            async with self._http.stream("GET", path_of(kind, namespace), params=params,
                                         timeout=timeout + 30) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise errors.from_http_status(resp.status_code,
                                                  _message("WATCH", kind, resp))
                async for line in resp.aiter_lines():
                    if line.strip():
                        event = orjson.loads(line)
                        yield str(event.get("type")), event.get("object") or {}
        except httpx.HTTPError as e:
            raise errors.KubeUnavailable(f"WATCH {kind} {namespace}/{name}: {e!r}") from e

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Deletes (dependents in the background); False when it was already gone."""
        body = orjson.dumps({"kind": "DeleteOptions", "apiVersion": "v1",
                             "propagationPolicy": "Background"})
        try:
            await self._call("DELETE", path_of(kind, namespace, name), content=body)
        except errors.KubeNotFound:
            return False
        return True


def _message(method: str, path: str, resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("message", resp.text)
    except ValueError:
        detail = resp.text
    return f"{method} {path}: {resp.status_code} {detail}"


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    ctx = ssl.create_default_context(cafile=_path(info.ca_path) if info.ca_path else None)
    if info.ca_data:
        ctx.load_verify_locations(cadata=_pem(info.ca_data).decode())
    cert = _path(info.certificate_path) or _temp(info.certificate_data)
    key = _path(info.private_key_path) or _temp(info.private_key_data)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def _path(p: Any) -> str | None:
    return str(p) if p else None


def _pem(data: str | bytes) -> bytes:
    """kubeconfig `*-data` fields are Base64 of PEM; accept PEM as is too."""
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def _temp(data: str | bytes | None) -> str | None:
    # ssl.load_cert_chain only reads files; the file lives as long as the process.
    if not data:
        return None
    f = tempfile.NamedTemporaryFile(prefix="fedstats-kube-", suffix=".pem", delete=False)  # noqa: SIM115
    f.write(_pem(data))
    f.close()
    return f.name
