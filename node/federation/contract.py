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

The parser is pure and checks names and arities, so a contract can be validated without
data; errors carry line and column. The evaluator reads an `Accumulator` (or the increment
between two snapshots) and says which rules failed, with the values that made them fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..engine.accumulator import Accumulator
from ..engine.errors import EngineError
from ..engine.moments import Moments, remove
from .errors import ContractError

Action = Literal["block", "allow"]
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
    return lambda m, i: math.sqrt(max(var(m, i), 0.0)) if m.n > ddof else math.nan


def _covar(ddof: int) -> Callable[[Moments, int, int], float]:
    def f(m: Moments, i: int, j: int) -> float:
        return float(m.m2[i, j]) / (m.n - ddof) if m.n > ddof else math.nan

    return f


def _lincorr(m: Moments, i: int, j: int) -> float:
    den = math.sqrt(float(m.m2[i, i]) * float(m.m2[j, j]))
    return float(m.m2[i, j]) / den if den > 0 else math.nan


# name -> (number of attribute arguments, statistic of Moments and column indices)
BASE: dict[str, tuple[int, Callable[..., float]]] = {
    "COUNT": (1, lambda m, i: float(m.n)),
    "MEAN": (1, _mean),
    "VARIANCE": (1, _var(0)),
    "VARIANCE_UNBIASED": (1, _var(1)),
    "STDDEV": (1, _std(0)),
    "STDDEV_UNBIASED": (1, _std(1)),
    "COVAR": (2, _covar(0)),
    "COVAR_UNBIASED": (2, _covar(1)),
    "LINCORR": (2, _lincorr),
}
# functions of a binary column `b` (the last argument) over the whole rows
SPECIAL = {"PCT_OF_TRUE": 1, "PCT_OF_FALSE": 1, "MEAN_WHEN_TRUE": 2, "MEAN_WHEN_FALSE": 2}
FUNCTIONS = sorted([*BASE, *(f"COND_{k}" for k in BASE), *SPECIAL])


# ------------------------------------------------------------------ syntax tree
@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[str | float, ...]
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True)
class Arith:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Logic:
    op: str  # AND, OR, NOT
    items: tuple[Cond, ...]


Expr = Num | Call | Arith
Cond = Compare | Logic


@dataclass(frozen=True)
class Rule:
    line: int
    text: str
    tree: Cond


@dataclass(frozen=True)
class Contract:
    rules: tuple[Rule, ...] = ()
    send: Action = "block"
    receive: Action = "block"
    source: tuple[str, ...] = field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        return not self.rules


# ------------------------------------------------------------------ parser
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<str>"[^"]*"|'[^']*')
    |(?P<name>[A-Za-z_][A-Za-z0-9_$.]*)
    |(?P<op>>=|<=|==|!=|<>|[<>=])
    |(?P<punct>[(),+\-*/])""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, name, kw, op, punct, end
    text: str
    col: int


