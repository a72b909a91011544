"""The node's federations: one `Agent` per federated project, and the operations behind fedml.

The REST facade (`api/fedml.py`) only reads requests and writes envelopes; everything it
asks — create, invite, join, pulse, schedule, contracts, logs — is a method here, so the
same operations run in tests without HTTP. Invitations are redeemed at the admin (over
NATS, by the admin's agent), because that is where the one-time token was issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any

from ..engine.accumulator import Accumulator
from ..limits import Limits
from ..security.errors import CryptoError
from ..security.invites import SqliteTokenStore, TokenBook, seal_invite
from ..security.keys import decode_key, new_secret_key
from .agent import Agent
from .contract import parse_contract
from .errors import (
    FederationError,
    InviteError,
    NotAdmin,
    NotConnected,
    NotFederated,
    Unreachable,
)
from .natsconf import TOPOLOGIES
from .schedule import parse_schedule
from .state import FedConfig, FedState
from .subjects import DEFAULT_STREAM_MAX_MEMORY, token

log = logging.getLogger("fedstats.federation")

INVITE_TTL_S = 24 * 3600.0
_AUTH_KEYS = ("nats_sec_user", "nats_sec_passwd", "nats_sec_token", "nats_sec_nkey_seed")


def _hosts(value: Any) -> list[str]:
    if value is None:
        return ["nats://127.0.0.1:4222"]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(h, str) for h in value):
        items = value
    else:
        raise FederationError(
            "nats_hosts is a comma-separated list of NATS URLs (text), or a list of them"
        )
    hosts = [str(h).strip() for h in items if str(h).strip()]
    if not hosts:
        raise FederationError("nats_hosts names no server")
    return [h if "://" in h else f"nats://{h}" for h in hosts]


# the most each numeric option may be: larger is a mistake (and 1e300 bytes of stream
# memory does not even fit the 64-bit integers NATS and the state file store)
LIMITS = {
    "nats_req_timeout": 3600.0,
    "nats_stream_max_memory": float(1 << 40),
    "fed_req_token_ttl": 365 * 86400.0,
}


def _number(opts: dict[str, Any], key: str, default: float) -> float:
    raw = opts.get(key, default)
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise FederationError(f"{key} must be a number, not {str(raw)[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise FederationError(f"{key} must be a positive number")
    if value > LIMITS[key]:
        raise FederationError(f"{key} must be at most {LIMITS[key]:.0f}")
    return value


def _contract(value: Any) -> list[str]:
    """A contract option: a list of rule lines (or text, one rule a line)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise FederationError("contract is a list of rules (text), one per line")
    return list(value)


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _credentials(opts: dict[str, Any]) -> dict[str, Any]:
    """The NATS credentials `opts` give (FedConfig keyword arguments)."""
    return {k: str(opts[k]) for k in _AUTH_KEYS if opts.get(k)}


_CREDENTIAL_KINDS = {
    "user and password": ("nats_sec_user", "nats_sec_passwd"),
    "token": ("nats_sec_token",),
    "NKEY seed": ("nats_sec_nkey_seed",),
}


def _invite_credentials(opts: dict[str, Any]) -> dict[str, str]:
    """The peer's NATS credentials an invitation request gives: exactly one kind, or none."""
    given = {k: opts.get(k) for k in _AUTH_KEYS if opts.get(k) not in (None, "")}
    for key, value in given.items():
        if not isinstance(value, str):
            raise FederationError(f"{key} must be a string")
    kinds = [kind for kind, keys in _CREDENTIAL_KINDS.items() if any(k in given for k in keys)]
    if len(kinds) > 1:
        raise FederationError(
            f"give the peer one kind of NATS credentials, not {' and '.join(kinds)}"
        )
    if kinds == ["user and password"] and len(given) != 2:
        raise FederationError("nats_sec_user and nats_sec_passwd go together")
    return {k: str(v) for k, v in given.items()}


def _token_digest(join_token: str) -> str:
    """What the admin keeps of an invitation's token to recognise it (never the token)."""
    return hashlib.sha256(join_token.encode()).hexdigest()


def _federation_key(value: Any) -> str:
    """The key an operator generated (validated: Base64 of 32 bytes), else a new one."""
    if value is None or value == "":
        return new_secret_key()
    try:
        decode_key(value)
    except CryptoError as e:
        raise FederationError(f"fed_secret_key is not usable: {e}") from None
    return str(value).strip()


