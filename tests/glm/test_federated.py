"""Federated `lr` / `poisson` over a real nats-server and real `fedstats node` processes.

Rows of each dataset are split at random between 2–4 nodes (one federation per dataset,
the same four node processes), a random tenth forgotten again at every site; the fit the
admin coordinates equals scikit-learn's on the pooled remaining rows. Then the faults: a
member killed mid-fit fails the job naming it, and answers again once restarted; rounds
duplicated and replayed late on the wire change nothing; a member under the floor, or
without kept rows, refuses and the job says who.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import nats
import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as lm

from fedstats.node.client import ApiError, Client, ksvs_columns
from fedstats.node.federation.subjects import Names
from fedstats.node.security.keys import new_secret_key
from fedstats_harness.localnet import LocalNodes
from fedstats_harness.natsproc import NatsServer
from fedstats_harness.waiting import eventually

pytestmark = pytest.mark.slow
RTOL, RTOL_L1 = 1e-8, 1e-6
NODES = ("admin", "p1", "p2", "p3")
TIMEOUT = 4  # nats_req_timeout of these federations: a silent member fails a fit after it


def frame(x: np.ndarray, y: np.ndarray, ytype: str) -> dict[str, Any]:
    names = [f"x{j}" for j in range(x.shape[1])]
    ys = [str(int(v)) if ytype == "B" else (str(v) if ytype == "T" else repr(float(v)))
          for v in y]
    return {"attributeNames": [*names, "y"], "attributeTypes": ["C"] * len(names) + [ytype],
            "data": [[*map(repr, map(float, r)), t] for r, t in zip(x, ys, strict=True)]}


def dataset(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    if name == "cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
        return (x - x.mean(0)) / x.std(0), y.astype(float), "B"
    if name in ("iris", "wine"):
        d = datasets.load_iris() if name == "iris" else datasets.load_wine()
        return d.data, d.target_names[d.target], "T"
    x, _ = datasets.load_diabetes(return_X_y=True)
    x = x / x.std(0)
    rng = np.random.default_rng(7)
    return x, rng.poisson(np.exp(0.5 + x @ rng.normal(scale=0.2, size=x.shape[1]))) * 1.0, "C"


@dataclass
class Fed:
    """One federation (project `pid` on each of its sites) and the rows that remain."""

    pid: str
    sites: tuple[str, ...]
    clients: dict[str, Client]
    x: np.ndarray
    y: np.ndarray
    ytype: str
    key: str = ""
    builds: list[str] = field(default_factory=list)

    @property
    def admin(self) -> Client:
        return self.clients["admin"]

    def build(self, algo: str, extra: dict[str, str], model: str = "m",
              inputs: list[str] | None = None) -> dict[str, Any]:
        context: dict[str, Any] = {"targetAttributeNames": ["y"], "extraParameters": extra}
        if inputs:
            context["inputAttributeNames"] = inputs
        return self.admin.build(self.pid, model, algo, context, timeout=120)


@pytest.fixture(scope="module")
def net(nats_server: NatsServer, local_nodes: Callable[..., LocalNodes]) -> LocalNodes:
    return local_nodes(NODES, "c1", new_secret_key())


def federate(net: LocalNodes, nats_url: str, pid: str, sites: tuple[str, ...], seed: int,
             keep: Callable[[str], bool] = lambda _: True,
             sizes: dict[str, int] | None = None) -> Fed:
    """Federation `pid` over `sites`, the dataset split at random between them, a random
    tenth of each site's rows forgotten again; pulses on, the admin holding every row."""
    x, y, ytype = dataset(pid.split("-")[0])
    c = net.clients
    c["admin"].fed_create(pid, {"fed_name": pid, "nats_hosts": nats_url, "sync_sched": "s1",
                                "nats_req_timeout": TIMEOUT, "keepRows": str(keep("admin")),
                                "nats_stream_max_memory": 16 << 20})
    for peer in sites[1:]:
        invite = c["admin"].fed_invitation(pid, "pw", fed_peer_id=peer)
        c[peer].fed_join(pid, invite, "pw", keepRows=str(keep(peer)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    if sizes:  # the sites not sized share what the others leave
        free = [s for s in sites if s not in sizes]
        share = (len(y) - sum(sizes.values())) // len(free)
        counts = [sizes.get(s, share) for s in sites]
        cuts = np.cumsum(counts)[:-1]
    else:  # random sizes, each site at least 45 rows (over the floor after its forget)
        spare = len(y) - 45 * len(sites)
        counts = 45 + np.floor(rng.dirichlet(np.ones(len(sites))) * spare).astype(int)
        cuts = np.cumsum(counts)[:-1]
    remaining = []
    for site, part in zip(sites, np.split(order, cuts), strict=True):
        c[site].learn(pid, frame(x[part], y[part], ytype))
        gone = rng.choice(part, size=len(part) // 10, replace=False)
        if len(gone):
            c[site].forget(pid, frame(x[gone], y[gone], ytype))
        remaining.append(np.setdiff1d(part, gone))
        c[site].start_pulse(pid)
    keep_rows = np.sort(np.concatenate(remaining))
    fed = Fed(pid, sites, c, x[keep_rows], y[keep_rows], ytype)
    fed.key = c["admin"].fed_info(pid)["fed_secret_key"]
    return fed


def synced(fed: Fed) -> Fed:
    eventually(lambda: fed.admin.project_info(fed.pid)["rows"] == len(fed.y), timeout=60,
               what=f"the admin of {fed.pid} to hold every remaining row")
    return fed


@pytest.fixture(scope="module")
def cancer(net: LocalNodes, nats_server: NatsServer) -> Fed:
    return federate(net, nats_server.url, "cancer", NODES, seed=1)


@pytest.fixture(scope="module")
def iris(net: LocalNodes, nats_server: NatsServer) -> Fed:
    return federate(net, nats_server.url, "iris", ("admin", "p1"), seed=2)


@pytest.fixture(scope="module")
def wine(net: LocalNodes, nats_server: NatsServer) -> Fed:
    return federate(net, nats_server.url, "wine", ("admin", "p1", "p2"), seed=3)


@pytest.fixture(scope="module")
def counts(net: LocalNodes, nats_server: NatsServer) -> Fed:
    return federate(net, nats_server.url, "counts", NODES, seed=4)


@pytest.fixture
def fed(request: pytest.FixtureRequest) -> Fed:
    return synced(request.getfixturevalue(request.param))


def close(actual: Any, expected: Any, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol, 0)


def predicted(fed: Fed, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    fake = np.array([labels[0]] * len(fed.y)) if fed.ytype == "T" else np.zeros(len(fed.y))
    answer = fed.admin.predict(fed.pid, "m", frame(fed.x, fake, fed.ytype))["values"]
    cols = ksvs_columns(answer["KSVSMap"])
    return np.array([[float(v) for v in cols[f"proba_{a}"]] for a in labels]).T, cols["res"]


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("fed", ["cancer"], indirect=True)
@pytest.mark.parametrize("penalty", ["L2", "L1"])
def test_federated_binary_lr_equals_scikit_learn_on_the_pooled_rows(fed: Fed,
                                                                    penalty: str) -> None:
    alpha = 0.01
    info = fed.build("lr", {"penalty": penalty, "alpha": str(alpha)})
    n = len(fed.y)
    assert info["n"] == n and info["converged"] and info["rounds"] <= 20
    assert info["federation"]["members"] == list(fed.sites[1:])
    if penalty == "L1":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = lm.LogisticRegression(C=1 / (alpha * n), l1_ratio=1.0, solver="saga",
                                        tol=1e-12, max_iter=100_000).fit(fed.x, fed.y)
        np.testing.assert_allclose(info["coef"][0], ref.coef_[0], RTOL_L1, 1e-9)
        return
    ref = lm.LogisticRegression(C=1 / (alpha * n), solver="newton-cholesky", tol=1e-14,
                                max_iter=1000).fit(fed.x, fed.y)
    close(info["coef"][0], ref.coef_[0])
    close(info["intercept"], ref.intercept_)
    proba, classes = predicted(fed, ["0", "1"])
    close(proba, ref.predict_proba(fed.x))
    assert classes == [str(int(v)) for v in ref.predict(fed.x)]


@pytest.mark.parametrize("fed", ["cancer"], indirect=True)
def test_federated_binary_lr_without_penalty_equals_scikit_learn(fed: Fed) -> None:
    # four inputs: the classes are not separable, so the unpenalized optimum exists
    info = fed.build("lr", {"penalty": "NONE"}, model="none", inputs=["x0", "x1", "x2", "x3"])
    ref = lm.LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14,
                                max_iter=1000).fit(fed.x[:, :4], fed.y)
    close(info["coef"][0], ref.coef_[0])
    close(info["intercept"], ref.intercept_)


@pytest.mark.parametrize("fed", ["counts"], indirect=True)
def test_federated_poisson_equals_scikit_learn_on_a_count_target(fed: Fed) -> None:
    info = fed.build("poisson", {"alpha": "0.1"})
    ref = lm.PoissonRegressor(alpha=0.1, solver="newton-cholesky", tol=1e-14,
                              max_iter=1000).fit(fed.x, fed.y)
    close(info["coef"][0], ref.coef_)
    close(info["intercept"], [ref.intercept_])
    answer = fed.admin.predict(fed.pid, "m", frame(fed.x, fed.y, "C"))["values"]["KSVSMap"]
    close([float(v) for v in ksvs_columns(answer)["res"]], ref.predict(fed.x))
    info = fed.build("poisson", {"penalty": "NONE"}, model="none")
    ref = lm.PoissonRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-14,
                              max_iter=1000).fit(fed.x, fed.y)
    close(info["coef"][0], ref.coef_)


@pytest.mark.parametrize("fed", ["iris", "wine"], indirect=True)
def test_federated_multinomial_lr_equals_scikit_learn(fed: Fed) -> None:
    info = fed.build("lr", {"alpha": "0.01"})
    ref = lm.LogisticRegression(C=1 / (0.01 * len(fed.y)), solver="newton-cholesky",
                                tol=1e-14, max_iter=1000).fit(fed.x, fed.y)
    assert info["labels"] == list(ref.classes_)
    close(info["coef"], ref.coef_)
    close(info["intercept"], ref.intercept_)
    proba, classes = predicted(fed, list(ref.classes_))
    close(proba, ref.predict_proba(fed.x))
    assert classes == list(ref.predict(fed.x))


@pytest.mark.parametrize("fed", ["wine"], indirect=True)
def test_the_finished_model_reaches_every_member_in_decentralized_mode(fed: Fed) -> None:
    info = fed.build("lr", {"alpha": "0.01"}, model="shared")
    for peer in fed.sites[1:]:
        c = fed.clients[peer]
        eventually(lambda c=c: "shared" in c.models(fed.pid), what=f"{peer} to get the model")
        assert c.model(fed.pid, "shared")["coef"] == info["coef"]
    rows = frame(fed.x[:5], fed.y[:5], "T")
    assert (fed.clients["p2"].predict(fed.pid, "shared", rows)["values"]
            == fed.admin.predict(fed.pid, "shared", rows)["values"])


# ------------------------------------------------------------------ faults
class Replayer:
    """A NATS client on the federation's GLM subjects that duplicates every ask and reply
    at once and, at each new ask, replays every reply seen before (late, out of round)."""

    def __init__(self, url: str, fed: str) -> None:
        self.url, self.names = url, Names.of(fed)
        self.seen: list[tuple[str, bytes]] = []
        self.replayed = 0
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Replayer:
        self._thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        nc = await nats.connect(self.url)

        async def again(msg: Any) -> None:
            if msg.headers and msg.headers.get("replay"):
                return
            replay = {"replay": "1"}
            if msg.subject == self.names.glm_ask:
                for subject, data in self.seen:  # every earlier reply, late
                    await nc.publish(subject, data, headers=replay)
                    self.replayed += 1
            else:
                self.seen.append((msg.subject, msg.data))
            await nc.publish(msg.subject, msg.data, headers=replay)
            self.replayed += 1

        await nc.subscribe(f"{self.names.prefix}.glm.>", cb=again)
        await nc.flush()
        self.ready.set()
        await self._stop.wait()
        await nc.close()


@pytest.mark.parametrize("fed", ["cancer"], indirect=True)
def test_duplicated_and_late_round_messages_change_nothing(fed: Fed,
                                                           nats_server: NatsServer) -> None:
    clean = fed.build("lr", {"alpha": "0.02"}, model="clean")
    with Replayer(nats_server.url, fed.pid) as replayer:
        noisy = fed.build("lr", {"alpha": "0.02"}, model="noisy")
    assert replayer.replayed > 2 * clean["rounds"]
    assert noisy["coef"] == clean["coef"] and noisy["intercept"] == clean["intercept"]
    assert noisy["rounds"] == clean["rounds"] and noisy["losses"] == clean["losses"]


@pytest.mark.parametrize("fed", ["cancer"], indirect=True)
def test_a_member_killed_mid_fit_fails_the_job_naming_it_and_answers_once_restarted(
        fed: Fed, net: LocalNodes, nats_server: NatsServer) -> None:
    victim = net.nodes["p3"]
    names = Names.of(fed.pid)
    asks = 0

    async def kill_at_second_round() -> None:
        nonlocal asks
        nc = await nats.connect(nats_server.url)
        second = asyncio.Event()

        async def on_ask(_msg: Any) -> None:
            nonlocal asks
            asks += 1
            if asks == 2:
                victim.kill()
                second.set()

        await nc.subscribe(names.glm_ask, cb=on_ask)
        await nc.flush()
        job = await asyncio.to_thread(
            fed.admin.start_build, fed.pid, "killed", "lr",
            {"targetAttributeNames": ["y"], "extraParameters": {"alpha": "0.01"}})
        await asyncio.wait_for(second.wait(), 60)
        await nc.close()
        with pytest.raises(ApiError) as e:
            await asyncio.to_thread(fed.admin.wait_job, job, 60)
        assert "member p3" in e.value.message and "did not answer" in e.value.message

    try:
        asyncio.run(kill_at_second_round())
        assert any("member p3" in m for m in fed.admin.error_log(fed.pid))
        assert fed.admin.sync_stats(fed.pid)["glmFitError"] >= 1
    finally:
        victim.start()
    eventually(lambda: fed.clients["p3"].fed_info(fed.pid)["is_pulsing"],
               what="p3 to pulse again")
    info = fed.build("lr", {"alpha": "0.01"}, model="after")
    ref = lm.LogisticRegression(C=1 / (0.01 * len(fed.y)), solver="newton-cholesky",
                                tol=1e-14, max_iter=1000).fit(fed.x, fed.y)
    close(info["coef"][0], ref.coef_[0])


def test_a_member_below_the_floor_refuses_and_is_counted(net: LocalNodes,
                                                         nats_server: NatsServer) -> None:
    # iris has 4 inputs and 3 target levels: 7 columns, a floor of 12 rows; p2 holds 9
    fed = federate(net, nats_server.url, "iris-floor", ("admin", "p2"), seed=6,
                   sizes={"p2": 10})
    before = fed.clients["p2"].sync_stats(fed.pid)["sndContractError"]
    with pytest.raises(ApiError) as e:
        fed.build("lr", {})
    assert "member p2 refused" in e.value.message and "floor" in e.value.message
    stats = fed.clients["p2"].sync_stats(fed.pid)
    assert stats["sndContractError"] > before and stats["glmRefused"] >= 1
    assert any("floor" in m for m in fed.admin.error_log(fed.pid))


def test_a_member_that_does_not_keep_rows_refuses_the_fit(net: LocalNodes,
                                                          nats_server: NatsServer) -> None:
    fed = federate(net, nats_server.url, "cancer-plain", ("admin", "p1"), seed=7,
                   keep=lambda site: site != "p1")
    with pytest.raises(ApiError) as e:
        fed.build("lr", {})
    assert e.value.http_status == 400
    assert "member p1 refused" in e.value.message and "keep rows" in e.value.message
    assert "glmFitError" in fed.admin.sync_stats(fed.pid)


def test_only_the_admin_may_fit(cancer: Fed) -> None:
    with pytest.raises(ApiError) as e:
        cancer.clients["p1"].start_build(cancer.pid, "m", "lr", {"targetAttributeNames": ["y"]})
    assert e.value.http_status == 403


@pytest.fixture(autouse=True)
def _every_node_up(net: LocalNodes) -> Iterator[None]:
    """A test that kills a node restarts it: the next one finds every node up."""
    yield
    for node in net.nodes.values():
        if not node.running:
            node.start()


def test_a_member_failing_its_contract_refuses_and_is_counted(net: LocalNodes,
                                                             nats_server: NatsServer) -> None:
    fed = federate(net, nats_server.url, "wine-contract", ("admin", "p3"), seed=8)
    rule = "COUNT(x0) >= 100000"
    fed.admin.add_contract(fed.pid, [rule])
    eventually(lambda: rule in fed.clients["p3"].fed_info(fed.pid)["contract"],
               what="p3 to adopt the admin's contract")
    with pytest.raises(ApiError) as e:
        fed.build("lr", {})
    assert "member p3 refused" in e.value.message and "PSR contract" in e.value.message
    stats = fed.clients["p3"].sync_stats(fed.pid)
    assert stats["glmRefused"] >= 1 and stats["sndContractError"] >= 1
    assert any("PSR contract" in m and "GLM fit" in m for m in stats["errorLog"])
