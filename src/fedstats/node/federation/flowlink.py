"""FATE-Flow jobs across a federation's nodes: party ids, members' requests, the admin's calls.

Every node serves FATE party ids (`FEDSTATS_FLOW_PARTY_ID`, plus any
`FEDSTATS_FLOW_LOCAL_PARTIES`) and announces them when it joins a federation (the join
request's `flow_parties`, which the admin records beside the peer). A job whose parties
are not all served by one node runs at the federation's admin — FATE's arbiter:

    member (where the job was submitted)          admin (runs the job's components)
    flow.req.<peer>: the FATE-Flow request   ->   answered as that member's request: submit,
      as the client sent it (JSON)           <-   query, tracking, log, model (status, body)
                                                  flow.ask.<peer>: one party's operation
                                             <-   (has_table, read, call an op, has, release)
    its answer: counts, moments, the sums    ->   of a GLM round, an accumulator — never rows

Both directions are core NATS requests, sealed with the federation key like every other
message; a member publishes requests only on its own subject and reads calls only on its
own (`natsconf`), so the subject says who asks and no member reads another's calls. The
admin answers a member's request for a job only when one of the member's announced
parties is in the job (the facade checks, `api/flow/remote.py`). A party whose node is
gone makes the call fail at once (no responders) or after `call_timeout`, and the job
fails naming the party and its member.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import nats
import numpy as np

from ..engine.accumulator import Accumulator
from ..engine.codec import decode_snapshot, encode_snapshot
from ..engine.glm import RoundStats, decode_round_stats, encode_round_stats
from ..service.flowjobs.errors import ComponentFailed, JobRefused
from .control import open_json, seal_json
from .errors import FederationError, Unreachable, WireError
from .wire import read_frame

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("fedstats.federation")

Executor = Callable[[dict[str, Any]], Any]  # a member runs one call on its own party
HttpHandler = Callable[[str, list[int], dict[str, Any]], Awaitable[dict[str, Any]]]
NO_RESPONDER_TRIES = 4


# ------------------------------------------------------------------ pure codec
def encode_value(value: Any) -> Any:
    """An op's answer as JSON: round sums and accumulators as their own bytes (base64)."""
    if isinstance(value, RoundStats):
        return {"$round": base64.b64encode(encode_round_stats(value)).decode("ascii")}
    if isinstance(value, Accumulator):
        return {"$acc": base64.b64encode(encode_snapshot(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$round"}:
            return decode_round_stats(base64.b64decode(value["$round"]))
        if set(value) == {"$acc"}:
            return decode_snapshot(base64.b64decode(value["$acc"]))
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def relative_job_path(path: str) -> list[str]:
    """The job-relative part (job/role/party/component/file) of a coordinator's output
    path: a member writes it under its own jobs directory, never where the admin says."""
    return checked_job_path(list(PurePath(path).parts[-5:]))


def checked_job_path(parts: list[str]) -> list[str]:
    """`parts` if they are five plain names (job, role, party, component, file)."""
    if len(parts) != 5 or any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
        raise ComponentFailed(f"not a job output path: {parts}")
    return parts


# ------------------------------------------------------------------ the link
class FlowLink:
    """This node's FATE-Flow side of its federation(s); one per node."""

    def __init__(self, party_ids: Sequence[int], project: tuple[str, str] | None = None,
                 call_timeout: float = 120.0) -> None:
        self.party_ids = [int(p) for p in party_ids]
        self.project = project  # the federated project whose federation carries jobs
        self.call_timeout = call_timeout
        self.executor: Executor | None = None  # set by the facade: a member's calls
        self.http: HttpHandler | None = None  # set by the facade: the admin's answers
        self._agents: dict[tuple[str, str], Agent] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def attach(self, agent: Agent) -> None:
        """Called by an agent that has just connected: subscribe to its side's subject."""
        if self.project is not None and (agent.cid, agent.pid) != self.project:
            return
        self._agents[(agent.cid, agent.pid)] = agent
        self._loop = asyncio.get_running_loop()
        names = agent.names

        async def on_request(msg: Any) -> None:
            await self._on_request(agent, msg)

        async def on_ask(msg: Any) -> None:
            await self._on_ask(agent, msg)

        if agent.config.is_admin:
            await agent.nc.subscribe(names.flow_reqs, cb=on_request)
        else:
            await agent.nc.subscribe(names.flow_ask(agent.config.peer_id), cb=on_ask)

    def agent(self) -> Agent:
        """The agent of the federation that carries jobs; FederationError if none or many."""
        live = {k: a for k, a in self._agents.items() if a.nc is not None}
        if self.project is not None:
            agent = live.get(self.project)
            if agent is None:
                raise Unreachable(f"the federation of project {self.project[1]} (FEDSTATS_FLOW_"
                                  "FEDERATION) is not connected")
            return agent
        if len(live) != 1:
            raise FederationError(
                "cross-party jobs need exactly one federation on this node, or "
                "FEDSTATS_FLOW_FEDERATION=<customer>/<project> naming the one to use; this node "
                f"has {len(live)} connected")
        return next(iter(live.values()))

    def is_member(self) -> bool:
        """Whether jobs this node cannot run alone go to an admin: it is a member of the
        federation that carries jobs (or one is configured or several exist: forwarding
        then says which is missing). A node in no federation runs, or refuses, itself."""
        try:
            return not self.agent().config.is_admin
        except FederationError:
            return self.project is not None or len(self._agents) > 1

    # -------------------------------------------------------------- the admin's side
    def site_for(self, party_id: int) -> Any:
        """A `RemoteSite` for the member that announced `party_id`, or None (admin only)."""
        try:
            agent = self.agent()
        except FederationError:
            return None
        config = agent.config
        if not config.is_admin:
            return None
        for peer in sorted(config.peers):
            if int(party_id) in self.parties_of(agent, peer):
                return RemoteSite(self, agent, peer, int(party_id))
        return None

    def parties_of(self, agent: Agent, peer: str) -> list[int]:
        info = agent.config.peers.get(peer)
        if info is None or peer in agent.config.removed:
            return []
        return [int(p) for p in info.get("flow_parties", [])]

    def call_member(self, agent: Agent, peer: str, body: dict[str, Any]) -> Any:
        """One call on `peer`'s party, answered (blocking: from a job's worker thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise ComponentFailed("the federation is not running on this node")
        fut = asyncio.run_coroutine_threadsafe(
            self._request(agent, agent.names.flow_ask(peer), body, self.call_timeout), loop)
        try:
            reply = fut.result(self.call_timeout + 10)
        except Unreachable as e:
            raise ComponentFailed(f"party {body.get('party')} (member {peer}): {e}") from None
        except WireError as e:
            raise ComponentFailed(f"party {body.get('party')} (member {peer}) answered "
                                  f"something unreadable: {e}") from None
        if not reply.get("ok"):
            raise ComponentFailed(f"party {body.get('party')} (member {peer}): "
                                  f"{reply.get('error', 'refused, no reason given')}")
        return decode_value(reply.get("value"))

    async def _on_request(self, agent: Agent, msg: Any) -> None:
        try:
            peer, body = self._open(agent, msg.data)
            if msg.subject != agent.names.flow_req(peer) or peer not in agent.config.peers:
                raise WireError(f"a flow request from {peer!r} on {msg.subject}")
            if self.http is None:
                raise WireError("this node does not serve FATE-Flow")
            answer = await self.http(peer, self.parties_of(agent, peer), body)
        except WireError as e:
            agent.journal.count("rcvError")
            agent.journal.error(f"flow request on {msg.subject} refused: {e}")
            answer = {"status": 400, "error": str(e)}
        await msg.respond(seal_json(agent.config, agent.names, 0, answer))

    # -------------------------------------------------------------- a member's side
    async def forward(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a FATE-Flow request to the admin; its answer (Unreachable if none)."""
        agent = self.agent()
        if agent.config.is_admin:
            raise FederationError("this node is the federation's admin: it runs the job itself")
        return await self._request(agent, agent.names.flow_req(agent.config.peer_id), body,
                                   self.call_timeout)

    async def _on_ask(self, agent: Agent, msg: Any) -> None:
        try:
            sender, body = self._open(agent, msg.data)
            if sender != agent.config.admin_peer:
                raise WireError(f"a flow call from {sender!r}: only the admin "
                                f"{agent.config.admin_peer!r} calls")
        except WireError as e:
            agent.journal.count("rcvError")
            agent.journal.error(f"flow call on {msg.subject} refused: {e}")
            return
        answer = await asyncio.to_thread(self._execute, body)
        await msg.respond(seal_json(agent.config, agent.names, 0, answer))

    def _execute(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.executor is None:
            return {"ok": False, "error": "this node does not serve FATE-Flow jobs"}
        try:
            return {"ok": True, "value": encode_value(self.executor(body))}
        except (ComponentFailed, JobRefused, ValueError, TypeError, KeyError) as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # the admin's job fails saying so; the log has the rest
            log.exception("flow call %s failed", body.get("fn"))
            return {"ok": False, "error": f"internal error: {e!r}"}

    # -------------------------------------------------------------- both
    def _open(self, agent: Agent, data: bytes) -> tuple[str, dict[str, Any]]:
        frame = read_frame(data)
        if frame.header["fed"] != agent.names.fed:
            raise WireError("a flow message of another federation")
        body = open_json(agent.config.fed_secret_key, data)
        if not isinstance(body, dict):
            raise WireError("a flow message that is not a JSON object")
        return str(frame.header["peer"]), body

    async def _request(self, agent: Agent, subject: str, body: dict[str, Any],
                       timeout: float) -> dict[str, Any]:
        if agent.nc is None:
            raise Unreachable("the federation is not connected")
        sealed = seal_json(agent.config, agent.names, 0, body)
        for attempt in range(NO_RESPONDER_TRIES):
            try:
                msg = await agent.nc.request(subject, sealed, timeout=timeout)
                break
            except nats.errors.NoRespondersError:
                # a subscription just made (a restart, a reconnect) can take the server a
                # moment to route to other connections: ask again, briefly, then give up
                if attempt == NO_RESPONDER_TRIES - 1:
                    raise Unreachable("its node is not connected to the federation (no "
                                      "responder)") from None
                await asyncio.sleep(0.2)
            except nats.errors.TimeoutError:
                raise Unreachable(f"no answer within {timeout:g}s") from None
        _, reply = self._open(agent, msg.data)
        return reply


class RemoteSite:
    """A party served by a member's node: every call goes there (flowjobs `Site`)."""

    def __init__(self, link: FlowLink, agent: Agent, peer: str, party_id: int) -> None:
        self.link, self.agent, self.peer, self.party_id = link, agent, peer, party_id

    def _call(self, fn: str, **body: Any) -> Any:
        return self.link.call_member(self.agent, self.peer,
                                     {"fn": fn, "party": self.party_id, **body})

    def has_table(self, namespace: str, name: str) -> bool:
        return bool(self._call("has_table", namespace=namespace, name=name))

    def read(self, job_id: str, role: str, output: str, namespace: str, name: str) -> Any:
        return self._call("read", job_id=job_id, role=role, output=output,
                          namespace=namespace, name=name)

    def call(self, job_id: str, role: str, op: str, inputs: Sequence[str], output: str | None,
             **args: Any) -> Any:
        if op == "save":
            args = {**args, "path": relative_job_path(str(args["path"]))}
        return self._call("call", job_id=job_id, role=role, op=op, inputs=list(inputs),
                          output=output, args=encode_value(args))

    def has(self, job_id: str, role: str, ref: str) -> bool:
        return bool(self._call("has", job_id=job_id, role=role, ref=ref))

    def release(self, job_id: str) -> None:
        try:
            self._call("release", job_id=job_id)
        except ComponentFailed as e:  # gone already: its frames went with it
            log.info("release of job %s at party %d: %s", job_id, self.party_id, e)
