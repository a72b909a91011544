"""The PSR contract grammar: text in, syntax tree out (pure; errors say line and column).

    rule   := or ; or := and (OR and)* ; and := not (AND not)* ; not := NOT not | (rule) | cmp
    cmp    := sum op sum          op: > >= < <= = == != <>
    sum    := product (+|- product)* ; product := unary (*|/ unary)*
    unary  := -unary | number | (sum) | NAME(args)

plus `@send block|allow` / `@receive block|allow` lines and `#` comments. Names and
arities of the statistics are checked here, so a contract is validated without data;
what they compute is `evaluate`'s job.

A contract a client sends is bounded before any of it is parsed: whoever takes it from a
client (the fedml facade, the create options) passes the node's `Limits.max_contract_rules`
and `max_contract_bytes`, because it is stored and then announced to every peer in one NATS
control message, which must fit the server's `max_payload`. A contract already accepted
(stored, or announced by the admin) is parsed without them: a node whose limits were raised
must still load what it accepted, and peers what their admin announced. A parsed contract
is immutable, so parses are memoised by their lines: the facade parses off the event loop
to validate, and the agent's parse of the same lines on the loop is then a lookup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from .errors import ContractError

Action = Literal["block", "allow"]

# statistic -> number of attribute arguments (evaluate.STATISTICS computes them)
ARITY = {
    "COUNT": 1, "MEAN": 1, "VARIANCE": 1, "VARIANCE_UNBIASED": 1, "STDDEV": 1,
    "STDDEV_UNBIASED": 1, "COVAR": 2, "COVAR_UNBIASED": 2, "LINCORR": 2,
}  # fmt: skip
# functions of a binary column `b` (the last argument) over the whole rows
SPECIAL = {"PCT_OF_TRUE": 1, "PCT_OF_FALSE": 1, "MEAN_WHEN_TRUE": 2, "MEAN_WHEN_FALSE": 2}
FUNCTIONS = sorted([*ARITY, *(f"COND_{k}" for k in ARITY), *SPECIAL])


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
MAX_RULE_CHARS = 2000  # a rule longer than this is a mistake, not a contract
MAX_RULE_TOKENS = 400  # bounds the syntax tree, hence the evaluator's recursion
MAX_NESTING = 32  # parentheses, NOT and unary minus, nested


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
        if len(text) > MAX_RULE_CHARS:
            raise ContractError(f"rule longer than {MAX_RULE_CHARS} characters", line, 1)
        self.toks = _tokens(text, line)
        if len(self.toks) > MAX_RULE_TOKENS:
            raise ContractError(
                f"rule of more than {MAX_RULE_TOKENS} terms", line, self.toks[MAX_RULE_TOKENS].col
            )
        self.i = 0
        self.line = line
        self.depth = 0

    def _deeper(self) -> None:
        """One more level of nesting (the callers' `finally` takes it back); capped."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ContractError(
                f"nested more than {MAX_NESTING} levels deep", self.line, self.peek().col
            )

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
        self._deeper()
        try:
            return self._negation()
        finally:
            self.depth -= 1

    def _negation(self) -> Cond:
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
        self._deeper()
        try:
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self) -> Expr:
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
        arity = ARITY[name[5:]]
        ok = len(args) in (arity + 1, arity + 2)
        names = args[: arity + 1]
        if ok and len(args) == arity + 2 and args[-1] not in (0.0, 1.0):
            raise ContractError(f"{name}: the condition value must be 0 or 1", line, col)
        want = f"{arity} attribute(s), a binary column and optionally 0 or 1"
    else:
        arity = ARITY[name] if name in ARITY else SPECIAL[name]
        ok, names = len(args) == arity, args
        want = f"{arity} attribute(s)"
    if not ok:
        raise ContractError(f"{name} takes {want}, not {len(args)} argument(s)", line, col)
    if any(not isinstance(a, str) for a in names):
        raise ContractError(f"{name}: arguments must be attribute names", line, col)


def parse_contract(lines: str | Sequence[str], max_rules: int | None = None,
                   max_bytes: int | None = None) -> Contract:
    """Parse a contract (text, or a StringList of lines); raises ContractError.

    With `max_rules` and `max_bytes` (a client's contract), its size is checked first."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    if not isinstance(lines, Sequence):
        raise ContractError("a PSR contract is text or a list of lines")
    for number, raw in enumerate(lines, start=1):
        if not isinstance(raw, str):
            raise ContractError(f"a rule is text, not {type(raw).__name__}", number, 1)
    if max_rules is not None or max_bytes is not None:
        check_size(lines, max_rules, max_bytes)
    return _parse(tuple(lines))


def check_size(lines: Sequence[str], max_rules: int | None, max_bytes: int | None) -> None:
    """ContractError naming the limit when the lines (strings) hold too many rules or bytes.

    Linear, and cheap before parsing: bytes are counted line by line with an early stop,
    rules as the lines that are neither blank, comments nor `@` actions.
    """
    size, rules = 0, 0
    max_rules = len(lines) if max_rules is None else max_rules
    max_bytes = 1 << 62 if max_bytes is None else max_bytes
    for number, raw in enumerate(lines, start=1):
        size += len(raw.encode("utf-8", "surrogatepass")) + 1
        if size > max_bytes:
            raise ContractError(
                f"the contract is over the node's limit max_contract_bytes={max_bytes} "
                f"(UTF-8 bytes, one newline per line)", number, 1)
        text = raw.split("#", 1)[0].strip()
        if text and not text.startswith("@"):
            rules += 1
            if rules > max_rules:
                raise ContractError(
                    f"the contract has more rules than the node's limit "
                    f"max_contract_rules={max_rules}", number, 1)


@lru_cache(maxsize=64)
def _parse(lines: tuple[str, ...]) -> Contract:
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
