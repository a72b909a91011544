"""The federation agent of one project: publishes snapshots, receives peers', obeys the admin.

Peers exchange whole snapshots, never deltas. Each pulse publishes this node's current
accumulator with a version above every earlier one; a receiver keeps only the newest
version per peer (in SQLite, before it acknowledges the message). Redelivery, duplicates
and reordering are therefore harmless, a forget propagates like a learn, and a node or a
server that restarts needs nothing but a republish: on every (re)connection the agent
re-creates its streams and consumers if they are gone and publishes again.

Contracts are checked before sending (rules, the floor on the whole and on the increment
since the last snapshot sent) and again on receipt (rules and the floor on the whole
only: a receiver may have missed versions in between, so the increment floor is the
sender's duty). What a receiver takes in is decided by `admission` (pure); every refusal
is counted and logged here, never silently dropped.

The admin's agent also answers join requests: it redeems the invitation's one-time token
(so a reused or expired invitation fails at the admin, where the token was issued) and
records the new peer.

The agent also carries GLM rounds (`rounds`): the admin's agent subscribes to the
members' replies and coordinates fits, a member's answers the admin's asks from its kept
rows, and a finished model arriving on the statistics stream is stored through
`model_sink`.

What is not the protocol lives beside it: `link` (connections, streams, consumers),
`admission` (is a received snapshot taken in?), `gate` (may this snapshot pass?),
`control` (sealed JSON, the admin's announcements), `journal` (counters and logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import nats

from ..engine.accumulator import Accumulator
from ..engine.codec import decode_snapshot, encode_snapshot
from ..security.errors import SecurityError
from . import admission, gate, link, rounds
from . import contract as psr
from .control import apply_admin, open_json, parse_control, seal_json
from .errors import FederationError, Unreachable, WireError
from .journal import Journal
from .schedule import parse_schedule
from .state import FedConfig, FedState
from .subjects import Names
from .wire import DEFAULT_CHUNK, Reassembler, open_message, read_frame, seal_message

log = logging.getLogger("fedstats.federation")

JoinHandler = Callable[[dict[str, Any]], dict[str, Any]]
FETCH_WAIT = 1.0  # a pull returns at least this often, so stop() is never kept waiting
CHUNK_HEADROOM = 4096  # bytes of a snapshot message that are not its sealed part
IN_FLIGHT = 4  # chunk publishes awaited together: JetStream acks pipeline well so
STORED_OVERHEAD = 64  # bytes a stream adds to each message beyond its subject and payload


class Agent:
    """One federated project's link to its federation over NATS JetStream."""

    def __init__(
        self,
        cid: str,
        pid: str,
        config: FedConfig,
        state: FedState,
        local: Callable[[], Accumulator],
        *,
        join_handler: JoinHandler | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        site: Any = None,
        model_sink: rounds.ModelSink | None = None,
        flow: Any = None,
    ) -> None:
        self.cid, self.pid, self.config, self.state = cid, pid, config, state
        self.local = local
        self.join_handler = join_handler
        self.chunk_size = chunk_size
        self.names = Names.of(config.fed_name)
        self.journal = Journal(state, cid, pid)
        self.nc: Any = None
        self.js: Any = None
        self.peers: dict[str, tuple[int, Accumulator]] = {}
        for peer, (version, data) in state.peer_snapshots(cid, pid).items():
            self.peers[peer] = (version, decode_snapshot(data))
        self.changed = asyncio.Condition()  # notified on every accepted snapshot
        self._reassembler = Reassembler(peer_max_bytes=config.reassembly_max_bytes)
        self._tasks: list[asyncio.Task[None]] = []
        self._pulse: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._publish_lock = asyncio.Lock()
        self._force = False
        self._stopping = False
        self._generation = 0  # bumped on every reconnect: consumers are then rebuilt
        self._contract = psr.parse_contract(config.contract)
        self.model_sink = model_sink
        self.flow = flow  # flowlink.FlowLink: FATE-Flow jobs across parties
        self.coordinator = rounds.Coordinator(self) if config.is_admin else None
        self.member = None if config.is_admin else rounds.RoundMember(self, site)

    @property
    def counters(self) -> dict[str, Any]:
        return self.journal.counters

    @property
    def reads_stats(self) -> bool:
        return self.config.is_admin or self.config.merges

    # ------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        self.nc = await link.open_connection(
            self.config,
            f"fedstats {self.cid}/{self.pid}",
            reconnected_cb=self._on_reconnected,
            disconnected_cb=self._on_disconnected,
            error_cb=self._on_error,
        )
        self.js = self.nc.jetstream(timeout=self.config.nats_req_timeout)

    async def start(self) -> None:
        """Connect, make sure the streams exist, and run the consumers (and pulse if on)."""
        if self.nc is None:
            await self.connect()
        await self.ensure_streams()
        if self.config.is_admin and self.join_handler is not None:
            await self.nc.subscribe(self.names.join, cb=self._on_join)
        if self.coordinator is not None:
            await self.nc.subscribe(self.names.glm_replies, cb=self.coordinator.on_reply)
        if self.member is not None:
            await self.nc.subscribe(self.names.glm_ask, cb=self.member.on_ask)
        if self.flow is not None:
            await self.flow.attach(self)
        self._tasks.append(asyncio.create_task(self._consume("ctl"), name="fed-ctl"))
        if self.reads_stats:
            self._tasks.append(asyncio.create_task(self._consume("stats"), name="fed-stats"))
        self._tasks.append(asyncio.create_task(self._watch_reconnects(), name="fed-reconnect"))
        if self.state.pulsing(self.cid, self.pid):
            self.start_pulse()

    async def stop(self) -> None:
        await self._cancel_tasks()
        if self.member is not None:
            self.member.close()  # the rows a fit pinned here
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.nc = None

    async def leave(self) -> None:
        """Stop for good: this project is gone, so its durable consumers go from the server."""
        await self._cancel_tasks()  # first, or a consumer loop would recreate them
        if self.js is not None and self.nc is not None and self.nc.is_connected:
            await link.delete_consumers(self.js, self.names, self.config.peer_id)
        await self.stop()

    async def _cancel_tasks(self) -> None:
        # nats-py's fetch can turn a cancellation into its own timeout error: the loops
        # also watch this flag, so they end even when the CancelledError is swallowed
        self._stopping = True
        tasks = [*self._tasks, *([self._pulse] if self._pulse else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._pulse = [], None

    async def ensure_streams(self) -> None:
        """Create the federation's streams if missing (idempotent; peers may lack the right)."""
        configs = link.stream_configs(self.names, self.config, self.reads_stats)
        await link.ensure_streams(self.js, configs, self.journal.error)

    # ------------------------------------------------------------ pulse
    def start_pulse(self) -> None:
        self.state.set_pulsing(self.cid, self.pid, True)
        if self._pulse is None or self._pulse.done():
            self._pulse = asyncio.create_task(self._pulse_loop(), name="fed-pulse")

    async def stop_pulse(self) -> None:
        self.state.set_pulsing(self.cid, self.pid, False)
        if self._pulse is not None:
            self._pulse.cancel()
            await asyncio.gather(self._pulse, return_exceptions=True)
            self._pulse = None

    @property
    def pulsing(self) -> bool:
        return self._pulse is not None and not self._pulse.done()

    async def _pulse_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.publish()
            except Exception as e:
                self.journal.error(f"pulse failed: {e}")
            period = parse_schedule(self.config.sync_sched).seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)

    def wake(self) -> None:
        """Publish now (a full sync was asked for, the schedule changed, NATS came back)."""
        self._wake.set()
        self._force = True

    async def publish(self, force: bool = False) -> bool:
        """Publish the local accumulator if it changed (or `force`); whether it was sent."""
        async with self._publish_lock:
            force, self._force = force or self._force, False
            acc = self.local()
            data = encode_snapshot(acc)
            digest = hashlib.sha256(data).hexdigest()
            sent, sent_digest = self.state.sent(self.cid, self.pid)
            if acc.n == 0 or (digest == sent_digest and not force):
                return False
            verdict = gate.outgoing(self._contract, acc, decode_snapshot(sent) if sent else None)
            if not verdict.clean:
                self.journal.count("sndContractError")
                word = "not sent" if verdict.blocked else "sent anyway (@send allow)"
                self.journal.error(f"snapshot {word}: {verdict}")
                if verdict.blocked:
                    return False
            version = self.state.next_version(self.cid, self.pid)
            frames = seal_message(
                self.config.fed_secret_key,
                self.names.fed,
                self.config.peer_id,
                "snapshot",
                version,
                data,
                self.chunk_for_server(),
            )
            subject = self.names.stats(self.config.peer_id)
            # the stream discards its oldest messages when full: a snapshot it cannot hold
            # would evict other peers' snapshots (or its own first chunks) unnoticed
            size = sum(len(f) + len(subject) + STORED_OVERHEAD for f in frames)
            room = await self._stream_room()
            if room is not None and size > room:
                self.journal.count("sndError")
                self.journal.error(
                    f"snapshot v{version} not sent: {size} bytes in {len(frames)} chunks, "
                    f"more than the {room} bytes stream {self.names.stats_stream} can hold"
                )
                return False
            try:
                for i in range(0, len(frames), IN_FLIGHT):
                    batch = frames[i : i + IN_FLIGHT]
                    await asyncio.gather(
                        *(self.js.publish(f"{subject}.{i + k}", f) for k, f in enumerate(batch))
                    )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # not recorded as sent: the next pulse publishes it again
                self.journal.count("sndError")
                self.journal.error(
                    f"snapshot v{version} not sent ({size} bytes in {len(frames)} chunks): "
                    f"a chunk's publish failed: {type(e).__name__}: {e}"
                )
                return False
            self.state.save_sent(self.cid, self.pid, data, digest)
            self.journal.count("sndCount")
            self.journal.sync(f"sent snapshot v{version}: {acc.n} rows, {len(data)} bytes")
            return True

    async def _stream_room(self) -> int | None:
        """The statistics stream's max_bytes (as configured on the server if this node
        may look, else as this federation was created with); None if unlimited."""
        limit = int(self.config.nats_stream_max_memory)
        # a peer that may not read statistics may not inspect their stream either
        with contextlib.suppress(Exception):
            if not self.reads_stats:
                raise PermissionError
            info = await self.js.stream_info(self.names.stats_stream)
            limit = int(info.config.max_bytes or -1)
        return limit if limit > 0 else None

    # ------------------------------------------------------------ consuming
    async def _consume(self, which: str) -> None:
        stream = self.names.stats_stream if which == "stats" else self.names.ctl_stream
        subject = self.names.stats_all if which == "stats" else self.names.ctl_all
        durable = link.durable(self.names, self.config.peer_id, which)
        backoff = 0.2
        while not self._stopping:
            try:
                sub = await self.js.pull_subscribe(
                    subject,
                    durable=durable,
                    stream=stream,
                    config=link.consumer_config(self.config),
                )
                backoff, generation = 0.2, self._generation
                while generation == self._generation and not self._stopping:
                    try:
                        msgs = await sub.fetch(64, timeout=FETCH_WAIT)
                    except (TimeoutError, nats.errors.TimeoutError):
                        continue
                    for msg in msgs:
                        await self._handle(msg.data, msg.subject)
                        await msg.ack()  # handled or refused: never redelivered forever
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # the server went away or lost the stream (memory storage): rebuild and retry
                log.info("consumer %s interrupted: %s", durable, e)
                await asyncio.sleep(backoff)  # a retry delay, not a wait for an event
                backoff = min(backoff * 2, 5.0)
                with contextlib.suppress(Exception):
                    await self.ensure_streams()

    async def _handle(self, data: bytes, subject: str) -> None:
        """Take in one message read from `subject`; never raises (the caller then acks)."""
        try:
            await self._receive(data, subject)
        except Exception as e:  # a bug or a hostile body must not poison the consumer
            log.exception("federation %s/%s: message on %s failed", self.cid, self.pid, subject)
            with contextlib.suppress(Exception):
                self.journal.count("rcvError")
                self.journal.error(f"message on {subject} refused: {type(e).__name__}: {e}")
        async with self.changed:  # accepted or refused: whoever waits may look again
            self.changed.notify_all()

    def _refuse(self, reason: str) -> None:
        self.journal.count("rcvError")
        self.journal.error(reason)

    def _wrong_subject(self, header: dict[str, Any], subject: str) -> str | None:
        """Why a frame may not have come on `subject`, or None.

        Every member holds the federation key, so the seal proves membership, not who
        sent: the subject does, since NATS permissions (centralized, hybrid) let a peer
        publish only under its own names. A snapshot chunk must lie under its sender's
        statistics subject; control messages under the control subjects (which ones
        depends on their type, checked once they are opened).
        """
        peer = header["peer"]
        if header["kind"] == "snapshot":
            own = self.names.stats(peer)
            rest = subject[len(own) + 1 :] if subject.startswith(own + ".") else ""
            if not rest.isdigit():
                return f"snapshot claiming to be from {peer!r} came on {subject}, not under {own}"
            return None
        if subject.startswith(self.names.models_of(peer)):
            return None  # a finished GLM under its sender's statistics subject (`rounds`)
        if not subject.startswith(self.names.prefix + ".ctl."):
            return f"control message claiming to be from {peer!r} came on {subject}"
        return None

    async def _receive(self, data: bytes, subject: str) -> None:
        try:
            frame = read_frame(data)
            if frame.header["fed"] != self.names.fed or frame.header["peer"] == self.config.peer_id:
                return
            wrong = self._wrong_subject(frame.header, subject)
            if wrong is not None:
                self._refuse(f"forged sender refused: {wrong}")
                return
            whole = self._reassembler.add(frame)
            if whole is None:
                return
            body = open_message(self.config.fed_secret_key, whole)
        except WireError as e:
            self._refuse(f"unreadable message: {e}")
            return
        header = whole[0].header
        if header["kind"] == "control" and subject.startswith(self.names.models_of(header["peer"])):
            await rounds.receive_model(self, header["peer"], body, self.model_sink)
        elif header["kind"] == "snapshot":
            await self._receive_snapshot(header["peer"], header["version"], body)
        else:
            await self._receive_control(header["peer"], subject, body)

    async def _receive_snapshot(self, peer: str, version: int, body: bytes) -> None:
        known = self.peers.get(peer)
        decision = admission.screen(peer, version, removed=self.config.removed,
                                    newest=known[0] if known else None,
                                    now_us=time.time_ns() // 1000)
        if decision is None:
            decision = admission.judge(peer, version, body, local=self.local(),
                                       peers={p: a for p, (_, a) in self.peers.items()},
                                       contract=self._contract)
        if decision.note:
            self.journal.sync(decision.note)
        if decision.problem:
            per_peer = decision.counter == admission.CONTRACT_ERROR
            self.journal.count(decision.counter, peer if per_peer else None)
            self.journal.error(decision.problem)
        if decision.acc is None:
            return
        if not self.state.save_peer(self.cid, self.pid, peer, version, body):
            return
        self.peers[peer] = (version, decision.acc)
        self.journal.count("rcvCount")
        self.journal.sync(f"received snapshot v{version} from {peer}: {decision.acc.n} rows")

    async def _receive_control(self, sender: str, subject: str, body: bytes) -> None:
        try:
            msg = parse_control(body)
            kind = msg["type"]
            if kind == "sync":
                if subject != self.names.sync(sender):
                    self._refuse(
                        f"forged sender refused: sync request claiming to be from {sender!r} "
                        f"came on {subject}, not {self.names.sync(sender)}"
                    )
                    return
                if self.pulsing:
                    self.journal.sync(f"full sync requested by {sender}")
                    self.wake()
                return
            if kind == "member":
                if not isinstance(msg.get("peer"), str):
                    raise WireError("malformed 'member' message from the admin: no peer")
                expected = self.names.member(msg["peer"])
            else:
                expected = self.names.admin_ctl(kind)
            if sender != self.config.admin_peer or subject != expected:
                self._refuse(
                    f"ignored {kind!r} from {sender!r} on {subject}: only the admin "
                    f"({self.config.admin_peer!r}) may send it, on {expected}"
                )
                return
            if kind == "member":
                self._apply_member(msg)
                return
            change = apply_admin(self.config, msg)
        except WireError as e:
            self._refuse(f"{e} (from {sender})")
            return
        if change is None:
            return  # stale, repeated, or of a kind this version does not know
        self._contract = psr.parse_contract(self.config.contract)
        self.journal.sync(change)
        self.state.save_config(self.cid, self.pid, self.config)
        self.wake()

    # ------------------------------------------------------------ requests
    async def _control(self, subject: str, body: dict[str, Any]) -> None:
        version = self.state.next_version(self.cid, self.pid)
        await self.js.publish(subject, seal_json(self.config, self.names, version, body))

    async def full_sync_request(self) -> None:
        await self._control(self.names.sync(self.config.peer_id), {"type": "sync"})
        self.journal.sync("asked every peer to republish")

    async def set_schedule(self, text: str) -> None:
        sched = parse_schedule(text)
        self.config.sync_sched, self.config.schedule_seq = sched.text, self.config.schedule_seq + 1
        self.state.save_config(self.cid, self.pid, self.config)
        await self._control(
            self.names.admin_ctl("schedule"),
            {"type": "schedule", "schedule": sched.text, "seq": self.config.schedule_seq},
        )
        self.wake()

    @property
    def contract(self) -> psr.Contract:
        return self._contract

    def set_contract_locally(self, lines: list[str]) -> None:
        """Adopt a contract (the admin's, at join) without announcing it."""
        self._contract = psr.parse_contract(lines)
        self.config.contract = list(lines)

    async def set_contract(self, lines: list[str]) -> None:
        self._contract = psr.parse_contract(lines)
        self.config.contract, self.config.contract_seq = list(lines), self.config.contract_seq + 1
        self.state.save_config(self.cid, self.pid, self.config)
        await self._control(
            self.names.admin_ctl("contract"),
            {"type": "contract", "lines": list(lines), "seq": self.config.contract_seq},
        )

    def _apply_member(self, msg: dict[str, Any]) -> bool:
        """Adopt the admin's newer removal or readmission of a peer; whether it changed."""
        try:
            peer, seq, removed = str(msg["peer"]), int(msg["seq"]), msg["removed"]
        except (KeyError, TypeError, ValueError) as e:
            raise WireError(f"malformed 'member' message from the admin: missing or bad {e}") from e
        if not isinstance(removed, bool):
            raise WireError("malformed 'member' message from the admin: removed is not a bool")
        if seq <= self.config.member_seqs.get(peer, 0):
            return False  # stale or repeated
        self.config.member_seqs[peer] = seq
        if removed:
            if peer not in self.config.removed:
                self.config.removed.append(peer)
            self.peers.pop(peer, None)
            self.state.delete_peer(self.cid, self.pid, peer)
            word = "this node was" if peer == self.config.peer_id else f"peer {peer} was"
            self.journal.sync(f"{word} removed from the federation by the admin; "
                              "its snapshot is dropped and later ones ignored")
        else:
            if peer in self.config.removed:
                self.config.removed.remove(peer)
            self.journal.sync(f"peer {peer} was admitted again by the admin")
        self.state.save_config(self.cid, self.pid, self.config)
        return True

    async def _announce_member(self, peer: str, removed: bool) -> None:
        seq = self.state.next_version(self.cid, self.pid)
        body = {"type": "member", "peer": peer, "removed": removed, "seq": seq}
        self._apply_member(body)  # the admin does not read its own announcements
        await self._control(self.names.member(peer), body)

    async def remove_peer(self, peer: str) -> None:
        """Admin: drop `peer` from the federation, here and at every node, and forget it
        from `peersInfo` so that the same peer id may be invited again."""
        if peer == self.config.peer_id:
            raise FederationError("the federation administrator cannot remove itself")
        if peer not in self.config.peers and peer not in self.peers:
            raise FederationError(f"peer {peer!r} is not a member of this federation")
        self.config.peers.pop(peer, None)
        self.config.joined_with.pop(peer, None)
        await self._announce_member(peer, removed=True)

    async def readmit(self, peer: str) -> None:
        """Admin: a removed peer id joined again (with a fresh invitation)."""
        if peer in self.config.removed:
            await self._announce_member(peer, removed=False)

    async def request_join(self, token: str, extra: dict[str, Any]) -> dict[str, Any]:
        """Ask the admin to admit this peer with an invitation's token; its answer."""
        body = {"type": "join", "token": token, "peer": self.config.peer_id, **extra}
        try:
            reply = await self.nc.request(
                self.names.join,
                seal_json(self.config, self.names, 0, body),
                timeout=self.config.nats_req_timeout,
            )
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            raise Unreachable(
                f"the federation admin did not answer within {self.config.nats_req_timeout}s"
            ) from e
        return dict(open_json(self.config.fed_secret_key, reply.data))

    def chunk_for_server(self) -> int:
        """The chunk size of a snapshot: `chunk_size`, or less when the connected server's
        `max_payload` (1 MB on a stock nats-server) is smaller, leaving room for the
        frame's header (ids are at most a few hundred bytes) and NATS's own headers."""
        announced = getattr(self.nc, "max_payload", None) if self.nc is not None else None
        if not announced:
            return self.chunk_size
        return min(self.chunk_size, max(1024, int(announced) - CHUNK_HEADROOM))

    async def abandon_join(self, token: str) -> dict[str, Any]:
        """Tell the admin this peer could not finish the join it admitted (rolled back)."""
        body = {"type": "abandon", "token": token, "peer": self.config.peer_id}
        reply = await self.nc.request(self.names.join, seal_json(self.config, self.names, 0, body),
                                      timeout=self.config.nats_req_timeout)
        return dict(open_json(self.config.fed_secret_key, reply.data))

    async def _on_join(self, msg: Any) -> None:
        assert self.join_handler is not None
        try:
            request = open_json(self.config.fed_secret_key, msg.data)
            answer = self.join_handler(request)
        except (FederationError, SecurityError, ValueError) as e:
            answer = {"ok": False, "error": str(e)}
        if answer.get("ok") and not answer.get("abandoned"):
            try:
                await self.readmit(str(request.get("peer")))
            except Exception as e:  # the join stands; the failure is logged
                self.journal.error(f"could not announce that {request.get('peer')} is back: {e}")
        await msg.respond(seal_json(self.config, self.names, 0, answer))

    # ------------------------------------------------------------ reconnects
    async def _on_disconnected(self) -> None:
        if not self._stopping and self.nc is not None:
            self.journal.error("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._reconnected.set()

    async def _on_error(self, e: Exception) -> None:
        if self.nc is not None:  # a first connection's failures are connect()'s to report
            self.journal.error(f"NATS: {e}")

    async def _watch_reconnects(self) -> None:
        while True:
            await self._reconnected.wait()
            self._reconnected.clear()
            self.journal.sync("reconnected to NATS; republishing")
            with contextlib.suppress(Exception):
                await self.ensure_streams()
            self._generation += 1
            if self.pulsing:
                self.wake()

    # ------------------------------------------------------------ merging, stats
    def peer_accumulators(self) -> list[Accumulator]:
        """What this node merges: peers' newest snapshots (none for a centralized peer)."""
        if not self.reads_stats:
            return []
        return [acc for _, acc in self.peers.values()]

    def sync_stats(self) -> dict[str, Any]:
        return self.journal.sync_stats()
