"""Whether a snapshot may go out, or come in: the PSR contract and the floor (pure).

The same two checks guard both directions: the contract's rules (whose failure blocks
or, with `@send allow` / `@receive allow`, only warns) and the non-invertibility floor
on the whole snapshot and on the increment since the last one (which always blocks: no
contract may allow rows to be solved back).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.accumulator import Accumulator
from .contract import Contract, floor_violation, increment_floor_violation, violations


@dataclass(frozen=True)
class Verdict:
    problems: tuple[str, ...] = ()
    blocked: bool = False

    @property
    def clean(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


def _judge(
    contract: Contract, acc: Accumulator, before: Accumulator | None, action: str
) -> Verdict:
    rules = violations(contract, acc)
    floor = [p for p in (floor_violation(acc), increment_floor_violation(acc, before)) if p]
    return Verdict(tuple(floor + rules), bool(floor) or (bool(rules) and action == "block"))


def outgoing(contract: Contract, acc: Accumulator, last_sent: Accumulator | None) -> Verdict:
    """May `acc` be published, `last_sent` being the previous snapshot published?"""
    return _judge(contract, acc, last_sent, contract.send)


def incoming(contract: Contract, acc: Accumulator, previous: Accumulator | None) -> Verdict:
    """May a peer's `acc` be merged, `previous` being that peer's snapshot merged before?"""
    return _judge(contract, acc, previous, contract.receive)
