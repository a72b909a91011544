"""The federation's JetStream streams: their desired configuration (pure) and its upkeep.

The streams live outside Kubernetes, so nothing garbage-collects them: the Federation's
finalizer calls `delete_streams`. `ensure_streams` creates them or updates them to the
asked limits and is safe to call on every reconcile. Statistics travel as whole snapshots,
so a memory stream with "discard old" loses nothing a republish cannot bring back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError
from nats.js.manager import JetStreamManager

from fedstats.node.federation.subjects import CONTROL_STREAM_MAX_BYTES

from . import names
from .builders import parse_bytes, stream_replicas
from .errors import NatsUnavailable
from .types import Body


@dataclass(frozen=True)
class NatsAuth:
    """How the operator logs in: shared credentials, or a federation admin's own user (its
    inbox prefix then is that user's, as the server's permissions expect), and the CA of
    the server's TLS certificate."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    inbox_prefix: str | None = None
    ca: str | None = None  # PEM

    def tls(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cadata=self.ca) if self.ca else None


def desired_streams(fed: Body) -> list[StreamConfig]:
    """The stats and control streams, configured as the nodes' agents would create them."""
    n = names.nats_names(fed)
    limit = parse_bytes(fed.get("spec", {}).get("streamMaxMemory", "64Mi"))
    replicas = stream_replicas(fed)
    return [
        StreamConfig(
            name=name,
            description=f"fedstats federation {names.federation_name(fed)}",
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.MEMORY,
            discard=DiscardPolicy.OLD,
            max_bytes=max_bytes,
            max_msgs_per_subject=1,  # only the newest snapshot (chunk) per peer matters
            num_replicas=replicas,  # on a JetStream cluster: a server lost loses nothing
        )
        for name, subject, max_bytes in (
            (n.stats_stream, n.stats_all, limit),
            (n.ctl_stream, n.ctl_all, min(limit, CONTROL_STREAM_MAX_BYTES)),
        )
    ]


def _differs(have: StreamConfig, want: StreamConfig) -> bool:
    return (sorted(have.subjects or []) != sorted(want.subjects or [])
            or have.max_bytes != want.max_bytes or have.discard != want.discard
            or have.max_msgs_per_subject != want.max_msgs_per_subject
            or (have.num_replicas or 1) != (want.num_replicas or 1))


async def _quiet(_: Exception) -> None:
    return None


async def _connect(url: str, auth: NatsAuth, timeout: float) -> nats.NATS:
    try:
        # nats-py retries a refused first connect forever with 0 attempts: 1 means "give up
        # after a second try"; its error callback only logs what we raise anyway.
        extra: dict[str, object] = {}
        if auth.inbox_prefix:
            extra["inbox_prefix"] = auth.inbox_prefix
        tls = auth.tls()
        if tls is not None:
            extra["tls"] = tls
        return await asyncio.wait_for(nats.connect(
            url.split(","), user=auth.user, password=auth.password, token=auth.token,
            connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=1,
            reconnect_time_wait=0.2, error_cb=_quiet, **extra,
        ), timeout=3 * timeout)
    except (NatsError, OSError, TimeoutError) as e:
        raise NatsUnavailable(f"cannot connect to NATS at {url}: {e!r}") from e


async def ensure_streams(url: str, auth: NatsAuth, wanted: Sequence[StreamConfig],
                         timeout: float = 5.0) -> list[StreamInfo]:
    """Each stream with its wanted limits, created or updated as needed."""
    nc = await _connect(url, auth, timeout)
    try:
        jsm = nc.jsm(timeout=timeout)
        return [await _ensure(jsm, want) for want in wanted]
    except NatsError as e:
        raise NatsUnavailable(f"JetStream refused a stream: {e!r}") from e
    finally:
        await nc.close()


async def _ensure(jsm: JetStreamManager, want: StreamConfig) -> StreamInfo:
    try:
        info = await jsm.stream_info(str(want.name))
    except NotFoundError:
        return await jsm.add_stream(want)
    if _differs(info.config, want):
        return await jsm.update_stream(want)
    return info


async def delete_streams(url: str, auth: NatsAuth, stream_names: Sequence[str],
                         timeout: float = 5.0) -> list[str]:
    """Deletes the streams; returns those that existed."""
    nc = await _connect(url, auth, timeout)
    deleted = []
    try:
        jsm = nc.jsm(timeout=timeout)
        for name in stream_names:
            try:
                await jsm.delete_stream(name)
            except NotFoundError:
                continue
            deleted.append(name)
    except NatsError as e:
        raise NatsUnavailable(f"JetStream refused deleting a stream: {e!r}") from e
    finally:
        await nc.close()
    return deleted


async def can_log_in(url: str, auth: NatsAuth, timeout: float = 3.0) -> bool:
    """Whether the server accepts these credentials now (after its auth file's reload).

    Spoken in NATS's own protocol (INFO, TLS when it asks, CONNECT, PING): a refused
    nats-py connect leaves its stream writer unclosed behind it.
    """
    target = urlsplit(url.split(",")[0].strip())
    host, port = target.hostname or "127.0.0.1", target.port or 4222
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                info = json.loads((await reader.readline()).partition(b" ")[2] or b"{}")
                if info.get("tls_required"):
                    await writer.start_tls(auth.tls() or ssl.create_default_context(),
                                           server_hostname=host)
                connect = {"verbose": False, "pedantic": False, "protocol": 1,
                           "user": auth.user, "pass": auth.password, "auth_token": auth.token}
                writer.write(b"CONNECT " + json.dumps(
                    {k: v for k, v in connect.items() if v is not None}).encode()
                    + b"\r\nPING\r\n")
                await writer.drain()
                answer = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, ValueError, ssl.SSLError):
        return False
    return answer.startswith(b"PONG")
