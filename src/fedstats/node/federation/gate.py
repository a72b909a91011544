"""Whether a snapshot may go out, or come in: the PSR contract and the floor (pure).

Both directions check the contract's rules (whose failure blocks or, with `@send allow`
/ `@receive allow`, only warns) and the non-invertibility floor on the whole snapshot
(which always blocks: no contract may allow rows to be solved back). The floor on the
increment since the last snapshot is the sender's duty alone: streams keep only the
newest message per subject, so a receiver may never see the versions in between, and
measuring against the last one it did see would refuse a legitimate snapshot forever.
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


def _judge(contract: Contract, acc: Accumulator, floor: list[str | None], action: str) -> Verdict:
    rules = violations(contract, acc)
    floors = [p for p in floor if p]
    return Verdict(tuple(floors + rules), bool(floors) or (bool(rules) and action == "block"))


def outgoing(contract: Contract, acc: Accumulator, last_sent: Accumulator | None) -> Verdict:
    """May `acc` be published, `last_sent` being the previous snapshot published?"""
    floors = [floor_violation(acc), increment_floor_violation(acc, last_sent)]
    return _judge(contract, acc, floors, contract.send)


def incoming(contract: Contract, acc: Accumulator) -> Verdict:
    """May a peer's `acc` be merged? (The whole-snapshot floor and the contract only.)"""
    return _judge(contract, acc, [floor_violation(acc)], contract.receive)
