"""Reconciling a PsrContract: its rules parsed with the node's own parser, then applied.

Parsing here, with the very parser the nodes run, means a rule the nodes would refuse is
reported on the resource (`Valid=False`, the parser's line and column in status.errors)
before any node sees it; the `grammar` module alone is imported, since the evaluator behind
`contract` needs the node's numeric stack, which the operator never loads. The admin node then validates the contract too and applies it
(`Applied`): the federation's contract is what its admin says it is, so the operator sends
it only when the admin's `fedInfo` shows another one, and a resync changes nothing.
`sendAction`/`receiveAction` travel as the grammar's `@send`/`@receive` lines.
"""

from __future__ import annotations

from fedstats.node.federation.errors import ContractError
from fedstats.node.federation.grammar import parse_contract

from . import conditions, names, nodeapi
from .conditions import Condition
from .errors import NodeRefused, RetryLater, WaitingFor
from .kube import Kube
from .outcome import Outcome
from .types import Body

INVALID = "Invalid PSR contract"  # how the admin node's refusal of the rules begins


def contract_lines(spec: Body) -> list[str]:
    """The StringList sent to the admin node: the actions, then the rules as written. Pure."""
    return [f"@send {spec.get('sendAction', 'block')}",
            f"@receive {spec.get('receiveAction', 'block')}",
            *spec["rules"].splitlines()]


def check_rules(rules: str) -> tuple[Condition, int, list[str]]:
    """(Valid condition, number of rules, errors) for the contract text; pure."""
    try:
        contract = parse_contract(rules)
    except ContractError as e:
        return Condition("Valid", "False", "InvalidRules", str(e)), 0, [str(e)]
    count = len(contract.rules)
    return Condition("Valid", "True", "Parsed", f"{count} rule(s) parsed"), count, []


async def _apply(kube: Kube, psr: Body, fed: Body, out: Outcome) -> Condition:
    pid = names.federation_name(fed)
    lines = contract_lines(psr["spec"])
    try:
        admin = await nodeapi.of_node(kube, fed)
        if (await admin.fed_info(pid)).get("contract") == lines:
            return out.add(Condition("Applied", "True", "Applied",
                                     f"the admin node of {pid} holds this contract"))
        await admin.set_contract(pid, lines)
    except NodeRefused as e:
        msg = f"the admin node says: {e.node_message}"
        cond = Condition("Applied", "False", "Rejected", msg)
        if e.node_message.startswith(INVALID):  # only an edit can fix it: no retry
            out.status["errors"] = [*out.status.get("errors", []), e.node_message]
            return out.add(cond)
        return out.fail(cond, e)
    except RetryLater as e:
        return out.fail(Condition("Applied", "False", "NodeUnreachable", str(e)), e)
    out.event("Normal", "Applied", f"PSR contract applied to federation {pid}")
    return out.add(Condition("Applied", "True", "Applied",
                             f"applied to federation {pid} by its admin node"))


async def reconcile(kube: Kube, psr: Body) -> Outcome:
    """Conditions Valid, FederationFound and Applied, making Ready."""
    out = Outcome()
    valid, count, errs = check_rules(psr["spec"]["rules"])
    out.add(valid)
    out.status.update(ruleCount=count, errors=errs)
    name = psr["spec"]["federationRef"]["name"]
    fed = await kube.get("Federation", psr["metadata"]["namespace"], name)
    if fed is None:
        msg = f"Federation {name} does not exist in {psr['metadata']['namespace']}"
        found = out.fail(Condition("FederationFound", "False", "FederationMissing", msg),
                         WaitingFor(msg))
    else:
        found = out.add(Condition("FederationFound", "True", "Found", f"Federation {name}"))
    if valid.status == "True" and fed is not None:
        applied = await _apply(kube, psr, fed, out)
    else:
        applied = out.add(Condition("Applied", "False", "NotApplied",
                                    "the contract is applied once it parses and its "
                                    "Federation exists"))
    out.add(conditions.ready([valid, found, applied]))
    return out
