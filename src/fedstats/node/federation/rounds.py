"""GLM fits across a federation: the admin runs Newton rounds, every member answers sums.

    admin (Coordinator)                          member (RoundMember)
    glm.ask: fit, round, plan, coefficients  ->  keeps rows? floor? PSR contract?
                                             <-  glm.reply.<peer>: Σ weight, loss, gradient,
                                                 Hessian of its kept rows at the coefficients
    the Newton step on the sum of every reply and its own rows; the next round ...
    stats.<admin>.model.<id>: the finished model, read by exactly the members that merge

Rows never leave their site, only the sums (`engine.glm.RoundStats`), sealed with the
federation key as snapshots are (`wire.seal_message`; the broker reads neither). Replies
come on per-member subjects only the admin may read (`natsconf`), so whatever the
topology no member sees another's contribution, and the subject says who sent one.

Every message carries the fit's id and the round's number, and the admin keeps exactly
one answer per member per (fit, round): a duplicate, a late answer to an earlier round or
an answer to another fit changes nothing. Core NATS delivers at most once, so an ask is
repeated once, halfway through `nats_req_timeout`, to the members still silent (members
answer a repeated ask again; the admin keeps the first). A member pins its rows for the
fit (`service.glm.SiteRows`), and its row count must stay the same every round.

A member that refuses (no kept rows while it has rows, the floor, its contract, rows the
plan cannot read) or stays silent past `nats_req_timeout` ends the fit: `FitFailed`, the
member named, written to the error log and counted (`glmFitError`) — never a fit on part
of the data. The member counts its own refusals (`sndContractError` for the floor and
contract, `glmRefused` for all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..engine.errors import EngineError
from ..engine.glm import RoundStats, decode_round_stats, encode_round_stats
from ..engine.models.glm import GlmProblem, build_glm
from ..service import glm as site_glm
from ..store.rows import RowStoreError
from . import contract as psr
from .errors import FederationError, WireError
from .natsconf import MAX_PAYLOAD
from .wire import open_message, read_frame, seal_message

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("fedstats.federation")

ASK, REPLY, MODEL = "glm_ask", "glm_reply", "glm_model"
_LEN = struct.Struct("<I")
ONE_FRAME = MAX_PAYLOAD - 64 * 1024  # a round's message is one frame, headers included


class FitFailed(FederationError):
    """A federated fit that cannot go on: a member refused, was silent, or changed."""


# ------------------------------------------------------------------ pure codecs
def encode_body(meta: dict[str, Any], blob: bytes = b"") -> bytes:
    """u32 length, the JSON `meta`, then `blob` (a RoundStats' own bytes, never JSON)."""
    head = orjson.dumps(meta)
    return _LEN.pack(len(head)) + head + blob


def decode_body(body: bytes) -> tuple[dict[str, Any], bytes]:
    if len(body) < _LEN.size:
        raise WireError("a GLM round message shorter than its length prefix")
    (n,) = _LEN.unpack_from(body, 0)
    if _LEN.size + n > len(body):
        raise WireError("a GLM round message whose JSON part is truncated")
    try:
        meta = orjson.loads(body[_LEN.size : _LEN.size + n])
    except orjson.JSONDecodeError as e:
        raise WireError(f"a GLM round message with unreadable JSON: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("type"), str):
        raise WireError("a GLM round message without a type")
    return meta, bytes(body[_LEN.size + n :])


def seal(agent: Agent, version: int, body: bytes) -> bytes:
    frames = seal_message(agent.config.fed_secret_key, agent.names.fed, agent.config.peer_id,
                          "control", version, body, chunk_size=ONE_FRAME)
    if len(frames) != 1:
        raise FitFailed(f"a GLM round message of {len(body)} bytes does not fit one NATS "
                        "message: too many parameters for a federated fit")
    return frames[0]


def open_sealed(agent: Agent, data: bytes) -> tuple[str, dict[str, Any], bytes]:
    """(sender, meta, blob) of one sealed round message; WireError if it is not one."""
    frame = read_frame(data)
    if frame.header["fed"] != agent.names.fed or frame.header["chunks"] != 1:
        raise WireError("a GLM round message of another federation, or in chunks")
    meta, blob = decode_body(open_message(agent.config.fed_secret_key, [frame]))
    return frame.header["peer"], meta, blob


def refusal(acc: Any, contract: psr.Contract) -> tuple[str | None, bool]:
    """(why this site's rows may not contribute, whether the floor/contract said so)."""
    floor = psr.floor_violation(acc, "contribution")
    if floor:
        return floor, True
    failed = psr.violations(contract, acc)
    if failed and contract.send == "block":
        return "PSR contract: " + "; ".join(failed), True
    return None, False


def count(agent: Agent, name: str) -> None:
    """Count `name` in syncStats (a counter the journal may not have yet)."""
    agent.journal.counters.setdefault(name, 0)
    agent.journal.count(name)


# ------------------------------------------------------------------ the admin
@dataclass
class _Round:
    members: set[str]
    answers: dict[str, RoundStats] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0
    compute: float = 0.0  # the slowest member's own seconds (as it reports them)

    def settle(self) -> None:
        if self.refused or self.members <= set(self.answers):
            self.done.set()


class Coordinator:
    """The admin's side: asks, collects exactly one answer per member, fails loudly."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._rounds: dict[tuple[str, int], _Round] = {}
        self.sent_bytes = 0
        self.received_bytes = 0
        self.last_compute = 0.0

    async def exchange(self, fit: str, rnd: int, body: bytes, members: list[str],
                       timeout: float) -> dict[str, RoundStats]:
        """Every member's statistics for round `rnd` of `fit`; FitFailed naming who failed."""
        state = _Round(set(members))
        if not members:
            return {}
        key = (fit, rnd)
        self._rounds[key] = state
        try:
            frame = seal(self.agent, rnd, body)
            for attempt in range(2):
                await self.agent.nc.publish(self.agent.names.glm_ask, frame)
                self.sent_bytes += len(frame)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.done.wait(), timeout / 2)
                if state.done.is_set():
                    break
                if attempt == 0:
                    silent = sorted(state.members - set(state.answers))
                    log.info("fit %s round %d: asking again (%s silent)", fit, rnd, silent)
        finally:
            self._rounds.pop(key, None)
        self.received_bytes += state.received
        self.last_compute = state.compute
        if state.refused:
            peer, why = sorted(state.refused.items())[0]
            raise FitFailed(f"member {peer} refused round {rnd} of fit {fit}: {why}")
        silent = sorted(state.members - set(state.answers))
        if silent:
            raise FitFailed(f"member {', '.join(silent)} did not answer round {rnd} of fit {fit} "
                            f"within nats_req_timeout ({timeout:g}s)")
        return dict(state.answers)

    async def on_reply(self, msg: Any) -> None:
        """One member's reply; anything that is not an awaited first answer is dropped."""
        try:
            sender, meta, blob = open_sealed(self.agent, msg.data)
            if msg.subject != self.agent.names.glm_reply(sender) or meta["type"] != REPLY:
                raise WireError(f"a GLM reply claiming to be from {sender!r} came on "
                                f"{msg.subject}")
            state = self._rounds.get((str(meta.get("fit")), int(meta.get("round", -1))))
            if state is None or sender not in state.members:
                return  # late, duplicated across fits, or not a member: changes nothing
            if sender in state.answers or sender in state.refused:
                return  # a duplicate of an answer already kept
            state.received += len(msg.data)
            if not meta.get("ok"):
                state.refused[sender] = str(meta.get("reason", "no reason given"))
            else:
                stats = decode_round_stats(blob)
                if stats.round != int(meta["round"]):
                    raise WireError(f"{sender}'s statistics are tagged round {stats.round}, "
                                    f"its reply round {meta['round']}")
                state.answers[sender] = stats
                state.compute = max(state.compute, float(meta.get("seconds", 0.0)))
            state.settle()
        except (WireError, EngineError, KeyError, TypeError, ValueError) as e:
            self.agent.journal.count("rcvError")
            self.agent.journal.error(f"GLM reply on {msg.subject} refused: {e}")

    async def publish_model(self, model_id: str, algo: str, model: dict[str, Any]) -> None:
        """The finished model on the statistics stream: the members that merge take it."""
        version = self.agent.state.next_version(self.agent.cid, self.agent.pid)
        body = orjson.dumps({"type": MODEL, "modelId": model_id, "algo": algo, "model": model},
                            option=orjson.OPT_SERIALIZE_NUMPY)
        frames = seal_message(self.agent.config.fed_secret_key, self.agent.names.fed,
                              self.agent.config.peer_id, "control", version, body,
                              chunk_size=ONE_FRAME)
        if len(frames) != 1:
            raise FitFailed(f"model {model_id} of {len(body)} bytes is too large to publish")
        await self.agent.js.publish(self.agent.names.model(self.agent.config.peer_id, model_id),
                                    frames[0])


def members_of(agent: Agent) -> list[str]:
    """The members a fit must hear from: every joined peer not removed (admin excluded)."""
    c = agent.config
    return sorted(p for p in c.peers if p not in c.removed and p != c.peer_id)


def run_fit(agent: Agent, loop: asyncio.AbstractEventLoop, service: Any,
            site: site_glm.SiteRows, model_id: str, algo: str,
            context: dict[str, Any]) -> dict[str, Any]:
    """Fit `algo` over every member's kept rows (blocking: from a worker thread); modelInfo.

    The problem (columns, classes) is the admin's merged statistics', so synchronize
    them first; the admin's own kept rows are summed in beside the members' answers.
    """
    coordinator = agent.coordinator
    assert coordinator is not None
    cid, pid = agent.cid, agent.pid
    try:
        problem = site_glm.problem_of(service.effective_accumulator(cid, pid), algo, context)
        members = members_of(agent)
        own = site.keeps_rows()
        if not own and service.local_view(cid, pid).n > 0:
            raise FitFailed(f"member {agent.config.peer_id} (the admin) does not keep rows "
                            "but has rows: its project must be created with keepRows=true")
        model = _fit(agent, loop, coordinator, site, problem, members, own)
    except FitFailed as e:
        count(agent, "glmFitError")
        agent.journal.error(f"{algo} model {model_id} failed: {e}")
        raise
    finally:
        site.release()
    info = site_glm.store_model(service, cid, pid, model_id, algo, model)
    if agent.config.topology != "centralized":
        fut = asyncio.run_coroutine_threadsafe(
            coordinator.publish_model(model_id, algo, model.to_dict()), loop)
        try:
            fut.result(agent.config.nats_req_timeout)
        except Exception as e:  # the model stands here; members will lack it: say so
            agent.journal.error(f"{algo} model {model_id} fitted but not published: {e}")
    agent.journal.sync(f"fitted {algo} model {model_id} in {model.meta['rounds']} rounds over "
                       f"{len(members) + 1} sites ({model.meta['n']:.0f} rows)")
    return info


def _fit(agent: Agent, loop: asyncio.AbstractEventLoop, coordinator: Coordinator,
         site: site_glm.SiteRows, problem: GlmProblem, members: list[str],
         own: bool) -> Any:
    fit = secrets.token_hex(8)
    plan = problem.plan()
    timeout = float(agent.config.nats_req_timeout)
    p = problem.coef_shape() * (problem.d + 1)
    rows: dict[str, float] = {}
    exchanges: list[float] = []  # seconds from an ask to its last answer, round by round
    computes: list[float] = []  # the slowest member's own compute, round by round
    rnd = 0
    sent0, received0 = coordinator.sent_bytes, coordinator.received_bytes

    def round_fn(coef: Any) -> RoundStats:
        nonlocal rnd
        rnd += 1
        body = encode_body({"type": ASK, "fit": fit, "round": rnd, "plan": plan,
                            "coef": np.asarray(coef, dtype=np.float64).tolist()})
        started = time.perf_counter()
        fut = asyncio.run_coroutine_threadsafe(
            coordinator.exchange(fit, rnd, body, members, timeout), loop)
        try:
            mine = site.stats(fit, problem, coef) if own else RoundStats.zeros(p)
        except (EngineError, RowStoreError) as e:
            fut.cancel()
            raise FitFailed(f"member {agent.config.peer_id} (the admin) cannot read its "
                            f"rows: {e}") from e
        parts = fut.result(timeout * 2 + 30)
        exchanges.append(time.perf_counter() - started)
        computes.append(coordinator.last_compute)
        for peer, stats in parts.items():
            if rows.setdefault(peer, stats.n) != stats.n:
                raise FitFailed(f"member {peer}'s rows changed during fit {fit} ({rows[peer]:g}"
                                f" rows, now {stats.n:g}: restarted?); build again")
        # summed in one order (by member), so a fit's arithmetic never depends on arrivals
        return RoundStats.merge(mine, *(parts[peer] for peer in sorted(parts)))

    model = build_glm(problem, round_fn)
    model.meta["federation"] = {
        "fit": fit, "members": members, "rounds": rnd,
        "bytesSent": coordinator.sent_bytes - sent0,
        "bytesReceived": coordinator.received_bytes - received0,
        "roundSeconds": exchanges,
        "memberComputeSeconds": computes,
    }
    return model


# ------------------------------------------------------------------ a member
class RoundMember:
    """A member's side: answers the admin's asks with its rows' sums, or refuses."""

    def __init__(self, agent: Agent, site: site_glm.SiteRows | None) -> None:
        self.agent = agent
        self.site = site
        self._last: tuple[tuple[str, int], bytes] | None = None
        self._reaper: asyncio.TimerHandle | None = None
        # a fit's rounds come within nats_req_timeout of each other; after this, it ended
        self.idle_s = max(60.0, 2 * float(agent.config.nats_req_timeout))

    def _release_later(self) -> None:
        """Release the pinned rows once rounds stop coming (re-armed at every answer)."""
        if self.site is None:
            return
        if self._reaper is not None:
            self._reaper.cancel()
        loop = asyncio.get_running_loop()
        site, idle = self.site, self.idle_s
        self._reaper = loop.call_later(
            idle + 1.0, lambda: loop.run_in_executor(None, site.release_idle, idle))

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self.site is not None:
            self.site.release()

    async def on_ask(self, msg: Any) -> None:
        agent = self.agent
        try:
            sender, meta, _ = open_sealed(agent, msg.data)
            if sender != agent.config.admin_peer or msg.subject != agent.names.glm_ask:
                raise WireError(f"a GLM ask from {sender!r} (only the admin "
                                f"{agent.config.admin_peer!r} asks) on {msg.subject}")
            if meta["type"] != ASK:
                raise WireError(f"a {meta['type']!r} message on {msg.subject}")
            key = (str(meta["fit"]), int(meta["round"]))
        except (WireError, KeyError, TypeError, ValueError) as e:
            agent.journal.count("rcvError")
            agent.journal.error(f"GLM ask on {msg.subject} refused: {e}")
            return
        if self._last is not None and self._last[0] == key:
            frame = self._last[1]  # asked again: the same answer, not a second computation
        else:
            reply, blob = await asyncio.to_thread(self.answer, meta)
            frame = seal(agent, key[1], encode_body(reply, blob))
            self._last = (key, frame)
            self._release_later()
        await agent.nc.publish(agent.names.glm_reply(agent.config.peer_id), frame)

    def answer(self, meta: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """(reply meta, statistics bytes) for one ask; a refusal is counted and logged."""
        agent = self.agent
        started = time.perf_counter()
        fit, rnd = str(meta["fit"]), int(meta["round"])
        head = {"type": REPLY, "fit": fit, "round": rnd}
        acc = agent.local()
        try:
            problem = GlmProblem.from_plan(meta.get("plan"))
            p = problem.coef_shape() * (problem.d + 1)
            coef = np.asarray(meta.get("coef"), dtype=np.float64)
            if coef.size != p or not np.all(np.isfinite(coef)):
                raise WireError(f"the ask's coefficients are not {p} finite numbers")
            if self.site is None or not self.site.keeps_rows():
                if acc.n > 0:
                    return self._refuse(head, "its project does not keep rows (create it "
                                        "with keepRows=true)", contract=False)
                stats = RoundStats.zeros(p)
            else:
                why, contract = refusal(acc, agent.contract)
                if why:
                    return self._refuse(head, why, contract)
                stats = self.site.stats(fit, problem, coef.reshape(problem.coef_shape(), -1))
        except (EngineError, RowStoreError, WireError, ValueError, TypeError) as e:
            return self._refuse(head, f"{type(e).__name__}: {e}", contract=False)
        stats.round = rnd
        blob = encode_round_stats(stats)
        return {**head, "ok": True, "seconds": time.perf_counter() - started}, blob

    def _refuse(self, head: dict[str, Any], why: str,
                contract: bool) -> tuple[dict[str, Any], bytes]:
        journal = self.agent.journal
        if contract:
            journal.count("sndContractError")
        count(self.agent, "glmRefused")
        journal.error(f"refused round {head['round']} of GLM fit {head['fit']}: {why}")
        return {**head, "ok": False, "reason": why}, b""


ModelSink = Callable[[str, str, dict[str, Any]], None]


async def receive_model(agent: Agent, sender: str, body: bytes, sink: ModelSink | None) -> None:
    """A finished model the admin published: stored here through `sink` (a thread)."""
    if sender != agent.config.admin_peer:
        agent.journal.count("rcvError")
        agent.journal.error(f"a model from {sender!r} refused: only the admin publishes models")
        return
    try:
        meta = orjson.loads(body)
        if not isinstance(meta, dict) or meta.get("type") != MODEL:
            raise WireError("not a model message")
        model_id, algo, model = str(meta["modelId"]), str(meta["algo"]), meta["model"]
    except (orjson.JSONDecodeError, WireError, KeyError) as e:
        agent.journal.count("rcvError")
        agent.journal.error(f"an unreadable model message from the admin refused: {e}")
        return
    if sink is None or not isinstance(model, dict):
        return
    try:
        await asyncio.to_thread(sink, model_id, algo, model)
    except Exception as e:  # a model this node cannot load or store: logged, not fatal
        agent.journal.error(f"{algo} model {model_id} from the admin not stored: "
                            f"{type(e).__name__}: {e}")
        return
    agent.journal.sync(f"received {algo} model {model_id} from the admin")