class Hub:
    """Every federated project of one node."""

    def __init__(self, data_dir: str | Path, service: Any, default_engine: str = "cpu",
                 limits: Limits | None = None) -> None:
        path = Path(data_dir) / "federation.sqlite"
        self.state = FedState(path)
        self.tokens = TokenBook(SqliteTokenStore(str(path)))
        self.service = service
        self.default_engine = default_engine  # fed_local_type when a body names none
        self.limits = limits or Limits()
        self.agents: dict[tuple[str, str], Agent] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self._agents_changed = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        service.register_peer_source(self.peer_accumulators)

    # ------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        """Bring back every federated project's agent (in the background: NATS may be down)."""
        self._loop = asyncio.get_running_loop()
        for cid, pid in self.state.projects():
            if self.service.project_exists(cid, pid):
                task = asyncio.create_task(self._revive(cid, pid), name=f"fed-revive {cid}/{pid}")
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)

    async def _revive(self, cid: str, pid: str) -> None:
        delay = 0.5
        while True:
            agent = self._agent_for(cid, pid)
            try:
                await agent.start()
                await self._add_agent(cid, pid, agent)
                return
            except Exception as e:
                self.state.log(cid, pid, "error", f"cannot reconnect the federation: {e}")
                await agent.stop()
                await asyncio.sleep(delay)  # a retry delay: NATS is not there yet
                delay = min(delay * 2, 10.0)

    async def shutdown(self) -> None:
        for task in list(self._starting):
            task.cancel()
        for agent in list(self.agents.values()):
            await agent.stop()
        self.agents.clear()

    async def _add_agent(self, cid: str, pid: str, agent: Agent) -> None:
        self.agents[(cid, pid)] = agent
        async with self._agents_changed:
            self._agents_changed.notify_all()

    async def wait_agent(self, cid: str, pid: str) -> Agent:
        """The project's agent once it is connected (a revived one may wait for NATS)."""
        async with self._agents_changed:
            await self._agents_changed.wait_for(lambda: (cid, pid) in self.agents)
        return self.agents[(cid, pid)]

    async def forget(self, cid: str, pid: str) -> None:
        """Stop the project's agent and drop what this node knew of its federation.

        Called when the project is deleted: its durable consumers go from the server
        (best effort), its peers' snapshots, counters and logs from `federation.sqlite`.
        """
        agent = self.agents.pop((cid, pid), None)
        for task in list(self._starting):
            if task.get_name() == f"fed-revive {cid}/{pid}":
                task.cancel()
        if agent is not None:
            await agent.leave()
        self.state.delete(cid, pid)

    def forget_from_any_thread(self, cid: str, pid: str, timeout: float = 30.0) -> None:
        """`forget`, from a worker thread (waits for it) or from the loop (schedules it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.state.delete(cid, pid)  # no agent can be running
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(self.forget(cid, pid))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
        else:
            asyncio.run_coroutine_threadsafe(self.forget(cid, pid), loop).result(timeout)

    def _agent_for(self, cid: str, pid: str, config: FedConfig | None = None) -> Agent:
        config = config or self.state.config(cid, pid)
        assert config is not None
        return Agent(
            cid,
            pid,
            config,
            self.state,
            lambda: self.service.local_view(cid, pid),  # read only: no copy per use
            join_handler=self._join_handler(cid, pid) if config.is_admin else None,
        )

    def peer_accumulators(self, cid: str, pid: str) -> list[Accumulator]:
        agent = self.agents.get((cid, pid))
        return agent.peer_accumulators() if agent else []

    def agent(self, cid: str, pid: str) -> Agent:
        agent = self.agents.get((cid, pid))
        if agent is None:
            self.service.require_project(cid, pid)
            if self.state.config(cid, pid) is None:
                raise NotFederated(f"project [{pid}] is not part of a federation")
            raise NotConnected(f"project [{pid}]'s federation is not connected yet")
        return agent

    def admin_agent(self, cid: str, pid: str, what: str) -> Agent:
        agent = self.agent(cid, pid)
        if not agent.config.is_admin:
            raise NotAdmin(f"only the federation administrator can {what}; [{pid}] is a peer")
        return agent

    # ------------------------------------------------------------ create / invite / join
    def _check_fed_name(self, name: str) -> None:
        """A federation's name becomes subjects and stream names: bounded (Limits)."""
        if len(name) > self.limits.max_fed_name_chars:
            raise FederationError(
                f"fed_name of {len(name):,} characters is over the node's limit "
                f"max_fed_name_chars={self.limits.max_fed_name_chars}")

    async def create(self, cid: str, pid: str, opts: dict[str, Any]) -> FedConfig:
        name = opts.get("fed_name")
        if not isinstance(name, str) or not name.strip():
            raise FederationError("fed_name is required")
        self._check_fed_name(name.strip())
        topology = str(opts.get("fed_type", "decentralized")).lower()
        if topology not in TOPOLOGIES:
            raise FederationError(f"fed_type must be one of {', '.join(TOPOLOGIES)}")
        config = FedConfig(
            fed_name=name.strip(),
            fed_secret_key=_federation_key(opts.get("fed_secret_key")),
            role="admin",
            peer_id=token(str(opts.get("fed_peer_id", "admin"))),
            topology=topology,
            sync_sched=parse_schedule(str(opts.get("sync_sched", "m30"))).text,
            contract=_contract(opts.get("contract")),
            fed_local_type=str(opts.get("fed_local_type") or self.default_engine),
            nats_hosts=_hosts(opts.get("nats_hosts")),
            nats_req_timeout=_number(opts, "nats_req_timeout", 30.0),
            nats_stream_max_memory=int(
                _number(opts, "nats_stream_max_memory", DEFAULT_STREAM_MAX_MEMORY)
            ),
            **_credentials(opts),
        )
        config.admin_peer = config.peer_id
        parse_contract(config.contract, self.limits.max_contract_rules,
                       self.limits.max_contract_bytes)
        await self._open(cid, pid, config)
        return config

    async def _open(self, cid: str, pid: str, config: FedConfig, join: Any = None) -> Any:
        """Create the project and connect its agent; undo both if anything fails."""
        try:
            config.to_json()  # what cannot be stored is refused before anything is made
        except (TypeError, ValueError) as e:
            raise FederationError(f"the federation's options cannot be stored: {e}") from None
        if self.service.project_exists(cid, pid):
            self.service.create_project(cid, pid, config.fed_local_type)  # its 409 Conflict
        agent = self._agent_for(cid, pid, config)
        answer = None
        try:
            await agent.connect()
            if join is not None:
                answer = await join(agent)
            self.service.create_project(cid, pid, config.fed_local_type)
        except BaseException:
            await agent.stop()
            raise
        try:
            self.state.save_config(cid, pid, config)
            await agent.start()
        except BaseException:
            await agent.stop()
            self.state.delete(cid, pid)
            with contextlib.suppress(Exception):
                self.service.delete_project(cid, pid)
            raise
        await self._add_agent(cid, pid, agent)
        return answer

    def invitation(self, cid: str, pid: str, opts: dict[str, Any]) -> str:
        """A password-sealed invitation holding a one-time, expiring join token."""
        agent = self.admin_agent(cid, pid, "issue invitations")
        password = opts.get("passwd")
        if not isinstance(password, str) or not password:
            raise FederationError("passwd is required to seal the invitation")
        config = agent.config
        peer = token(str(opts.get("fed_peer_id") or f"peer-{secrets.token_hex(4)}"))
        if peer == config.peer_id or peer in config.peers:
            raise FederationError(f"peer id {peer!r} is already taken in this federation")
        merges = config.topology == "decentralized" or (
            config.topology == "hybrid" and _flag(opts.get("fed_merges", False))
        )
        ttl = _number(opts, "fed_req_token_ttl", INVITE_TTL_S)
        join_token = self.tokens.issue(ttl, f"join:{config.fed_name}", peer=peer, merges=merges)
        # the token store cannot revoke: the newest invitation per peer id is remembered
        # here instead, and the join handler refuses the older ones
        config.invites[peer] = _token_digest(join_token)
        self.state.save_config(cid, pid, config)
        payload: dict[str, Any] = {
            "fed_name": config.fed_name,
            "fed_secret_key": config.fed_secret_key,
            "fed_req_token": join_token,
            "fed_peer_id": peer,
            "fed_admin_peer": config.peer_id,
            "fed_type": config.topology,
            "fed_merges": merges,
            "sync_sched": config.sync_sched,
            "nats_hosts": ",".join(config.nats_hosts),
            "nats_req_timeout": config.nats_req_timeout,
            "nats_stream_max_memory": config.nats_stream_max_memory,
            "fed_rest_host": opts.get("fed_rest_host") or config.fed_rest_host or "",
        }
        # the peer's own NATS credentials, all or nothing, from the request: never the
        # admin's (a peer holding them could act as the admin on NATS)
        payload.update(_invite_credentials(opts))
        return seal_invite(password, payload)

    def _join_handler(self, cid: str, pid: str) -> Any:
        def handle(request: dict[str, Any]) -> dict[str, Any]:
            config = self.agents[(cid, pid)].config if (cid, pid) in self.agents else None
            if config is None:
                return {"ok": False, "retry": True, "error": "the federation admin is starting"}
            join_token = str(request.get("token", ""))
            try:
                meta = self.tokens.redeem(join_token, f"join:{config.fed_name}")
            except CryptoError as e:
                return {"ok": False, "error": str(e)}
            if meta.get("peer") != request.get("peer"):
                return {"ok": False, "error": "the invitation was issued for another peer id"}
            peer = str(meta["peer"])
            joined = self._already_joined(config, peer)
            if joined:
                return {"ok": False, "error": joined}
            newest = config.invites.get(peer)
            if newest is not None and newest != _token_digest(join_token):
                return {
                    "ok": False,
                    "error": f"this invitation for peer id {peer!r} was revoked: a newer one "
                    "was issued for it",
                }
            config.invites.pop(peer, None)
            config.peers[peer] = {
                "joined_at": time.time(),
                "merges": bool(meta.get("merges")),
            }
            self.state.save_config(cid, pid, config)
            self.state.log(cid, pid, "sync", f"peer {meta['peer']} joined")
            return {
                "ok": True,
                "sync_sched": config.sync_sched,
                "schedule_seq": config.schedule_seq,
                "contract": config.contract,
                "contract_seq": config.contract_seq,
            }

        return handle

    @staticmethod
    def _already_joined(config: FedConfig, peer: Any) -> str | None:
        if peer == config.peer_id or peer in config.peers:
            return (
                f"peer id {peer!r} has already joined this federation: one invitation per "
                "peer id is ever redeemed"
            )
        return None

    async def join(self, cid: str, pid: str, opts: dict[str, Any]) -> FedConfig:
        """Create `pid` as a peer of the federation an invitation describes."""
        missing = [k for k in ("fed_name", "fed_secret_key", "fed_req_token") if not opts.get(k)]
        if missing:
            raise FederationError(f"the join body lacks {', '.join(missing)} (from the invitation)")
        self._check_fed_name(str(opts["fed_name"]))
        topology = str(opts.get("fed_type", "decentralized"))
        config = FedConfig(
            fed_name=str(opts["fed_name"]),
            fed_secret_key=str(opts["fed_secret_key"]),
            role="peer",
            peer_id=token(str(opts.get("fed_peer_id") or f"peer-{secrets.token_hex(4)}")),
            admin_peer=str(opts.get("fed_admin_peer", "admin")),
            topology=topology if topology in TOPOLOGIES else "decentralized",
            merges=_flag(opts.get("fed_merges", topology == "decentralized")),
            sync_sched=parse_schedule(str(opts.get("sync_sched", "m30"))).text,
            fed_local_type=str(opts.get("fed_local_type") or self.default_engine),
            nats_hosts=_hosts(opts.get("nats_hosts")),
            nats_req_timeout=_number(opts, "nats_req_timeout", 30.0),
            nats_stream_max_memory=int(
                _number(opts, "nats_stream_max_memory", DEFAULT_STREAM_MAX_MEMORY)
            ),
            fed_rest_host=opts.get("fed_rest_host") or None,
            **_credentials(opts),
        )

        async def ask_admin(agent: Agent) -> dict[str, Any]:
            answer = await agent.request_join(str(opts["fed_req_token"]), {})
            if not answer.get("ok"):
                error = Unreachable if answer.get("retry") else InviteError
                raise error(f"the federation admin refused the join: {answer.get('error')}")
            return answer

        await self._open_joined(cid, pid, config, ask_admin)
        return config

    async def _open_joined(self, cid: str, pid: str, config: FedConfig, ask: Any) -> Any:
        async def join(agent: Agent) -> Any:
            answer = await ask(agent)
            config.sync_sched = answer.get("sync_sched", config.sync_sched)
            config.schedule_seq = int(answer.get("schedule_seq", 0))
            config.contract = list(answer.get("contract", []))
            config.contract_seq = int(answer.get("contract_seq", 0))
            agent.set_contract_locally(config.contract)
            return answer

        return await self._open(cid, pid, config, join)

    # ------------------------------------------------------------ the rest of fedml
    def info(self, cid: str, pid: str) -> dict[str, Any]:
        agent = self.agent(cid, pid)
        c = agent.config
        return {
            "fed_name": c.fed_name,
            "fed_secret_key": c.fed_secret_key,
            "sync_sched": c.sync_sched,
            "fed_type": c.topology,
            "fed_is_admin": c.is_admin,
            "fed_peer_id": c.peer_id,
            "is_pulsing": agent.pulsing,
            "peersInfo": {p: {"version": v, "rows": a.n} for p, (v, a) in agent.peers.items()}
            | {p: info for p, info in c.peers.items() if p not in agent.peers},
            "contract": c.contract,
            "allow_peers_explore": c.allow_peers_explore,
            "nats_hosts": ",".join(c.nats_hosts),
        }

    def set_explore_peers(self, cid: str, pid: str, allow: bool) -> None:
        agent = self.agent(cid, pid)
        agent.config.allow_peers_explore = allow
        self.state.save_config(cid, pid, agent.config)
