"""nats-server configuration for federations: JetStream, 8 MB payloads, per-user permissions.

The topology is enforced here, by the server, not by the agents' good manners:

    decentralized  every peer may read every peer's statistics (all merge)
    centralized    a peer may publish its own statistics subject and read only the control
                   stream (what the admin sends); only the admin reads statistics
    hybrid         as centralized, except that the peers named as mergers read statistics

GLM rounds: every member reads the admin's round requests and publishes its contribution
on its own reply subject, which only the admin may read, whatever the topology.
FATE-Flow jobs: a member requests the admin on its own `flow.req.<peer>`; the admin calls one member on
that member's own `flow.ask.<peer>`, which no other member may read; both answer on the
asker's inbox (`allow_responses`: only a message received may be answered, once).

JetStream reads go through API subjects that name the stream, so "may read statistics"
is "may create and pull consumers on the statistics stream". Replies come back on a
per-user inbox prefix, so a peer cannot eavesdrop on the admin's deliveries either.
The output is JSON, which nats-server's configuration format accepts as is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .subjects import Names, inbox_prefix, token

TOPOLOGIES = ("decentralized", "centralized", "hybrid")
MAX_PAYLOAD = 8 * 1024 * 1024


@dataclass(frozen=True)
class User:
    """A NATS user: a name and a password or an NKEY public key, acting as one peer."""

    name: str
    peer: str
    password: str | None = None
    nkey: str | None = None  # public key "U..."; the peer holds the seed
    admin: bool = False
    merges: bool = False


def _stream_reader(stream: str, durable: str) -> list[str]:
    # Exactly the API subjects of the user's own durable consumer on `stream`: a wildcard
    # in the operation or stream token (`CONSUMER.*.*.<stream>.>`) also matched creating a
    # consumer on ANOTHER stream whose name was set to this stream's, which let a
    # centralized peer read every peer's statistics.
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.API.CONSUMER.DELETE.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def permissions(names: Names, user: User) -> dict[str, Any]:
    """The publish/subscribe permissions of `user` in the federation `names`."""
    inbox = inbox_prefix(user.name) + ".>"
    if user.admin:
        return {
            "publish": {"allow": [f"{names.prefix}.>", "$JS.API.>", "$JS.ACK.>"]},
            "subscribe": {"allow": [names.join, names.glm_replies, names.flow_reqs, inbox]},
            "allow_responses": True,  # answer join requests on the joiner's inbox
        }
    publish = [
        f"{names.stats(user.peer)}.>",
        names.sync(user.peer),
        names.join,
        names.glm_reply(user.peer),
        names.flow_req(user.peer),
        "$JS.API.INFO",
        f"$JS.API.STREAM.CREATE.{names.ctl_stream}",
        *_stream_reader(names.ctl_stream, names.durable(user.peer, "ctl")),
    ]
    subscribe = [inbox, names.glm_ask, names.flow_ask(user.peer)]
    if user.merges:
        # only a node that reads statistics may (re)create their stream: a peer that could
        # create it could also configure it to republish everything to its own inbox
        publish += [f"$JS.API.STREAM.CREATE.{names.stats_stream}",
                    *_stream_reader(names.stats_stream, names.durable(user.peer, "stats"))]
        subscribe.append(names.stats_all)
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe},
            "allow_responses": True}  # answer the admin's flow calls on its inbox


def federation_users(
    fed_name: str,
    topology: str,
    admin: User,
    peers: Iterable[User],
    mergers: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The `authorization.users` entries of one federation in `topology`."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}: one of {', '.join(TOPOLOGIES)}")
    names = Names.of(fed_name)
    merging = set(mergers)
    out = [_entry(User(**{**admin.__dict__, "admin": True, "merges": True}), names)]
    for p in peers:
        merges = topology == "decentralized" or (topology == "hybrid" and p.peer in merging)
        out.append(_entry(User(**{**p.__dict__, "admin": False, "merges": merges}), names))
    return out


def _entry(user: User, names: Names) -> dict[str, Any]:
    entry: dict[str, Any] = {"permissions": permissions(names, user)}
    if user.nkey:
        entry["nkey"] = user.nkey
    else:
        if user.password is None:
            raise ValueError(f"user {user.name!r} needs a password or an NKEY")
        entry["user"], entry["password"] = user.name, user.password
    return entry


def server_config(
    port: int,
    store_dir: str,
    users: Iterable[Mapping[str, Any]] = (),
    *,
    host: str = "127.0.0.1",
    http_port: int | None = None,
    max_memory: int = 1 << 30,
) -> dict[str, Any]:
    """A whole server configuration (no users: no authentication, for local tests)."""
    conf: dict[str, Any] = {
        "host": host,
        "port": port,
        "max_payload": MAX_PAYLOAD,
        "jetstream": {"store_dir": store_dir, "max_memory_store": max_memory},
    }
    if http_port is not None:
        conf["http_port"] = http_port
    users = list(users)
    if users:
        conf["authorization"] = {"users": users}
    return conf


def render(conf: Mapping[str, Any]) -> str:
    return json.dumps(conf, indent=2)


def connect_options(user: User) -> dict[str, Any]:
    """nats-py connect() keyword arguments for `user` (its inbox prefix included)."""
    opts: dict[str, Any] = {"inbox_prefix": inbox_prefix(user.name)}
    if user.password is not None:
        opts.update(user=user.name, password=user.password)
    return opts


__all__ = [
    "MAX_PAYLOAD",
    "TOPOLOGIES",
    "User",
    "connect_options",
    "federation_users",
    "permissions",
    "render",
    "server_config",
    "token",
]
