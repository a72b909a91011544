"""Whether a learned batch may join a project: its growth within the limits, and no new attribute.

Parsing bounds one request (`frame`); this bounds what the project becomes with it, checked
before the batch's statistics are folded in (the fold is where the project's O(columns²)
matrices grow). Two rules:

* the project's columns, and its statistics cells ((1 + binary) × columns², see
  `fedstats.node.limits`), stay within `Limits`;
* an attribute the project does not have yet is refused once it holds rows. Its earlier
  rows have no value for it, and counting them as 0 (what growing the accumulator does)
  would report, say, a mean of 500 for a value of 50,000 seen once among 100 rows. Zero
  is right only for a *new value of a known category*: the earlier rows did not have that
  value, so its indicator column is 0 for them, exactly.
"""

from __future__ import annotations

from ..limits import LimitExceeded, Limits, check_cells
from .accumulator import Accumulator
from .errors import SchemaMismatch
from .frame import Batch, short


def admit(acc: Accumulator, batch: Batch, limits: Limits) -> None:
    """Raise (SchemaMismatch, LimitExceeded) unless `batch` may be learned into `acc`."""
    if acc.n:
        new = [a for a in batch.types if a not in acc.types]
        if new:
            raise SchemaMismatch(
                f"attribute(s) {', '.join(map(short, new[:5]))} are new to a project that "
                f"holds {acc.n} rows without them: their statistics would count those rows "
                "as 0. Learn every attribute from the first batch on (a new project), or "
                "send it as a separate project"
            )
    added = [c for c in batch.columns if c not in acc.index]
    if not added:
        return
    d = acc.d + len(added)
    if d > limits.max_project_columns:
        raise LimitExceeded(
            "max_project_columns", limits.max_project_columns,
            f"the project would have {d:,} columns with these rows ({acc.d:,} now)",
        )
    binary = len(acc.binary) + sum(1 for c in added if c in batch.binary)
    check_cells(limits, d, binary, "the project's statistics with these rows")
