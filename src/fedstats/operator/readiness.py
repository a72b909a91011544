"""Event-driven readiness: a reconcile that is not Ready waits for what it waits on.

Two things a Federation or Peer waits on, and how each is heard of:

- its node's Deployment becoming Available: kopf watches the operator's Deployments
  (`handlers.child_changed`) and `Changes.changed` wakes the reconciles of their owner
  (and, for an admin node, those of the federation's Peers), so the retry runs at once
  instead of after a timer;
- a node's own answer (the admin node listing a peer as joined, an admin node finishing
  its bootstrap): nothing in Kubernetes changes then, and the node has no way to call the
  operator, so one `Membership` poller per federation asks the admin node a few times a
  second while any Peer waits, and wakes each Peer the moment its id is listed (one
  request per interval for the federation, however many Peers wait).

The resync timers stay, only to undo drift.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from .nodeapi import NodeApi

log = logging.getLogger("fedstats.operator.readiness")

Key = tuple[str, str, str]  # (namespace, kind, name): "Federation" / "Peer" / "PeersOf"
POLL_S = 0.2  # how often a waited-on node is asked again


class Changes:
    """Wakes reconciles waiting for a change of something of theirs.

    Each key counts its changes, so a change that came while the reconcile was still
    running (before it started to wait) ends the wait at once instead of being missed.
    """

    def __init__(self) -> None:
        self._waiting: dict[Key, set[asyncio.Event]] = {}
        self._counts: dict[Key, int] = {}

    def version(self, keys: Iterable[Key]) -> tuple[int, ...]:
        """Where the changes of `keys` stand now: pass it to `wait` as `since`."""
        return tuple(self._counts.get(key, 0) for key in keys)

    def changed(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self._counts[key] = self._counts.get(key, 0) + 1
            for event in self._waiting.get(key, ()):
                event.set()

    async def wait(self, keys: Iterable[Key], timeout: float,
                   since: tuple[int, ...] | None = None) -> bool:
        """True when woken by a change (or one came after `since`), False after `timeout`."""
        keys = list(keys)
        if since is not None and self.version(keys) != since:
            return True
        event = asyncio.Event()
        for key in keys:
            self._waiting.setdefault(key, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            for key in keys:
                waiters = self._waiting.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiting[key]


def child_keys(namespace: str, labels: dict[str, str]) -> list[Key]:
    """Whose reconciles a change of a node's Deployment (by its labels) concerns. Pure."""
    owner = labels.get("app.kubernetes.io/instance", "")
    component = labels.get("app.kubernetes.io/component")
    if component == "admin":
        return [(namespace, "Federation", owner), (namespace, "PeersOf", owner)]
    if component == "peer":
        return [(namespace, "Peer", owner)]
    return []


@dataclass
class _Poll:
    api: NodeApi
    pid: str
    waiters: dict[str, set[asyncio.Future[None]]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class Membership:
    """Waits for peers to be listed by their admin node, one poller per federation."""

    def __init__(self) -> None:
        self._polls: dict[tuple[str, str], _Poll] = {}

    async def joined(self, api: NodeApi, pid: str, peer: str, timeout: float) -> bool:
        """True once the admin node lists `peer`; False after `timeout` seconds."""
        key = (api.url, pid)
        poll = self._polls.get(key)
        if poll is None:
            poll = self._polls[key] = _Poll(api, pid)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        poll.waiters.setdefault(peer, set()).add(future)
        if poll.task is None or poll.task.done():
            poll.task = asyncio.create_task(self._run(key, poll), name=f"membership {pid}")
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiting = poll.waiters.get(peer)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del poll.waiters[peer]
            future.cancel()

    async def _run(self, key: tuple[str, str], poll: _Poll) -> None:
        try:
            while poll.waiters:
                try:
                    info = await poll.api.fed_info(poll.pid)
                except Exception as e:  # the node restarting or slow: ask again, keep going
                    log.debug("membership of %s: %s", poll.pid, e)
                else:
                    known = set(info.get("peersInfo") or {})
                    for peer in [p for p in poll.waiters if p in known]:
                        for future in poll.waiters.pop(peer):
                            if not future.done():
                                future.set_result(None)
                await asyncio.sleep(POLL_S)  # another process's state, read over REST
        finally:
            if self._polls.get(key) is poll:
                del self._polls[key]

    async def aclose(self) -> None:
        """Stops this event loop's pollers (tests run operators side by side, one loop each)."""
        loop = asyncio.get_running_loop()
        tasks = [p.task for p in self._polls.values()
                 if p.task is not None and p.task.get_loop() is loop]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


CHANGES = Changes()  # the operator's one instance of each (one event loop)
MEMBERSHIP = Membership()
