"""Whether a peer's snapshot is taken in: the receive-side rules, as pure functions.

A snapshot that arrives is, in this order:

* ignored if its sender was removed from the federation, or if a version as new is
  held already (redelivery, duplicates and reordering are harmless: the newest wins);
* refused if its version is too far ahead of this node's clock: versions are microseconds
  since the epoch, and a forged far-future one would lock its peer out for good;
* refused if it does not decode, or types an attribute otherwise than this node or
  another peer (every merge would then fail);
* refused if it breaks the PSR contract (or, with `@receive allow`, taken with a warning).

`screen` applies the first two rules to the frame's header, before the body is decoded;
`judge` the others to the body. An "ignored" snapshot is only noted in the sync log; a
refusal is counted and logged as an error, never dropped silently (the agent does both).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ..engine.accumulator import Accumulator, schema_conflict
from ..engine.codec import decode_snapshot
from ..engine.errors import EngineError
from . import contract as psr
from . import gate

MAX_VERSION_AHEAD_US = 10 * 60 * 1_000_000

RECEIVE_ERROR = "rcvError"  # the counter of refusals
CONTRACT_ERROR = "rcvContractError"  # the per-peer counter of contract violations


@dataclass(frozen=True)
class Admission:
    """What to do with one snapshot: keep `acc` (None: drop it); `note` goes to the sync
    log; a `problem` is counted under `counter` and goes to the error log."""

    acc: Accumulator | None = None
    note: str | None = None
    problem: str | None = None
    counter: str = RECEIVE_ERROR

    @property
    def admitted(self) -> bool:
        return self.acc is not None


def screen(peer: str, version: int, *, removed: Collection[str], newest: int | None,
           now_us: int) -> Admission | None:
    """The header's verdict (None: decode and `judge` the body). `newest` is the version
    held from `peer`, if any; `now_us` this node's clock in microseconds."""
    if peer in removed:
        return Admission(note=f"ignored snapshot v{version} from {peer}: "
                              "removed from the federation")
    ahead = version - now_us
    if ahead > MAX_VERSION_AHEAD_US:
        return Admission(problem=(
            f"snapshot v{version} from {peer} refused: its version is {ahead / 1e6:.0f}s "
            f"ahead of this node's clock (at most {MAX_VERSION_AHEAD_US // 1_000_000}s)"
        ))
    if newest is not None and version <= newest:
        return Admission(note=f"ignored snapshot v{version} from {peer}: "
                              f"v{newest} is newer or same")
    return None


def judge(peer: str, version: int, body: bytes, *, local: Accumulator,
          peers: Mapping[str, Accumulator], contract: psr.Contract) -> Admission:
    """The body's verdict: decoded, of a schema that merges with `local` and every other
    peer's (`peers`: the snapshots held, the sender's own previous one ignored), within
    `contract`."""
    try:
        acc = decode_snapshot(body)
    except EngineError as e:
        return Admission(problem=f"snapshot v{version} from {peer} is damaged: {e}")
    others = [local, *(a for p, a in peers.items() if p != peer)]
    conflict = schema_conflict(acc, others)
    if conflict is not None:
        return Admission(problem=f"snapshot v{version} from {peer} refused, schema mismatch: "
                                 f"{conflict}")
    verdict = gate.incoming(contract, acc)
    if verdict.clean:
        return Admission(acc)
    word = "refused" if verdict.blocked else "accepted anyway (@receive allow)"
    return Admission(None if verdict.blocked else acc,
                     problem=f"snapshot v{version} from {peer} {word}: {verdict}",
                     counter=CONTRACT_ERROR)
