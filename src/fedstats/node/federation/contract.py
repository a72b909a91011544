"""PSR contracts: the rules a peer's statistics must meet before they are shared.

A contract is text, one rule per line, `#` starting a comment:

    COUNT(age) >= 150 AND MEAN(income) > 3.0
    (LINCORR(x, y) < 0.99 OR PCT_OF_TRUE(smoker) BETWEEN ...)   # not BETWEEN: use AND
    @send allow          # what to do when a rule fails before sending (default: block)
    @receive block       # ... and when a received snapshot fails (default: block)

A rule is predicates (`expr <op> expr`, op one of > >= < <= = == != <>) joined by AND / OR
/ NOT and parentheses; expressions are numbers, statistics and + - * /. Statistics are
functions of attribute columns (see `FUNCTIONS`); conditional forms `COND_<F>(..., b)`
compute F over the rows where binary column `b` is 1 (`COND_<F>(..., b, 0)`: where it is 0).

The parser (`grammar`) is pure and checks names and arities, so a contract can be
validated without data; errors carry line and column. The evaluator (`evaluate`) reads an
`Accumulator` (or the increment between two snapshots) and says which rules failed, with
the values that made them fail. This module is their public face: import from here.
"""

from __future__ import annotations

from .evaluate import (
    BASE,
    FLOOR_MARGIN,
    STATISTICS,
    floor_violation,
    increment,
    increment_floor_violation,
    violations,
)
from .grammar import (
    ARITY,
    FUNCTIONS,
    SPECIAL,
    Action,
    Arith,
    Call,
    Compare,
    Cond,
    Contract,
    Expr,
    Logic,
    Num,
    Rule,
    parse_contract,
)

__all__ = [
    "ARITY",
    "BASE",
    "FLOOR_MARGIN",
    "FUNCTIONS",
    "SPECIAL",
    "STATISTICS",
    "Action",
    "Arith",
    "Call",
    "Compare",
    "Cond",
    "Contract",
    "Expr",
    "Logic",
    "Num",
    "Rule",
    "floor_violation",
    "increment",
    "increment_floor_violation",
    "parse_contract",
    "violations",
]
