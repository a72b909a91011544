"""The node's federations: one `Agent` per federated project, and the operations behind fedml.

The REST facade (`api/fedml.py`) only reads requests and writes envelopes; everything it
asks — create, invite, join, pulse, schedule, contracts, logs — is a method here, so the
same operations run in tests without HTTP. This module is the agents' lifecycle (revived
at start in the background, stopped, forgotten with their project) and the order of each
operation; what a body means is `options`' (pure), the rules of an invitation and of the
admin's answer to a join are `joining`'s, and what the hub needs of the project service
is `ports.ProjectPort`. A federated GLM fit (`fit_glm`, from a job's worker thread) is
`rounds.run_fit` on the admin's agent, over the event loop the agents run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..engine.accumulator import Accumulator
from ..engine.models import load_model
from ..limits import Limits
from ..security.invites import SqliteTokenStore, TokenBook, seal_invite
from ..service import glm as site_glm
from . import joining, options, rounds
from .agent import Agent, JoinHandler
from .errors import FederationError, NotAdmin, NotConnected, NotFederated
from .ports import ProjectPort
from .state import FedConfig, FedState

log = logging.getLogger("fedstats.federation")

Join = Callable[[Agent], Awaitable[dict[str, Any]]]


class Hub:
    """Every federated project of one node."""

    def __init__(self, data_dir: str | Path, service: ProjectPort, default_engine: str = "cpu",
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
        self.flow: Any = None  # a flowlink.FlowLink when the node serves FATE-Flow jobs
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
            site=site_glm.SiteRows(self.service, cid, pid),  # type: ignore[arg-type]
            model_sink=self._model_sink(cid, pid),
            flow=self.flow,
        )

    def _model_sink(self, cid: str, pid: str) -> rounds.ModelSink:
        def store(model_id: str, algo: str, model: dict[str, Any]) -> None:
            site_glm.store_model(self.service, cid, pid, model_id, algo,  # type: ignore[arg-type]
                                 load_model(model))

        return store

    # ------------------------------------------------------------ GLM rounds
    def federated(self, cid: str, pid: str) -> bool:
        """Whether the project belongs to a federation (connected or not)."""
        return (cid, pid) in self.agents or self.state.config(cid, pid) is not None

    def fit_glm(self, cid: str, pid: str, model_id: str, algo: str,
                context: dict[str, Any]) -> dict[str, Any]:
        """Fit `algo` over every member's kept rows (the admin coordinating); its modelInfo.

        Blocking, for a job's worker thread: the rounds' messages go through the loop the
        agents run on, the admin's own rows are read in this thread meanwhile."""
        agent = self.admin_agent(cid, pid, f"fit {algo} across the federation")
        loop = self._loop
        if loop is None or loop.is_closed():
            raise NotConnected(f"project [{pid}]'s federation is not running")
        site = site_glm.SiteRows(self.service, cid, pid)  # type: ignore[arg-type]
        return rounds.run_fit(agent, loop, self.service, site, model_id, algo, context)

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
    async def create(self, cid: str, pid: str, opts: dict[str, Any]) -> FedConfig:
        """Create `pid` as the administrator of a new federation (`options.admin_config`)."""
        config = options.admin_config(opts, self.default_engine, self.limits)
        await self._open(cid, pid, config, keep_rows=_keeps_rows(opts))
        return config

    async def _open(self, cid: str, pid: str, config: FedConfig, join: Join | None = None,
                    keep_rows: bool = False, abandon: Join | None = None) -> Any:
        """Create the project and connect its agent; undo both if anything fails (and, when
        the admin had already admitted this peer, `abandon` tells it so)."""
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
            self.service.create_project(cid, pid, config.fed_local_type, keep_rows=keep_rows)
        except BaseException:
            await self._abandon(agent, answer, abandon)
            await agent.stop()
            raise
        try:
            self.state.save_config(cid, pid, config)
            await agent.start()
        except BaseException:
            await self._abandon(agent, answer, abandon)
            await agent.stop()
            self.state.delete(cid, pid)
            with contextlib.suppress(Exception):
                self.service.delete_project(cid, pid)
            raise
        await self._add_agent(cid, pid, agent)
        return answer

    @staticmethod
    async def _abandon(agent: Agent, answer: Any, abandon: Join | None) -> None:
        if answer is None or abandon is None:
            return
        try:
            await abandon(agent)
        except Exception as e:  # the admin will list a peer that never pulses
            log.warning("could not tell the admin that this join failed: %s", e)

    def invitation(self, cid: str, pid: str, opts: dict[str, Any]) -> str:
        """A password-sealed invitation holding a one-time, expiring join token."""
        agent = self.admin_agent(cid, pid, "issue invitations")
        config = agent.config
        invite = joining.invite_request(config, opts)
        join_token = self.tokens.issue(invite.ttl, joining.purpose(config), peer=invite.peer,
                                       merges=invite.merges)
        # the token store cannot revoke: the newest invitation per peer id is remembered
        # here instead, and the join handler refuses the older ones
        config.invites[invite.peer] = joining.token_digest(join_token)
        self.state.save_config(cid, pid, config)
        payload = joining.invitation_payload(config, invite, join_token,
                                             opts.get("fed_rest_host"))
        return seal_invite(invite.password, payload, invite.kdf)

    def _join_handler(self, cid: str, pid: str) -> JoinHandler:
        def handle(request: dict[str, Any]) -> dict[str, Any]:
            config = self.agents[(cid, pid)].config if (cid, pid) in self.agents else None
            if config is None:
                return {"ok": False, "retry": True, "error": "the federation admin is starting"}
            if request.get("type") == "abandon":
                answer = joining.answer_abandon(config, request)
                if answer.get("ok"):
                    self.state.save_config(cid, pid, config)
                    self.state.log(cid, pid, "error",
                                   f"peer {request.get('peer')} could not finish joining: "
                                   "its admission was rolled back")
                return answer
            answer = joining.answer_join(config, self.tokens, request)
            if answer.get("ok"):
                self.state.save_config(cid, pid, config)
                self.state.log(cid, pid, "sync", f"peer {request.get('peer')} joined")
            return answer

        return handle

    async def join(self, cid: str, pid: str, opts: dict[str, Any]) -> FedConfig:
        """Create `pid` as a peer of the federation an invitation describes."""
        config = options.peer_config(opts, self.default_engine, self.limits)

        async def ask_admin(agent: Agent) -> dict[str, Any]:
            parties = {"flow_parties": self.flow.party_ids} if self.flow is not None else {}
            answer = await agent.request_join(str(opts["fed_req_token"]), parties)
            refused = joining.refusal(answer)
            if refused is not None:
                raise refused
            joining.adopt(config, answer)
            agent.set_contract_locally(config.contract)
            return answer

        async def abandon(agent: Agent) -> dict[str, Any]:
            return await agent.abandon_join(str(opts["fed_req_token"]))

        await self._open(cid, pid, config, ask_admin, keep_rows=_keeps_rows(opts),
                         abandon=abandon)
        return config

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


def _keeps_rows(opts: dict[str, Any]) -> bool:
    """Whether a create/createJoin body asks for a project that keeps rows (GLM fits)."""
    return options.flag(opts.get("sml_project_keep_rows", opts.get("keepRows", False)))
