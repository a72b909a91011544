"""PSR contracts evaluated over accumulators, and the non-invertibility floor (pure).

`violations` says which rules an `Accumulator` breaks, with the values that broke them;
a rule naming an attribute the statistics lack fails with that reason rather than
raising. `floor_violation` / `increment_floor_violation` refuse to share so few rows
(or so small a change since the last snapshot) that rows could be solved back, and
`increment` is the statistics of that change.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..engine.accumulator import Accumulator
from ..engine.errors import EngineError
from ..engine.moments import Moments, remove
from .grammar import ARITY, Call, Compare, Cond, Contract, Expr, Num

FLOOR_MARGIN = 5  # rows must exceed columns by this much, or rows could be solved back


# ------------------------------------------------------------------ statistics
def _mean(m: Moments, i: int) -> float:
    return float(m.mean[i]) if m.n else math.nan


def _var(ddof: int) -> Callable[[Moments, int], float]:
    def f(m: Moments, i: int) -> float:
        return float(m.m2[i, i]) / (m.n - ddof) if m.n > ddof else math.nan

    return f


def _std(ddof: int) -> Callable[[Moments, int], float]:
    var = _var(ddof)

    def f(m: Moments, i: int) -> float:
        v = var(m, i)
        return math.sqrt(v) if v >= 0 else math.nan  # a negative variance is no statistic

    return f


def _covar(ddof: int) -> Callable[[Moments, int, int], float]:
    def f(m: Moments, i: int, j: int) -> float:
        return float(m.m2[i, j]) / (m.n - ddof) if m.n > ddof else math.nan

    return f


def _lincorr(m: Moments, i: int, j: int) -> float:
    # a constant column has no correlation, and a hostile or damaged snapshot may carry
    # a negative "variance": NaN (the rule then fails), never a math domain error
    vi, vj = float(m.m2[i, i]), float(m.m2[j, j])
    if not (vi > 0 and vj > 0):
        return math.nan
    den = math.sqrt(vi) * math.sqrt(vj)
    return float(m.m2[i, j]) / den if den > 0 else math.nan


# name -> statistic of Moments and column indices (the grammar knows their arities)
STATISTICS: dict[str, Callable[..., float]] = {
    "COUNT": lambda m, i: float(m.n),
    "MEAN": _mean,
    "VARIANCE": _var(0),
    "VARIANCE_UNBIASED": _var(1),
    "STDDEV": _std(0),
    "STDDEV_UNBIASED": _std(1),
    "COVAR": _covar(0),
    "COVAR_UNBIASED": _covar(1),
    "LINCORR": _lincorr,
}
assert STATISTICS.keys() == ARITY.keys(), "the grammar and the evaluator disagree"
BASE = {name: (ARITY[name], f) for name, f in STATISTICS.items()}


# ------------------------------------------------------------------ evaluation
class _Undefined(Exception):
    pass


def _column(acc: Accumulator, name: object) -> int:
    assert isinstance(name, str)
    if name in acc.index:
        return acc.index[name]
    if name in acc.types:
        raise _Undefined(f"{name!r} is a category: name one of its columns ({name}$value)")
    raise _Undefined(f"unknown attribute {name!r}")


def _binary(acc: Accumulator, value: object, column: str) -> Moments:
    if column not in acc.binary:
        raise _Undefined(f"{column!r} is not a binary column")
    try:
        return acc.given(column, int(value))  # type: ignore[call-overload]
    except EngineError as e:
        raise _Undefined(str(e)) from e


def _call(acc: Accumulator, call: Call) -> float:
    name, args = call.name, list(call.args)
    if name in BASE:
        _, f = BASE[name]
        return f(acc.total, *(_column(acc, a) for a in args))
    if name.startswith("COND_"):
        arity, f = BASE[name[5:]]
        value = args[arity + 1] if len(args) == arity + 2 else 1.0
        m = _binary(acc, value, str(args[arity]))
        return f(m, *(_column(acc, a) for a in args[:arity]))
    b = str(args[-1])
    true = _binary(acc, 1, b)
    if name.startswith("PCT_OF"):
        if not acc.n:
            return math.nan
        share = 100.0 * true.n / acc.n
        return share if name == "PCT_OF_TRUE" else 100.0 - share
    m = true if name == "MEAN_WHEN_TRUE" else _binary(acc, 0, b)
    return _mean(m, _column(acc, args[0]))


def _value(acc: Accumulator, e: Expr, seen: dict[str, float]) -> float:
    if isinstance(e, Num):
        return e.value
    if isinstance(e, Call):
        v = _call(acc, e)
        seen[str(e)] = v
        return v
    a, b = _value(acc, e.left, seen), _value(acc, e.right, seen)
    if e.op == "+":
        return a + b
    if e.op == "-":
        return a - b
    if e.op == "*":
        return a * b
    return a / b if b != 0 else math.nan


_CMP = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _holds(acc: Accumulator, c: Cond, seen: dict[str, float]) -> bool:
    if isinstance(c, Compare):
        a, b = _value(acc, c.left, seen), _value(acc, c.right, seen)
        return not (math.isnan(a) or math.isnan(b)) and bool(_CMP[c.op](a, b))
    if c.op == "NOT":
        return not _holds(acc, c.items[0], seen)
    results = (_holds(acc, item, seen) for item in c.items)
    return all(results) if c.op == "AND" else any(results)


def violations(contract: Contract, acc: Accumulator) -> list[str]:
    """The rules `acc` breaks, each with the values that broke it (empty: all hold)."""
    out: list[str] = []
    for rule in contract.rules:
        seen: dict[str, float] = {}
        try:
            ok = _holds(acc, rule.tree, seen)
        except _Undefined as e:
            out.append(f"line {rule.line}: {rule.text}: {e}")
            continue
        if not ok:
            values = ", ".join(f"{k} = {v:.6g}" for k, v in seen.items())
            out.append(f"line {rule.line}: {rule.text} fails ({values})")
    return out


def floor_violation(acc: Accumulator, what: str = "snapshot") -> str | None:
    """Why `acc` may not be shared (too few rows for its columns), or None.

    The floor counts columns, not attributes: a category of k values is k columns, and
    it is the columns that a row solves for.
    """
    need = acc.d + FLOOR_MARGIN
    rows = abs(acc.n)
    if rows == 0 or rows >= need:
        return None
    return f"{what} of {rows} rows over {acc.d} columns is under the floor of {need} rows"


def increment(new: Accumulator, old: Accumulator) -> Accumulator:
    """The statistics of the rows in `new` but not in `old` (old is an earlier snapshot).

    When rows were forgotten (new has fewer), the increment is the rows removed, which
    reveal as much as rows added.
    """
    gone = [c for c in old.columns if c not in new.index]
    if gone:
        raise EngineError(f"the later snapshot lacks column(s) {gone}: not an increment")
    aligned = new.layout_of(old)
    big, small = (new, aligned) if new.n >= old.n else (aligned, new)
    out = new.copy()
    out.total = remove(big.total, small.total)
    out.cond = {}
    for k in new.cond:
        a, b = big.cond.get(k), small.cond.get(k)
        if a is not None and b is not None and a.n >= b.n:
            out.cond[k] = remove(a, b)
    return out


def increment_floor_violation(new: Accumulator, old: Accumulator | None) -> str | None:
    """The floor applied to what changed since `old` (None: the whole is the increment).

    The change is measured in rows learned or forgotten (`touched`), not by the change
    in `n`: forgetting one row and learning another leaves `n` as it was but reveals
    two rows. Should `touched` have gone back (the accumulator was rebuilt), the change
    in `n` is all that can be told.
    """
    if old is None or old.n == 0:
        return floor_violation(new)
    rows = new.touched - old.touched
    if rows < 0:
        rows = abs(new.n - old.n)
    need = new.d + FLOOR_MARGIN
    if rows == 0 or rows >= need:
        return None
    return f"increment of {rows} rows over {new.d} columns is under the floor of {need} rows"