def _tokens(text: str, line: int) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ContractError(f"unexpected character {text[pos]!r}", line, pos + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word.upper() in _KEYWORDS:
                kind, word = "kw", word.upper()
            elif kind == "str":
                kind, word = "name", word[1:-1]
            out.append(_Tok(kind, word, pos + 1))
        pos = m.end()
    out.append(_Tok("end", "", len(text) + 1))
    return out


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND not)*; not := NOT not | atom."""

    def __init__(self, text: str, line: int) -> None:
        self.toks = _tokens(text, line)
        self.i = 0
        self.line = line

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = repr(text) if text else kind
            got = repr(tok.text) if tok.kind != "end" else "end of line"
            raise ContractError(f"expected {want}, found {got}", self.line, tok.col)
        self.i += 1
        return tok

    def rule(self) -> Cond:
        tree = self.disjunction()
        self.take("end")
        return tree

    def disjunction(self) -> Cond:
        items = [self.conjunction()]
        while self.peek().kind == "kw" and self.peek().text == "OR":
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Logic("OR", tuple(items))

    def conjunction(self) -> Cond:
        items = [self.negation()]
        while self.peek().kind == "kw" and self.peek().text == "AND":
            self.i += 1
            items.append(self.negation())
        return items[0] if len(items) == 1 else Logic("AND", tuple(items))

    def negation(self) -> Cond:
        if self.peek().kind == "kw" and self.peek().text == "NOT":
            self.i += 1
            return Logic("NOT", (self.negation(),))
        if self.peek().text == "(" and self._parenthesised_condition():
            self.i += 1
            tree = self.disjunction()
            self.take("punct", ")")
            return tree
        left = self.sum()
        tok = self.peek()
        if tok.kind != "op":
            raise ContractError("expected a comparison (>, >=, <, <=, =, !=)", self.line, tok.col)
        self.i += 1
        op = {"=": "==", "<>": "!="}.get(tok.text, tok.text)
        return Compare(op, left, self.sum())

    def _parenthesised_condition(self) -> bool:
        """Whether the `(` here opens a condition, not an arithmetic group like `(a + b) > 1`."""
        depth = 0
        for tok in self.toks[self.i :]:
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
                if depth == 0:
                    return False
            elif depth >= 1 and (tok.kind == "op" or tok.kind == "kw"):
                return True
        return False

    def sum(self) -> Expr:
        left = self.product()
        while self.peek().text in ("+", "-") and self.peek().kind == "punct":
            op = self.take("punct").text
            left = Arith(op, left, self.product())
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.peek().text in ("*", "/") and self.peek().kind == "punct":
            op = self.take("punct").text
            left = Arith(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "-":
            self.i += 1
            return Arith("-", Num(0.0), self.unary())
        if tok.kind == "num":
            self.i += 1
            return Num(float(tok.text))
        if tok.kind == "punct" and tok.text == "(":
            self.i += 1
            inner = self.sum()
            self.take("punct", ")")
            return inner
        if tok.kind == "name":
            return self.call()
        raise ContractError("expected a number or a statistic", self.line, tok.col)

    def call(self) -> Call:
        tok = self.take("name")
        name = tok.text.upper()
        if name not in FUNCTIONS:
            raise ContractError(f"unknown function {tok.text!r}", self.line, tok.col)
        self.take("punct", "(")
        args: list[str | float] = []
        while self.peek().text != ")" or self.peek().kind != "punct":
            arg = self.peek()
            if arg.kind == "name":
                args.append(arg.text)
            elif arg.kind == "num":
                args.append(float(arg.text))
            else:
                raise ContractError("expected an attribute name", self.line, arg.col)
            self.i += 1
            if self.peek().text == ",":
                self.i += 1
            elif self.peek().text != ")":
                raise ContractError("expected ',' or ')'", self.line, self.peek().col)
        self.take("punct", ")")
        _check_arity(name, args, self.line, tok.col)
        return Call(name, tuple(args), self.line, tok.col)


def _check_arity(name: str, args: list[str | float], line: int, col: int) -> None:
    if name.startswith("COND_"):
        arity = BASE[name[5:]][0]
        ok = len(args) in (arity + 1, arity + 2)
        names = args[: arity + 1]
        if ok and len(args) == arity + 2 and args[-1] not in (0.0, 1.0):
            raise ContractError(f"{name}: the condition value must be 0 or 1", line, col)
        want = f"{arity} attribute(s), a binary column and optionally 0 or 1"
    else:
        arity = BASE[name][0] if name in BASE else SPECIAL[name]
        ok, names = len(args) == arity, args
        want = f"{arity} attribute(s)"
    if not ok:
        raise ContractError(f"{name} takes {want}, not {len(args)} argument(s)", line, col)
    if any(not isinstance(a, str) for a in names):
        raise ContractError(f"{name}: arguments must be attribute names", line, col)


def parse_contract(lines: str | Sequence[str]) -> Contract:
    """Parse a contract (text, or a StringList of lines); raises ContractError."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    rules: list[Rule] = []
    actions: dict[str, Action] = {"send": "block", "receive": "block"}
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        if text.startswith("@"):
            parts = text[1:].split()
            if len(parts) != 2 or parts[0].lower() not in actions:
                raise ContractError(
                    "expected '@send block|allow' or '@receive block|allow'", number, 1
                )
            action = parts[1].lower()
            if action not in ("block", "allow"):
                raise ContractError(f"unknown action {parts[1]!r}: block or allow", number, 1)
            actions[parts[0].lower()] = action  # type: ignore[assignment]
            continue
        tree = _Parser(raw.split("#", 1)[0], number).rule()
        rules.append(Rule(number, text, tree))
    return Contract(tuple(rules), actions["send"], actions["receive"], tuple(lines))


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
    blank = new.copy()
    blank.total = Moments.empty(new.d, new.xp)
    blank.cond = {k: Moments.empty(new.d, new.xp) for k in new.cond}
    aligned = Accumulator.merged([blank, old], engine=new.engine)
    if aligned.columns != new.columns:
        gone = [c for c in aligned.columns if c not in new.index]
        raise EngineError(f"the later snapshot lacks column(s) {gone}: not an increment")
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
    """The floor applied to what changed since `old` (None: the whole is the increment)."""
    if old is None or old.n == 0:
        return floor_violation(new)
    rows = abs(new.n - old.n)
    need = new.d + FLOOR_MARGIN
    if rows == 0 or rows >= need:
        return None
    return f"increment of {rows} rows over {new.d} columns is under the floor of {need} rows"
