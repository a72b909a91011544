"""A resync timer gives way the moment kopf stops it (its object deleted, the operator
exiting): kopf removes a deleted object's finalizer only once the object's timers have
exited, and a reconcile may wait on a node for up to half a minute (an admin node up but
not answering). A resync that went on waiting held `kubectl delete` past its timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
import yaml

from fedstats.operator import handlers
from fedstats.operator.conditions import Condition
from fedstats.operator.errors import NodeUnreachable
from fedstats.operator.kube import Kube
from fedstats.operator.outcome import Outcome
from fedstats.operator.types import Body


class Stopped:
    """Stands in for the `stopped` flag kopf hands a timer (`kopf.DaemonStopped`), of which
    only its documented `await stopped.wait()` is used; kopf sets it outside any handler."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> Stopped:
        await self._event.wait()
        return self


def federation() -> kopf.Body:
    raw: dict[str, Any] = {"apiVersion": "fedstats.io/v1alpha1", "kind": "Federation",
                           "metadata": {"namespace": "ns", "name": "demo", "generation": 3},
                           "spec": {}, "status": {}}
    return kopf.Body(raw)  # type: ignore[arg-type]


def memo() -> kopf.Memo:
    m = kopf.Memo()
    m.kube = None  # the reconciles below never call the API
    return m


def test_a_resync_waiting_on_a_node_is_abandoned_when_kopf_stops_it_and_writes_nothing():
    entered, seen = asyncio.Event(), []

    async def waits_on_a_node(kube: Kube, fed: Body) -> Outcome:
        entered.set()
        try:
            await asyncio.sleep(3600)  # an admin node that never answers
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return Outcome()

    async def scenario() -> kopf.Patch:
        patch, stopped = kopf.Patch(), Stopped()
        timer = asyncio.create_task(handlers._resync(
            "Federation", waits_on_a_node, federation(), patch, memo(), stopped))  # type: ignore[arg-type]
        await entered.wait()
        stopped.set()  # kopf: the Federation is being deleted
        await asyncio.wait_for(timer, 10)
        return patch

    patch = asyncio.run(scenario())
    assert seen == ["cancelled"]
    assert not patch  # no half-observed status written on the way out


def test_a_resync_that_finishes_writes_its_status_and_leaves_no_waiter_behind():
    async def answers(kube: Kube, fed: Body) -> Outcome:
        out = Outcome()
        out.add(Condition("StreamReady", "True", "Created", "stream there"))
        return out

    async def scenario() -> tuple[kopf.Patch, set[asyncio.Task[Any]]]:
        patch = kopf.Patch()
        await handlers._resync("Federation", answers, federation(), patch, memo(),
                               Stopped())  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the flag's waiter, cancelled, finishes
        return patch, asyncio.all_tasks() - {asyncio.current_task()}

    patch, left = asyncio.run(scenario())
    assert patch["status"]["observedGeneration"] == 3
    assert [c["type"] for c in patch["status"]["conditions"]] == ["StreamReady"]
    assert left == set()


def test_a_resync_that_fails_raises_its_error_for_kopf_to_report():
    async def unreachable(kube: Kube, fed: Body) -> Outcome:
        out = Outcome()
        out.fail(Condition("FederationConfigured", "False", "NodeUnreachable", "no answer"),
                 NodeUnreachable("node http://x cannot be reached", delay=10))
        return out

    async def scenario() -> kopf.Patch:
        patch = kopf.Patch()
        await handlers._resync("Federation", unreachable, federation(), patch, memo(),
                               Stopped())  # type: ignore[arg-type]
        return patch

    with pytest.raises(NodeUnreachable, match="cannot be reached"):
        asyncio.run(scenario())


def test_kopf_waits_for_a_stopping_timer_and_looks_again_within_a_second(monkeypatch):
    # no credentials (the login is not what is checked): configure stops after the settings
    monkeypatch.setattr(handlers, "credentials", lambda settings: None)
    settings = kopf.OperatorSettings()
    with pytest.raises(kopf.PermanentError, match="no Kubernetes credentials"):
        asyncio.run(handlers.configure(settings=settings, memo=kopf.Memo()))
    assert settings.background.cancellation_polling <= 1  # kopf's default: 60
    # a timer mid-patch is waited for, not left orphaned (kopf's default: ten loop cycles)
    assert settings.background.instant_exit_timeout is not None


def test_the_operator_logs_in_with_a_kubeconfig_named_after_its_module_was_imported(
        monkeypatch, tmp_path):
    # this module imported `handlers` (and so made kopf's registry) before KUBECONFIG was set
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(config))
    info = handlers.credentials(kopf.OperatorSettings())
    assert info is not None and (info.server, info.token) == ("https://127.0.0.1:6443", "t0ken")
