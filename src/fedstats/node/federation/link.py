"""The NATS side of one federated project: connecting, its streams, its durable consumers.

Kept apart from the agent's protocol so the choices that touch the server read in one
place: how a node authenticates (user/password, token or NKEY seed), that a first
connection is bounded while later reconnects are endless, which streams a node may
create (a peer that may not read statistics may not inspect their stream either), and
how consumers are named (`<fed>_<peer>_<stats|ctl>`, durable, newest per subject).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig

from .errors import Unreachable
from .state import FedConfig
from .subjects import CONTROL_STREAM_MAX_BYTES, Names, inbox_prefix

RECONNECT_WAIT_S = 0.5


def connect_options(config: FedConfig, name: str) -> dict[str, Any]:
    """nats-py `connect()` arguments for `config` (callbacks aside)."""
    opts: dict[str, Any] = {
        "servers": config.nats_hosts,
        "name": name,
        "inbox_prefix": inbox_prefix(config.nats_sec_user or config.peer_id),
        "connect_timeout": min(config.nats_req_timeout, 10.0),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT_S,
    }
    if config.nats_sec_user:
        opts.update(user=config.nats_sec_user, password=config.nats_sec_passwd or "")
    elif config.nats_sec_token:
        opts["token"] = config.nats_sec_token
    elif config.nats_sec_nkey_seed:
        opts["nkeys_seed_str"] = config.nats_sec_nkey_seed  # signs the server's nonce
    return opts


async def open_connection(
    config: FedConfig, name: str, **callbacks: Callable[..., Awaitable[None]]
) -> Any:
    """A connected nats-py client; `Unreachable` (with the server's reason) if none answers.

    With endless reconnects nats-py would retry a first connection forever, reporting each
    failure to error_cb: it is bounded here, so the caller hears why and retries itself.
    """
    opts = {**connect_options(config, name), **callbacks}
    nc = nats.NATS()
    try:
        await asyncio.wait_for(nc.connect(**opts), opts["connect_timeout"] + 1.0)
    except Exception as e:  # nats-py raises a mix of OSError and its own errors
        with contextlib.suppress(Exception):
            await nc.close()
        reason = str(nc.last_error or e) or type(e).__name__
        raise Unreachable(f"cannot reach NATS at {', '.join(config.nats_hosts)}: {reason}") from e
    return nc


def stream_configs(names: Names, config: FedConfig, reads_stats: bool) -> list[StreamConfig]:
    """The streams this node makes sure of: control always, statistics if it reads them."""
    limit = int(config.nats_stream_max_memory)
    streams = [(names.ctl_stream, names.ctl_all, min(limit, CONTROL_STREAM_MAX_BYTES))]
    if reads_stats:
        streams.append((names.stats_stream, names.stats_all, limit))
    return [
        StreamConfig(
            name=name,
            subjects=[subject],
            storage=StorageType.MEMORY,
            max_bytes=max_bytes,
            max_msgs_per_subject=1,  # only the newest snapshot (chunk) per peer matters
            discard=DiscardPolicy.OLD,
        )
        for name, subject, max_bytes in streams
    ]


async def ensure_streams(
    js: Any, configs: list[StreamConfig], on_error: Callable[[str], None]
) -> None:
    """Create the streams that are missing (idempotent; racing creators are harmless)."""
    for conf in configs:
        with contextlib.suppress(Exception):
            await js.stream_info(conf.name)
            continue
        try:
            await js.add_stream(conf)
        except Exception as e:
            # another agent may have created it meanwhile: only a stream still missing
            # is worth an error entry (say, the server lacks memory for its limit)
            try:
                await js.stream_info(conf.name)
            except Exception:
                on_error(f"cannot create stream {conf.name}: {e}")


def durable(names: Names, peer: str, which: str) -> str:
    return names.durable(peer, which)


def consumer_config(config: FedConfig) -> ConsumerConfig:
    return ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_wait=max(30.0, config.nats_req_timeout),
    )


async def delete_consumers(js: Any, names: Names, peer: str) -> None:
    """Remove this node's durable consumers (best effort: missing ones, or no right)."""
    for which, stream in (("ctl", names.ctl_stream), ("stats", names.stats_stream)):
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, durable(names, peer, which))
