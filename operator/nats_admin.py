"""The federation's JetStream stream: its desired configuration (pure) and its upkeep.

The stream lives outside Kubernetes, so nothing garbage-collects it: the Federation's
finalizer calls `delete_stream`. `ensure_stream` creates the stream or updates it to the
asked limits and is safe to call on every reconcile. Statistics travel as whole snapshots,
so a memory stream with "discard old" loses nothing a republish cannot bring back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nats
from nats.errors import Error as NatsError
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from . import names
from .errors import InvalidSpec, NatsUnavailable

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"([1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?")


def parse_bytes(quantity: str | int) -> int:
    """`64Mi` -> 67108864, as the CRD's streamMaxMemory pattern allows."""
    if isinstance(quantity, int):
        return quantity
    m = _QUANTITY.fullmatch(quantity.strip())
    if m is None:
        raise InvalidSpec(f"spec.streamMaxMemory: {quantity!r} is not a quantity like 64Mi")
    return int(m.group(1)) * _UNITS[m.group(2) or ""]


@dataclass(frozen=True)
class NatsAuth:
    user: str | None = None
    password: str | None = None
    token: str | None = None


def desired_stream(fed: Mapping[str, Any]) -> StreamConfig:
    spec = fed.get("spec", {})
    return StreamConfig(
        name=names.stream_name(fed),
        description=f"fedstats federation {names.federation_name(fed)}",
        subjects=names.stream_subjects(fed),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.MEMORY,
        discard=DiscardPolicy.OLD,
        max_bytes=parse_bytes(spec.get("streamMaxMemory", "64Mi")),
    )


def _differs(have: StreamConfig, want: StreamConfig) -> bool:
    return (sorted(have.subjects or []) != sorted(want.subjects or [])
            or have.max_bytes != want.max_bytes or have.discard != want.discard)


async def _connect(url: str, auth: NatsAuth, timeout: float) -> nats.NATS:
    try:
        return await nats.connect(
            url, user=auth.user, password=auth.password, token=auth.token,
            connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=0,
        )
    except (NatsError, OSError) as e:
        raise NatsUnavailable(f"cannot connect to NATS at {url}: {e!r}") from e


async def ensure_stream(url: str, auth: NatsAuth, want: StreamConfig,
                        timeout: float = 5.0) -> StreamInfo:
    """The stream `want.name` with `want`'s limits, created or updated as needed."""
    nc = await _connect(url, auth, timeout)
    try:
        jsm = nc.jsm(timeout=timeout)
        try:
            info = await jsm.stream_info(want.name)
        except NotFoundError:
            return await jsm.add_stream(want)
        if _differs(info.config, want):
            return await jsm.update_stream(want)
        return info
    except NatsError as e:
        raise NatsUnavailable(f"JetStream refused stream {want.name}: {e!r}") from e
    finally:
        await nc.close()


async def delete_stream(url: str, auth: NatsAuth, name: str, timeout: float = 5.0) -> bool:
    """Deletes the stream; False when it did not exist."""
    nc = await _connect(url, auth, timeout)
    try:
        jsm = nc.jsm(timeout=timeout)
        try:
            return bool(await jsm.delete_stream(name))
        except NotFoundError:
            return False
    except NatsError as e:
        raise NatsUnavailable(f"JetStream refused deleting stream {name}: {e!r}") from e
    finally:
        await nc.close()
