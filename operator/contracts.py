"""Reconciling a PsrContract: its rules parsed with the node's own parser, and its Federation.

Parsing here, with the very parser the nodes run, means a rule the nodes would refuse is
reported on the resource (`Valid=False`, the parser's line and column in status.errors)
before any node sees it. Applying the contract goes through the admin node's fedml REST API
and is reported as its own `Applied` condition, outside `Ready`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedstats.node.federation.contract import parse_contract
from fedstats.node.federation.errors import FederationError

from . import conditions
from .conditions import Condition
from .errors import WaitingFor
from .kube import Kube
from .outcome import Outcome

Body = Mapping[str, Any]


def check_rules(rules: str) -> tuple[Condition, int, list[str]]:
    """(Valid condition, number of rules, errors) for the contract text; pure."""
    try:
        contract = parse_contract(rules)
    except FederationError as e:
        return Condition("Valid", "False", "InvalidRules", str(e)), 0, [str(e)]
    count = len(contract.rules)
    return Condition("Valid", "True", "Parsed", f"{count} rule(s) parsed"), count, []


async def reconcile(kube: Kube, psr: Body) -> Outcome:
    out = Outcome()
    valid, count, errs = check_rules(psr["spec"]["rules"])
    out.add(valid)
    out.status.update(ruleCount=count, errors=errs)
    name = psr["spec"]["federationRef"]["name"]
    if await kube.get("Federation", psr["metadata"]["namespace"], name) is None:
        msg = f"Federation {name} does not exist in {psr['metadata']['namespace']}"
        found = out.fail(Condition("FederationFound", "False", "FederationMissing", msg),
                         WaitingFor(msg))
    else:
        found = out.add(Condition("FederationFound", "True", "Found", f"Federation {name}"))
    out.add(Condition("Applied", "Unknown", "AwaitingNodeApi",
                      "applying the contract needs the admin node's fedml REST API"))
    out.add(conditions.ready([valid, found]))
    return out
