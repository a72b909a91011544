"""kopf registrations: the thin layer between kopf and the reconcilers.

Every resource kind has one reconcile function (in `federations`, `peers`, `contracts`)
that is idempotent, so create, update, resume and the drift timer all call the same one.
This module alone writes status (conditions with `observedGeneration`), posts Events when
`Ready` changes, and turns an unfinished reconcile into kopf's retry: a create/update is
retried until Ready, a timer just reports. Finalizers exist only where something outside
Kubernetes must be removed (the Federation's stream); owned objects go with their owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from . import contracts, federations, peers, readiness
from .conditions import find, merge
from .errors import NatsUnavailable, RetryLater
from .kube import Kube
from .metrics import STREAM_OPERATIONS, timed
from .names import GROUP, MANAGER, VERSION
from .outcome import Outcome
from .types import Body, Obj

FEDERATIONS = (GROUP, VERSION, "federations")
PEERS = (GROUP, VERSION, "peers")
CONTRACTS = (GROUP, VERSION, "psrcontracts")

# How often each resource is reconciled again to undo drift, and how long an unready one
# waits at most for a change of its own (its node's Deployment) before it is looked at
# again. Read at import, as kopf takes them at registration.
RESYNC_SECONDS = float(os.environ.get("FEDSTATS_OPERATOR_RESYNC_SECONDS", "60"))
NOT_READY_DELAY = float(os.environ.get("FEDSTATS_OPERATOR_RETRY_SECONDS", "5"))
RETRY_AT_ONCE = 0.001  # kopf's delay after a wait that a change ended (0 means its default)
TIMER_EXIT_WAIT_S = 0.5

Reconcile = Callable[[Kube, Body], Awaitable[Outcome]]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Our own annotation and finalizer names; one API connection for all reconcilers."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    # Events: ours, posted with kopf.event, and kopf's own warnings and errors; not kopf's
    # "Handler ... succeeded" at INFO, one Event per Deployment change seen (of a 10-Peer
    # run's 317 API writes, 60 were Events, most of them those)
    settings.posting.level = logging.WARNING
    # A deleted object's finalizer goes once its timers have exited, and an exiting
    # operator leaves a timer that has not exited orphaned (its API connection open). A
    # stopped timer's resync is cut short (`_resync`), but one may be mid-patch: kopf waits
    # this long for it (its default: ten loop cycles), and after a deletion looks again
    # this often (its default, 60 s, outlasted `kubectl delete --timeout=60s`)
    settings.background.instant_exit_timeout = TIMER_EXIT_WAIT_S
    settings.background.cancellation_polling = TIMER_EXIT_WAIT_S
    settings.watching.server_timeout = 300
    info = credentials(settings)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: no service account, no kubeconfig")
    memo.kube = Kube(info)


def credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """The in-cluster service account, else the kubeconfig ($KUBECONFIG, ~/.kube/config),
    looked for when the operator logs in. kopf's own fallbacks are picked when its registry
    is made, at this module's import: one imported before KUBECONFIG was set (by a test,
    say) would never log in."""
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings)


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    return credentials(settings)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    try:
        await readiness.MEMBERSHIP.aclose()
    finally:  # the API connection is closed even when the pollers' closing fails
        kube = getattr(memo, "kube", None)
        if kube is not None:
            await kube.aclose()


def _plain(body: kopf.Body) -> Obj:
    """A plain, mutable copy of the resource for the pure builders."""
    return copy.deepcopy({k: body[k] for k in body})


async def _run(kind: str, reconcile: Reconcile, body: kopf.Body, patch: kopf.Patch,
               memo: kopf.Memo, *, retry_until_ready: bool) -> None:
    since = readiness.CHANGES.version(_keys(kind, body))  # a change during the reconcile counts
    with timed(kind):
        out = await reconcile(memo.kube, _plain(body))
        generation = body.metadata.get("generation", 0)
        old = body.status.get("conditions")
        new = merge(old, out.conditions, generation)
        patch.status["conditions"] = new
        patch.status["observedGeneration"] = generation
        for key, value in out.status.items():
            patch.status[key] = value
        _post_ready_event(body, find(old, "Ready"), find(new, "Ready"))
        for type_, reason, message in out.events:
            kopf.event(body, type=type_, reason=reason, message=message)
        ready = find(new, "Ready")
        unready = ready is not None and ready["status"] != "True"
        if kind == "Federation" and not unready:  # its Peers wait on it (their invitations)
            readiness.CHANGES.changed([(body.metadata.namespace or "", "PeersOf",
                                        body.metadata.name or "")])
        if out.error is None and not (retry_until_ready and unready):
            return
    if out.error is not None and (not retry_until_ready
                                  or not isinstance(out.error, kopf.TemporaryError)):
        raise out.error  # a timer's (retried on its own delay), or permanent
    # Event-driven: wait for a change of the resource's own (its node's Deployment), at most
    # the error's delay, then retry at once; the status patch above is kopf's to apply.
    delay = out.error.delay if isinstance(out.error, kopf.TemporaryError) else NOT_READY_DELAY
    await readiness.CHANGES.wait(_keys(kind, body), delay or NOT_READY_DELAY, since)
    message = (str(out.error) if out.error is not None
               else f"not Ready yet: {(ready or {}).get('message', '')}")
    raise RetryLater(message, delay=RETRY_AT_ONCE) from out.error


async def _resync(kind: str, reconcile: Reconcile, body: kopf.Body, patch: kopf.Patch,
                  memo: kopf.Memo, stopped: kopf.DaemonStopped) -> None:
    """A timer's reconcile, abandoned the moment kopf stops the timer (`stopped`, the flag
    kopf passes a timer: its object deleted, the operator exiting). A reconcile may wait on
    a node (an admin node up but still bootstrapping is asked for up to
    `federations.BOOTSTRAP_WAIT_S`, a joining peer for `peers.JOIN_WAIT_S`), and the
    object's finalizer is not removed until its timers have exited. Reconciles are
    idempotent: one cut short leaves nothing a later one cannot do; its status is not
    written (the patch is filled only once the reconcile has returned)."""
    work = asyncio.ensure_future(_run(kind, reconcile, body, patch, memo,
                                      retry_until_ready=False))
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        work.cancel()  # nothing to cancel once it has returned
    with contextlib.suppress(asyncio.CancelledError):
        await work  # its error, if it ended with one, is kopf's to report and retry


def _keys(kind: str, body: kopf.Body) -> list[readiness.Key]:
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    keys: list[readiness.Key] = [(namespace, kind, name)]
    if kind == "Peer":
        ref = (body.spec.get("federationRef") or {}).get("name")
        if ref:  # a Peer waits on its admin node too (its invitation, its joining)
            keys.append((namespace, "PeersOf", str(ref)))
    return keys


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGER})
async def child_changed(body: kopf.Body, **_: Any) -> None:
    """A node's Deployment changed (its pod became ready, say): wake its owner's reconcile."""
    readiness.CHANGES.changed(readiness.child_keys(body.metadata.namespace or "",
                                                   dict(body.metadata.labels or {})))


def _post_ready_event(body: kopf.Body, old: Body | None, new: Body | None) -> None:
    if new is None or (old is not None and old.get("status") == new["status"]
                       and old.get("reason") == new["reason"]):
        return
    if new["status"] == "True":
        kopf.event(body, type="Normal", reason="Ready", message=new["message"])
    else:
        kopf.warn(body, reason=new["reason"], message=new["message"])


# ---- Federation


@kopf.on.resume(*FEDERATIONS, id="reconcile")
@kopf.on.create(*FEDERATIONS, id="reconcile")
@kopf.on.update(*FEDERATIONS, id="reconcile")
async def reconcile_federation(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo,
                               **_: Any) -> None:
    await _run("Federation", federations.reconcile, body, patch, memo, retry_until_ready=True)


@kopf.timer(*FEDERATIONS, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync_federation(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo,
                            **kwargs: Any) -> None:
    await _resync("Federation", federations.reconcile, body, patch, memo, kwargs["stopped"])


# Deleting a Federation (a Peer) retries NATS (the admin node) this many times, each after
# the error's delay, before letting it go with its streams left behind (still merged), and
# saying so in an Event: a namespace must never hang Terminating.
FINALIZER_ATTEMPTS = int(os.environ.get("FEDSTATS_OPERATOR_FINALIZER_ATTEMPTS", "20"))


@kopf.on.delete(*FEDERATIONS, id="delete-streams")
async def delete_federation(body: kopf.Body, memo: kopf.Memo, retry: int = 0,
                            **_: Any) -> None:
    try:
        deleted = await federations.finalize(memo.kube, _plain(body))
    except NatsUnavailable as e:
        STREAM_OPERATIONS.labels("delete", type(e).__name__).inc()
        if retry + 1 < FINALIZER_ATTEMPTS:
            raise
        # NATS gone for good (uninstalled first, its auth Secret deleted with the namespace):
        # holding the finalizer would leave the namespace Terminating forever
        kopf.warn(body, reason="StreamsLeft",
                  message=f"gave up deleting the JetStream streams after {retry + 1} tries: {e}")
        return
    except Exception as e:
        STREAM_OPERATIONS.labels("delete", type(e).__name__).inc()
        raise
    STREAM_OPERATIONS.labels("delete", "ok").inc()
    kopf.event(body, type="Normal", reason="StreamsDeleted",
              message=f"JetStream streams deleted: {', '.join(deleted) or 'none existed'}")


# ---- Peer


@kopf.on.resume(*PEERS, id="reconcile")
@kopf.on.create(*PEERS, id="reconcile")
@kopf.on.update(*PEERS, id="reconcile")
async def reconcile_peer(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await _run("Peer", peers.reconcile, body, patch, memo, retry_until_ready=True)


@kopf.on.delete(*PEERS, id="leave-federation")
async def delete_peer(body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    try:
        said = await peers.finalize(memo.kube, _plain(body))
    except RetryLater as e:
        if retry + 1 < FINALIZER_ATTEMPTS:
            raise
        kopf.warn(body, reason="PeerNotRemoved",
                  message=f"gave up asking the admin node to remove this peer after "
                          f"{retry + 1} tries (its last snapshot stays merged): {e}")
        return
    kopf.event(body, type="Normal", reason="PeerRemoved", message=said)


@kopf.timer(*PEERS, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync_peer(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo,
                      **kwargs: Any) -> None:
    await _resync("Peer", peers.reconcile, body, patch, memo, kwargs["stopped"])


# ---- PsrContract


@kopf.on.resume(*CONTRACTS, id="reconcile")
@kopf.on.create(*CONTRACTS, id="reconcile")
@kopf.on.update(*CONTRACTS, id="reconcile")
async def reconcile_contract(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo,
                             **_: Any) -> None:
    # An invalid contract is reported in status and not retried: only an edit can fix it.
    await _run("PsrContract", contracts.reconcile, body, patch, memo,
               retry_until_ready=False)


@kopf.timer(*CONTRACTS, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync_contract(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo,
                          **kwargs: Any) -> None:
    await _resync("PsrContract", contracts.reconcile, body, patch, memo, kwargs["stopped"])
