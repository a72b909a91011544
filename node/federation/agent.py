"""The federation agent of one project: publishes snapshots, receives peers', obeys the admin.

Peers exchange whole snapshots, never deltas. Each pulse publishes this node's current
accumulator with a version above every earlier one; a receiver keeps only the newest
version per peer (in SQLite, before it acknowledges the message). Redelivery, duplicates
and reordering are therefore harmless, a forget propagates like a learn, and a node or a
server that restarts needs nothing but a republish: on every (re)connection the agent
re-creates its streams and consumers if they are gone and publishes again.

Contracts are checked before sending (rules, the floor on the whole and on the increment
since the last snapshot sent) and again on receipt (against the previous snapshot of the
same peer). Every refusal is counted and logged, never silently dropped.

The admin's agent also answers join requests: it redeems the invitation's one-time token
(so a reused or expired invitation fails at the admin, where the token was issued) and
records the new peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import nats
import orjson
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)

from ..engine.accumulator import Accumulator
from ..engine.codec import decode_snapshot, encode_snapshot
from ..engine.errors import EngineError
from ..security.errors import SecurityError
from . import contract as psr
from .errors import FederationError, Unreachable, WireError
from .schedule import parse_schedule
from .state import FedConfig, FedState
from .subjects import CONTROL_STREAM_MAX_BYTES, Names, inbox_prefix
from .wire import DEFAULT_CHUNK, Reassembler, open_message, read_frame, seal_message

log = logging.getLogger("fedstats.federation")

JoinHandler = Callable[[dict[str, Any]], dict[str, Any]]
FETCH_WAIT = 1.0  # a pull returns at least this often, so stop() is never kept waiting


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
    ) -> None:
        self.cid, self.pid, self.config, self.state = cid, pid, config, state
        self.local = local
        self.join_handler = join_handler
        self.chunk_size = chunk_size
        self.names = Names.of(config.fed_name)
        self.nc: Any = None
        self.js: Any = None
        self.counters = state.counters(cid, pid)
        self.peers: dict[str, tuple[int, Accumulator]] = {}
        for peer, (version, data) in state.peer_snapshots(cid, pid).items():
            self.peers[peer] = (version, decode_snapshot(data))
        self.changed = asyncio.Condition()  # notified on every accepted snapshot
        self._reassembler = Reassembler()
        self._tasks: list[asyncio.Task[None]] = []
        self._pulse: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._publish_lock = asyncio.Lock()
        self._force = False
        self._stopping = False
        self._generation = 0  # bumped on every reconnect: consumers are then rebuilt
        self._contract = psr.parse_contract(config.contract)

    # ------------------------------------------------------------ lifecycle
    @property
    def reads_stats(self) -> bool:
        return self.config.is_admin or self.config.merges

    async def connect(self) -> None:
        cfg = self.config
        opts: dict[str, Any] = {
            "servers": cfg.nats_hosts,
            "name": f"fedstats {self.cid}/{self.pid}",
            "inbox_prefix": inbox_prefix(cfg.nats_sec_user or cfg.peer_id),
            "connect_timeout": min(cfg.nats_req_timeout, 10.0),
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "reconnected_cb": self._on_reconnected,
            "disconnected_cb": self._on_disconnected,
            "error_cb": self._on_error,
        }
        if cfg.nats_sec_user:
            opts.update(user=cfg.nats_sec_user, password=cfg.nats_sec_passwd or "")
        elif cfg.nats_sec_token:
            opts["token"] = cfg.nats_sec_token
        elif cfg.nats_sec_nkey_seed:
            opts["nkeys_seed_str"] = cfg.nats_sec_nkey_seed
        # with endless reconnects nats-py would retry a first connection forever (reporting
        # each failure to error_cb): bound it, so the caller hears why and retries itself
        nc = nats.NATS()
        try:
            await asyncio.wait_for(nc.connect(**opts), opts["connect_timeout"] + 1.0)
        except Exception as e:  # nats-py raises a mix of OSError and its own errors
            with contextlib.suppress(Exception):
                await nc.close()
            reason = str(nc.last_error or e) or type(e).__name__
            raise Unreachable(f"cannot reach NATS at {', '.join(cfg.nats_hosts)}: {reason}") from e
        self.nc = nc
        self.js = self.nc.jetstream(timeout=cfg.nats_req_timeout)

    async def start(self) -> None:
        """Connect, make sure the streams exist, and run the consumers (and pulse if on)."""
        if self.nc is None:
            await self.connect()
        await self.ensure_streams()
        if self.config.is_admin and self.join_handler is not None:
            await self.nc.subscribe(self.names.join, cb=self._on_join)
        self._tasks.append(asyncio.create_task(self._consume("ctl"), name="fed-ctl"))
        if self.reads_stats:
            self._tasks.append(asyncio.create_task(self._consume("stats"), name="fed-stats"))
        self._tasks.append(asyncio.create_task(self._watch_reconnects(), name="fed-reconnect"))
        if self.state.pulsing(self.cid, self.pid):
            self.start_pulse()

    async def stop(self) -> None:
        await self._cancel_tasks()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.nc = None

    async def _cancel_tasks(self) -> None:
        # nats-py's fetch can turn a cancellation into its own timeout error: the loops
        # also watch this flag, so they end even when the CancelledError is swallowed
        self._stopping = True
        tasks = [*self._tasks, *([self._pulse] if self._pulse else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._pulse = [], None

    async def leave(self) -> None:
        """Stop for good: this project is gone, so its durable consumers go from the server."""
        await self._cancel_tasks()  # first, or a consumer loop would recreate them
        if self.js is not None and self.nc is not None and self.nc.is_connected:
            for which, stream in (("ctl", self.names.ctl_stream),
                                  ("stats", self.names.stats_stream)):
                with contextlib.suppress(Exception):  # best effort: missing or no right
                    await self.js.delete_consumer(stream, self._durable(which))
        await self.stop()

    def _durable(self, which: str) -> str:
        return f"{self.names.fed}_{self.config.peer_id}_{which}"

    async def ensure_streams(self) -> None:
        """Create the federation's streams if missing (idempotent; peers may lack the right)."""
        limit = int(self.config.nats_stream_max_memory)
        streams = [(self.names.ctl_stream, self.names.ctl_all,
                    min(limit, CONTROL_STREAM_MAX_BYTES))]
        if self.reads_stats:
            # a peer that may not read statistics may not inspect their stream either
            # (centralized): the admin keeps it
            streams.append((self.names.stats_stream, self.names.stats_all, limit))
        for name, subject, max_bytes in streams:
            with contextlib.suppress(Exception):
                await self.js.stream_info(name)
                continue
            conf = StreamConfig(
                name=name,
                subjects=[subject],
                storage=StorageType.MEMORY,
                max_bytes=max_bytes,
                max_msgs_per_subject=1,  # only the newest snapshot (chunk) per peer matters
                discard=DiscardPolicy.OLD,
            )
            try:
                await self.js.add_stream(conf)
            except Exception as e:
                # another agent may have created it meanwhile: only a stream still missing
                # is worth an error entry (say, the server lacks memory for its limit)
                try:
                    await self.js.stream_info(name)
                except Exception:
                    self._error(f"cannot create stream {name}: {e}")

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
                self._error(f"pulse failed: {e}")
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
            problems = psr.violations(self._contract, acc)
            floor = [
                p
                for p in (
                    psr.floor_violation(acc),
                    psr.increment_floor_violation(acc, decode_snapshot(sent) if sent else None),
                )
                if p
            ]
            if problems or floor:
                self._count("sndContractError")
                blocked = bool(floor) or self._contract.send == "block"
                verdict = "not sent" if blocked else "sent anyway (@send allow)"
                self._error(f"snapshot {verdict}: {'; '.join(floor + problems)}")
                if blocked:
                    return False
            version = self.state.next_version(self.cid, self.pid)
            frames = seal_message(
                self.config.fed_secret_key,
                self.names.fed,
                self.config.peer_id,
                "snapshot",
                version,
                data,
                self.chunk_size,
            )
            subject = self.names.stats(self.config.peer_id)
            # a few publishes in flight at once: JetStream acks pipeline well (~4 in flight)
            for i in range(0, len(frames), 4):
                await asyncio.gather(
                    *(
                        self.js.publish(f"{subject}.{i + k}", f)
                        for k, f in enumerate(frames[i : i + 4])
                    )
                )
            self.state.save_sent(self.cid, self.pid, data, digest)
            self._count("sndCount")
            self._sync(f"sent snapshot v{version}: {acc.n} rows, {len(data)} bytes")
            return True

    # ------------------------------------------------------------ consuming
    async def _consume(self, which: str) -> None:
        stream = self.names.stats_stream if which == "stats" else self.names.ctl_stream
        subject = self.names.stats_all if which == "stats" else self.names.ctl_all
        durable = self._durable(which)
        backoff = 0.2
        while not self._stopping:
            try:
                sub = await self.js.pull_subscribe(
                    subject,
                    durable=durable,
                    stream=stream,
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                        ack_wait=max(30.0, self.config.nats_req_timeout),
                    ),
                )
                backoff, generation = 0.2, self._generation
                while generation == self._generation and not self._stopping:
                    try:
                        msgs = await sub.fetch(64, timeout=FETCH_WAIT)
                    except (TimeoutError, nats.errors.TimeoutError):
                        continue
                    for msg in msgs:
                        await self._handle(msg.data)
                        await msg.ack()
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

    async def _handle(self, data: bytes) -> None:
        try:
            frame = read_frame(data)
            if frame.header["fed"] != self.names.fed or frame.header["peer"] == self.config.peer_id:
                return
            whole = self._reassembler.add(frame)
            if whole is None:
                return
            body = open_message(self.config.fed_secret_key, whole)
        except WireError as e:
            self._count("rcvError")
            self._error(f"unreadable message: {e}")
            return
        header = whole[0].header
        if header["kind"] == "snapshot":
            await self._receive_snapshot(header["peer"], header["version"], body)
        else:
            await self._receive_control(header["peer"], body)
        async with self.changed:  # accepted or refused: whoever waits may look again
            self.changed.notify_all()

    async def _receive_snapshot(self, peer: str, version: int, body: bytes) -> None:
        known = self.peers.get(peer)
        if known is not None and version <= known[0]:
            self._sync(f"ignored snapshot v{version} from {peer}: v{known[0]} is newer or same")
            return
        try:
            acc = decode_snapshot(body)
        except EngineError as e:
            self._count("rcvError")
            self._error(f"snapshot v{version} from {peer} is damaged: {e}")
            return
        problems = psr.violations(self._contract, acc)
        previous = known[1] if known else None
        floor = [
            p for p in (psr.floor_violation(acc), psr.increment_floor_violation(acc, previous)) if p
        ]
        if problems or floor:
            self._count("rcvContractError", peer)
            blocked = bool(floor) or self._contract.receive == "block"
            verdict = "refused" if blocked else "accepted anyway (@receive allow)"
            self._error(f"snapshot v{version} from {peer} {verdict}: {'; '.join(floor + problems)}")
            if blocked:
                return
        if not self.state.save_peer(self.cid, self.pid, peer, version, body):
            return
        self.peers[peer] = (version, acc)
        self._count("rcvCount")
        self._sync(f"received snapshot v{version} from {peer}: {acc.n} rows")

    async def _receive_control(self, sender: str, body: bytes) -> None:
        try:
            msg = orjson.loads(body)
            kind = msg["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(f"unreadable control message from {sender}")
            return
        if kind == "sync":
            if self.pulsing:
                self._sync(f"full sync requested by {sender}")
                self.wake()
            return
        if sender != self.config.admin_peer:
            self._error(f"ignored {kind!r} from {sender}: only the admin may send it")
            return
        if kind == "schedule" and int(msg["seq"]) > self.config.schedule_seq:
            self.config.sync_sched = parse_schedule(msg["schedule"]).text
            self.config.schedule_seq = int(msg["seq"])
            self._sync(f"schedule is now {self.config.sync_sched} (from the admin)")
        elif kind == "contract" and int(msg["seq"]) > self.config.contract_seq:
            self._contract = psr.parse_contract(msg["lines"])
            self.config.contract = list(msg["lines"])
            self.config.contract_seq = int(msg["seq"])
            self._sync(f"PSR contract updated by the admin ({len(self._contract.rules)} rules)")
        else:
            return
        self.state.save_config(self.cid, self.pid, self.config)
        self.wake()

    # ------------------------------------------------------------ requests
    async def _control(self, subject: str, body: dict[str, Any]) -> None:
        version = self.state.next_version(self.cid, self.pid)
        [frame] = seal_message(
            self.config.fed_secret_key,
            self.names.fed,
            self.config.peer_id,
            "control",
            version,
            orjson.dumps(body),
        )
        await self.js.publish(subject, frame)

    async def full_sync_request(self) -> None:
        await self._control(self.names.sync(self.config.peer_id), {"type": "sync"})
        self._sync("asked every peer to republish")

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

    async def request_join(self, token: str, extra: dict[str, Any]) -> dict[str, Any]:
        """Ask the admin to admit this peer with an invitation's token; its answer."""
        body = orjson.dumps({"type": "join", "token": token, "peer": self.config.peer_id, **extra})
        [frame] = seal_message(
            self.config.fed_secret_key, self.names.fed, self.config.peer_id, "control", 0, body
        )
        try:
            reply = await self.nc.request(
                self.names.join, frame, timeout=self.config.nats_req_timeout
            )
            answer = orjson.loads(
                open_message(self.config.fed_secret_key, [read_frame(reply.data)])
            )
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            raise Unreachable(
                f"the federation admin did not answer within {self.config.nats_req_timeout}s"
            ) from e
        return dict(answer)

    async def _on_join(self, msg: Any) -> None:
        assert self.join_handler is not None
        try:
            request = orjson.loads(open_message(self.config.fed_secret_key, [read_frame(msg.data)]))
            answer = self.join_handler(request)
        except (FederationError, SecurityError, ValueError) as e:
            answer = {"ok": False, "error": str(e)}
        [frame] = seal_message(
            self.config.fed_secret_key,
            self.names.fed,
            self.config.peer_id,
            "control",
            0,
            orjson.dumps(answer),
        )
        await msg.respond(frame)

    # ------------------------------------------------------------ reconnects
    async def _on_disconnected(self) -> None:
        if not self._stopping and self.nc is not None:
            self._error("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._reconnected.set()

    async def _on_error(self, e: Exception) -> None:
        if self.nc is not None:  # a first connection's failures are connect()'s to report
            self._error(f"NATS: {e}")

    async def _watch_reconnects(self) -> None:
        while True:
            await self._reconnected.wait()
            self._reconnected.clear()
            self._sync("reconnected to NATS; republishing")
            with contextlib.suppress(Exception):
                await self.ensure_streams()
            self._generation += 1
            if self.pulsing:
                self.wake()

    # ------------------------------------------------------------ merging, stats, logs
    def peer_accumulators(self) -> list[Accumulator]:
        """What this node merges: peers' newest snapshots (none for a centralized peer)."""
        if not self.reads_stats:
            return []
        return [acc for _, acc in self.peers.values()]

    def sync_stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "rcvContractError": dict(self.counters["rcvContractError"]),
            "errorLog": self.state.logs(self.cid, self.pid, "error"),
            "syncLog": self.state.logs(self.cid, self.pid, "sync"),
        }

    def _count(self, name: str, peer: str | None = None) -> None:
        if peer is None:
            self.counters[name] += 1
        else:
            self.counters[name][peer] = self.counters[name].get(peer, 0) + 1
        self.state.save_counters(self.cid, self.pid, self.counters)

    def _error(self, message: str) -> None:
        log.warning("federation %s/%s: %s", self.cid, self.pid, message)
        self.state.log(self.cid, self.pid, "error", message)

    def _sync(self, message: str) -> None:
        log.info("federation %s/%s: %s", self.cid, self.pid, message)
        self.state.log(self.cid, self.pid, "sync", message)
