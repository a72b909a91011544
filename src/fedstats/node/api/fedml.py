"""The federated REST API (`/symetry/rest/{cid}/fedml/...`, spec 000/001): HTTP in, envelope out.

Every operation lives in `federation.hub.Hub`; this module reads requests (encrypted
bodies where the spec encrypts them: create, createJoin, getInvitation/getEncrypted, and
the encrypted `info` answer) and maps answers to the spec's envelope and entity keys
(`fedInfoEncrypted`, `stringList`, `fedSyncStats`). Mounted by the composition root
(`app.py`); its errors take the status their type says in the one mapping (`errors.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..federation.contract import Contract, parse_contract
from ..federation.errors import ContractError, FederationError
from ..federation.hub import Hub
from ..security.customers import Customer
from .auth import body_of, signed_customer
from .body import parse_json
from .context import limits_of, run_sync
from .envelope import decrypt_body, encrypted, ok

router = APIRouter(prefix="/symetry/rest/{cid}/fedml", tags=["federation"])
Signed = Depends(signed_customer)


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.federation
    return hub


def _map(request: Request, customer: Customer) -> dict[str, Any]:
    obj = decrypt_body(customer, body_of(request)) if body_of(request).strip() else {}
    if not isinstance(obj, dict):
        raise FederationError("the decrypted body must be a JSON map")
    return obj


def _lines(request: Request) -> list[str]:
    """A StringList body `{"values": [...]}` (a bare list or plain text also do)."""
    raw = body_of(request)
    if raw.strip()[:1] in (b"{", b"["):
        obj: Any = parse_json(raw)
    else:
        try:
            obj = raw.decode()
        except UnicodeDecodeError:
            raise FederationError("a PSR contract body must be UTF-8 text") from None
    if isinstance(obj, dict):
        obj = obj.get("values", obj.get("stringList"))
    if isinstance(obj, str):
        obj = obj.splitlines()
    if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
        raise FederationError('a PSR contract is a StringList: {"values": ["rule", ...]}')
    return obj


@router.post("/create", status_code=201, summary="Create a NATS-backed federation (admin)")
async def create(
    request: Request,
    cid: str,
    pid: str = Query(...),
    persist: bool = Query(True),
    customer: Customer = Signed,
) -> Response:
    del persist  # projects are always persisted here
    await hub_of(request).create(cid, pid, _map(request, customer))
    return ok(status=201, status_string=f"Project Created with id:{pid}")


@router.post("/createJoin", status_code=201, summary="Join a federation with an invitation")
async def create_join(
    request: Request, cid: str, pid: str = Query(...), customer: Customer = Signed
) -> Response:
    await hub_of(request).join(cid, pid, _map(request, customer))
    return ok(status=201, status_string="Fed Project created with join")


@router.get("/{pid}/info", summary="Federation info, encrypted with the customer key")
async def info(request: Request, cid: str, pid: str, customer: Customer = Signed) -> Response:
    return ok({"fedInfoEncrypted": encrypted(customer, hub_of(request).info(cid, pid))})


async def _invitation(request: Request, cid: str, pid: str, customer: Customer) -> Response:
    hub = hub_of(request)
    opts = _map(request, customer)
    invite = await run_sync(request, hub.invitation, cid, pid, opts)  # scrypt: off the loop
    return ok({"fedInfoEncrypted": invite, "encryptedGroupInfo": invite})


@router.post("/{pid}/getInvitation", summary="A one-time invitation sealed with a password")
async def get_invitation(
    request: Request, cid: str, pid: str, customer: Customer = Signed
) -> Response:
    return await _invitation(request, cid, pid, customer)


@router.post("/{pid}/getEncrypted", summary="Older name of getInvitation")
async def get_encrypted(
    request: Request, cid: str, pid: str, customer: Customer = Signed
) -> Response:
    return await _invitation(request, cid, pid, customer)


@router.get("/{pid}/startPulse", dependencies=[Signed], summary="Start syncing")
async def start_pulse(request: Request, cid: str, pid: str) -> Response:
    hub_of(request).agent(cid, pid).start_pulse()
    return ok(status_string="Pulse started")


@router.get("/{pid}/stopPulse", dependencies=[Signed], summary="Stop syncing")
async def stop_pulse(request: Request, cid: str, pid: str) -> Response:
    await hub_of(request).agent(cid, pid).stop_pulse()
    return ok(status_string="Pulse stopped")


@router.get("/{pid}/newSchedule", dependencies=[Signed], summary="Change the schedule (admin)")
async def new_schedule(
    request: Request, cid: str, pid: str, newSchedule: str = Query(...)
) -> Response:
    agent = hub_of(request).admin_agent(cid, pid, "change the schedule")
    await agent.set_schedule(newSchedule)
    return ok(status_string=f"Schedule is now {agent.config.sync_sched}")


# GET and POST registered apart: one route with both methods gives them the same OpenAPI
# operation id, which FastAPI warns about (and the tests turn warnings into errors).
@router.get("/{pid}/removePeer", dependencies=[Signed], operation_id="fedml_removePeer_get",
            summary="Remove a peer from the federation (admin)")
@router.post("/{pid}/removePeer", dependencies=[Signed], operation_id="fedml_removePeer_post",
             summary="Remove a peer from the federation (admin)")
async def remove_peer(request: Request, cid: str, pid: str, peer: str = Query(...)) -> Response:
    agent = hub_of(request).admin_agent(cid, pid, "remove peers")
    await agent.remove_peer(peer)
    return ok(status_string=f"Peer {peer} removed")


@router.get("/{pid}/fullSyncRequest", dependencies=[Signed], summary="Ask peers to republish")
async def full_sync(request: Request, cid: str, pid: str) -> Response:
    await hub_of(request).agent(cid, pid).full_sync_request()
    return ok(status_string="Full sync requested")


@router.get("/{pid}/setExplorePeers", dependencies=[Signed], summary="Allow peers to explore")
async def set_explore_peers(
    request: Request, cid: str, pid: str, allowExplore: bool = Query(...)
) -> Response:
    hub_of(request).set_explore_peers(cid, pid, allowExplore)
    return ok()


def _read_contract(request: Request) -> tuple[list[str], Contract]:
    """The body's lines and their contract, within the node's limits (on a worker thread:
    a long contract is never read or parsed on the event loop)."""
    limits = limits_of(request)
    lines = _lines(request)
    return lines, parse_contract(lines, limits.max_contract_rules, limits.max_contract_bytes)


async def _validate(request: Request, cid: str, pid: str) -> Response:
    hub_of(request).agent(cid, pid)  # an unknown or unfederated project says so first
    try:
        _, contract = await run_sync(request, _read_contract, request)
    except ContractError as e:
        return ok({"stringList": [str(e)]}, status=400, status_string=f"Invalid PSR contract: {e}")
    return ok({"stringList": []}, status_string=f"Valid PSR contract ({len(contract.rules)} rules)")


@router.post("/{pid}/psrContractValidate", dependencies=[Signed], summary="Check a PSR contract")
async def psr_contract_validate(request: Request, cid: str, pid: str) -> Response:
    return await _validate(request, cid, pid)


@router.post("/{pid}/contractValidate", dependencies=[Signed], summary="Check a PSR contract")
async def contract_validate(request: Request, cid: str, pid: str) -> Response:
    return await _validate(request, cid, pid)


async def _add(request: Request, cid: str, pid: str) -> Response:
    agent = hub_of(request).admin_agent(cid, pid, "change the PSR contract")
    # refused (400, naming the limit) before anything is saved; the agent's own parse of
    # the same lines is then a lookup (grammar memoises parses)
    lines, _ = await run_sync(request, _read_contract, request)
    await agent.set_contract(lines)
    return ok(status_string=f"PSR contract updated ({len(agent.contract.rules)} rules)")


@router.post("/{pid}/addPsrContract", dependencies=[Signed], summary="Set the PSR contract (admin)")
async def add_psr_contract(request: Request, cid: str, pid: str) -> Response:
    return await _add(request, cid, pid)


@router.post("/{pid}/addContract", dependencies=[Signed], summary="Set the PSR contract (admin)")
async def add_contract(request: Request, cid: str, pid: str) -> Response:
    return await _add(request, cid, pid)


@router.get("/{pid}/getErrorLog", dependencies=[Signed], summary="Background errors")
async def get_error_log(request: Request, cid: str, pid: str) -> Response:
    hub_of(request).agent(cid, pid)
    return ok({"stringList": hub_of(request).state.logs(cid, pid, "error")})


@router.delete("/{pid}/clearErrorLog", dependencies=[Signed], summary="Clear the error log")
async def clear_error_log(request: Request, cid: str, pid: str) -> Response:
    hub_of(request).agent(cid, pid)
    hub_of(request).state.clear_logs(cid, pid, "error")
    return ok(status_string="Error log cleared")


@router.get("/{pid}/getSyncLog", dependencies=[Signed], summary="Synchronization log")
async def get_sync_log(request: Request, cid: str, pid: str) -> Response:
    hub_of(request).agent(cid, pid)
    return ok({"stringList": hub_of(request).state.logs(cid, pid, "sync")})


@router.get("/{pid}/syncStats", dependencies=[Signed], summary="FedSyncStats")
async def sync_stats(request: Request, cid: str, pid: str) -> Response:
    return ok({"fedSyncStats": hub_of(request).agent(cid, pid).sync_stats()})


_NATS_ONLY = (
    "this fedstats build is NATS-backed: federations run over NATS JetStream and use no AWS "
    "resources (see fedInfo's nats_hosts)"
)


@router.post("/{pid}/awsinfo", dependencies=[Signed], summary="Not applicable: NATS-backed")
async def aws_info(request: Request, cid: str, pid: str) -> Response:
    del request, cid, pid
    raise FederationError(_NATS_ONLY)


@router.post("/awsinfo", dependencies=[Signed], summary="Not applicable: NATS-backed")
async def aws_info_all(request: Request, cid: str) -> Response:
    del request, cid
    raise FederationError(_NATS_ONLY)
