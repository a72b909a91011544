"""A node that federates itself at startup, from `FEDSTATS_*` variables (the operator's pods).

    FEDSTATS_ROLE                admin | peer (absent: no bootstrap)
    FEDSTATS_CUSTOMER            the customer owning the project (default: the only one)
    FEDSTATS_PROJECT             the project id (default: FEDSTATS_FEDERATION, and for a
                                 peer without it the invitation's fed_name)
    FEDSTATS_ENGINE              numpy | cupy: the engine of new projects (cpu | gpu; the
                                 Hub's default, cpu where no GPU is found)
  admin
    FEDSTATS_FEDERATION          fed_name
    FEDSTATS_TOPOLOGY            decentralized | centralized | hybrid
    FEDSTATS_SYNC_SCHEDULE       m30, h3, ... (a change is sent to the peers on restart)
    FEDSTATS_NATS_URL            one or more servers, comma separated
    FEDSTATS_NATS_REQ_TIMEOUT    seconds
    FEDSTATS_NATS_USER / FEDSTATS_NATS_PASSWORD, or FEDSTATS_NATS_TOKEN
    FEDSTATS_FEDERATION_KEY      Base64 of 32 bytes: the federation uses this key
    FEDSTATS_STREAM_MAX_MEMORY   bytes of the statistics stream
  peer
    FEDSTATS_INVITATION, FEDSTATS_INVITATION_PASSWORD
    FEDSTATS_NATS_URL / _REQ_TIMEOUT  where *this* node reaches NATS (over the invitation's)
    FEDSTATS_NATS_USER / _PASSWORD / _TOKEN  only when the invitation carries no credentials

Reading the environment is pure (`read_plan`); acting on it (`Bootstrap`) is idempotent
across restarts, because a pod is restarted at will: an admin whose federation exists
keeps it, a peer already joined never redeems its one-time invitation again. Acting runs
in the background, so readiness never waits for NATS or the admin: what is unreachable
(`Unreachable`) is retried with backoff, what cannot work (a wrong password, a project
that exists with another federation) is logged once and left. Logs name causes, never
the password, the invitation or a key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..security.errors import SecurityError
from ..security.invites import open_invite
from ..service import ServiceError
from .errors import BootstrapError, FederationError, Unreachable
from .hub import Hub
from .state import FedConfig

log = logging.getLogger("fedstats.federation.bootstrap")

ENGINES = {"numpy": "cpu", "cupy": "gpu"}
FIRST_RETRY_S, LAST_RETRY_S = 0.5, 30.0

# FEDSTATS_* -> create/createJoin option (the admin's whole set; a peer's overrides)
_ADMIN_OPTIONS = {
    "FEDSTATS_FEDERATION": "fed_name",
    "FEDSTATS_TOPOLOGY": "fed_type",
    "FEDSTATS_SYNC_SCHEDULE": "sync_sched",
    "FEDSTATS_NATS_URL": "nats_hosts",
    "FEDSTATS_NATS_REQ_TIMEOUT": "nats_req_timeout",
    "FEDSTATS_NATS_USER": "nats_sec_user",
    "FEDSTATS_NATS_PASSWORD": "nats_sec_passwd",
    "FEDSTATS_NATS_TOKEN": "nats_sec_token",
    "FEDSTATS_FEDERATION_KEY": "fed_secret_key",
    "FEDSTATS_STREAM_MAX_MEMORY": "nats_stream_max_memory",
}
_PEER_LOCAL = ("nats_hosts", "nats_req_timeout")
_CREDENTIALS = ("nats_sec_user", "nats_sec_passwd", "nats_sec_token", "nats_sec_nkey_seed")


@dataclass(frozen=True)
class Plan:
    """What the environment asks this node to be; `options` hold secrets: never log them."""

    role: str
    customer: str
    project: str | None
    engine: str
    options: dict[str, Any] = field(repr=False)
    invitation: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def engine_of(env: Mapping[str, str]) -> str:
    """The project type FEDSTATS_ENGINE selects (numpy: cpu, cupy: gpu; default cpu)."""
    value = env.get("FEDSTATS_ENGINE", "").strip().lower() or "numpy"
    if value not in ENGINES:
        raise BootstrapError(f"FEDSTATS_ENGINE must be numpy or cupy, not {value!r}")
    return ENGINES[value]


def read_plan(env: Mapping[str, str], customers: Collection[str]) -> Plan | None:
    """The bootstrap `env` describes (None without FEDSTATS_ROLE); BootstrapError if unusable."""
    role = env.get("FEDSTATS_ROLE", "").strip().lower()
    if not role:
        return None
    if role not in ("admin", "peer"):
        raise BootstrapError(f"FEDSTATS_ROLE must be admin or peer, not {role!r}")
    customer = env.get("FEDSTATS_CUSTOMER", "").strip()
    if not customer:
        if len(customers) != 1:
            raise BootstrapError(
                f"FEDSTATS_CUSTOMER is needed: {len(customers)} customers are configured"
            )
        [customer] = customers
    elif customer not in customers:
        raise BootstrapError(f"FEDSTATS_CUSTOMER {customer!r} is not a configured customer")
    options = {
        opt: env[var].strip() for var, opt in _ADMIN_OPTIONS.items() if env.get(var, "").strip()
    }
    engine = engine_of(env)  # the Hub's default for new projects: no option needed
    project = env.get("FEDSTATS_PROJECT", "").strip() or options.get("fed_name")
    if role == "admin":
        if "fed_name" not in options:
            raise BootstrapError("FEDSTATS_ROLE=admin needs FEDSTATS_FEDERATION (fed_name)")
        return Plan("admin", customer, project, engine, options)
    invitation = env.get("FEDSTATS_INVITATION", "").strip() or None
    if project is None and invitation is None:
        raise BootstrapError(
            "FEDSTATS_ROLE=peer needs FEDSTATS_INVITATION (or FEDSTATS_PROJECT once joined)"
        )
    local = {k: v for k, v in options.items() if k in (*_PEER_LOCAL, *_CREDENTIALS)}
    return Plan(
        "peer",
        customer,
        project,
        engine,
        local,
        invitation,
        env.get("FEDSTATS_INVITATION_PASSWORD"),
    )


def join_body(invitation: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """The createJoin body: the invitation, with where this node reaches NATS, and its own
    credentials only when the admin issued none (they are per peer when the topology needs
    server-enforced permissions)."""
    body = {**invitation, **{k: local[k] for k in _PEER_LOCAL if k in local}}
    if not any(invitation.get(k) for k in _CREDENTIALS):
        body.update({k: local[k] for k in _CREDENTIALS if k in local})
    return body


class Bootstrap:
    """Runs a `Plan` against the node's `Hub` in the background; `status` says how it went."""

    def __init__(self, hub: Hub, plan: Plan) -> None:
        self.hub, self.plan = hub, plan
        self.status = "pending"
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._task = asyncio.create_task(self.run(), name="fed-bootstrap")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        where = f"{self.plan.role} {self.plan.customer}/{self.plan.project or '?'}"
        try:
            await (self._admin() if self.plan.role == "admin" else self._peer())
        except (FederationError, SecurityError, ServiceError) as e:
            self.status = f"failed: {e}"
            log.error("bootstrap as %s failed, left as it is: %s", where, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never crash the node: whatever it is, say it and stay up
            self.status = f"failed: {type(e).__name__}: {e}"
            log.error("bootstrap as %s failed unexpectedly: %s: %s", where, type(e).__name__, e)

    # ------------------------------------------------------------ admin
    async def _admin(self) -> None:
        cid, pid, opts = self.plan.customer, self.plan.project, self.plan.options
        assert pid is not None
        config = await self._existing(cid, pid)
        if config is None:
            await self._retrying("create the federation", lambda: self.hub.create(cid, pid, opts))
            log.warning("bootstrap: created federation %r as %s/%s", opts["fed_name"], cid, pid)
        elif not config.is_admin:
            raise BootstrapError(f"project [{pid}] is a peer of a federation, not its admin")
        elif config.fed_name != opts["fed_name"]:
            raise BootstrapError(
                f"project [{pid}] administers federation {config.fed_name!r}, "
                f"not {opts['fed_name']!r}"
            )
        elif opts.get("fed_secret_key") and opts["fed_secret_key"] != config.fed_secret_key:
            raise BootstrapError(
                f"federation {config.fed_name!r} exists with another key than "
                "FEDSTATS_FEDERATION_KEY: the peers hold the old one"
            )
        agent = await self.hub.wait_agent(cid, pid)
        wanted = opts.get("sync_sched")
        if config is not None and wanted and wanted != agent.config.sync_sched:
            await agent.set_schedule(wanted)  # the operator's spec changed while we were down
        agent.start_pulse()
        self.status = "ready"

    # ------------------------------------------------------------ peer
    async def _peer(self) -> None:
        cid, pid = self.plan.customer, self.plan.project
        invitation: dict[str, Any] | None = None
        if pid is None:
            invitation = await self._open_invitation()
            pid = str(invitation.get("fed_name", ""))
        config = await self._existing(cid, pid)
        if config is None:
            if invitation is None:
                invitation = await self._open_invitation()
            body = join_body(invitation, self.plan.options)
            await self._retrying("join the federation", lambda: self.hub.join(cid, pid, body))
            log.warning("bootstrap: %s/%s joined federation %r", cid, pid, body.get("fed_name"))
        elif config.is_admin:
            raise BootstrapError(f"project [{pid}] administers a federation: it is no peer")
        else:
            log.info("bootstrap: %s/%s already joined; the invitation is not used again", cid, pid)
        agent = await self.hub.wait_agent(cid, pid)
        agent.start_pulse()
        self.status = "ready"

    async def _open_invitation(self) -> dict[str, Any]:
        if not self.plan.invitation:
            raise BootstrapError("FEDSTATS_INVITATION is needed to join the federation")
        if not self.plan.password:
            raise BootstrapError("FEDSTATS_INVITATION_PASSWORD is needed to open the invitation")
        # scrypt: a worker thread, not the event loop
        return await asyncio.to_thread(open_invite, self.plan.password, self.plan.invitation)

    # ------------------------------------------------------------ common
    async def _existing(self, cid: str, pid: str) -> FedConfig | None:
        """The project's federation config if it is federated here; BootstrapError if the
        project exists but is not federated (someone else's project: left alone)."""
        config = self.hub.state.config(cid, pid)
        exists = self.hub.service.project_exists(cid, pid)
        if config is not None and not exists:
            await self.hub.forget(cid, pid)  # what remained of a deleted project
            config = None
        if config is None and exists:
            raise BootstrapError(f"project [{pid}] exists and is not federated: left as it is")
        return config

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> None:
        delay = FIRST_RETRY_S
        while True:
            try:
                await attempt()
                return
            except (Unreachable, OSError, TimeoutError) as e:
                self.status = f"retrying: {e}"
                log.warning("bootstrap: cannot %s yet (%s); retrying in %.1fs", what, e, delay)
            await asyncio.sleep(delay)  # a retry delay: nothing announces that NATS is back
            delay = min(delay * 2, LAST_RETRY_S)


def make_bootstrap(hub: Hub, env: Mapping[str, str],
                   customers: Collection[str]) -> Bootstrap | None:
    """The bootstrap `env` asks for (None without one); a bad environment is logged, never fatal.

    The composition root runs its `startup` after the hub's and its `shutdown` first.
    """
    try:
        plan = read_plan(env, customers)
    except BootstrapError as e:
        log.error("bootstrap: %s; the node runs without it", e)
        return None
    if plan is None:
        return None
    return Bootstrap(hub, plan)
