"""The build context (the spec's MLContext) and its resolution against an accumulator.

A client names attributes either by name (`inputAttributeNames`, `targetAttributeNames`)
or by index (`inputAttributes`, `targets`) into the project's attribute list, which is
the order in which attributes first appeared. Both forms are accepted; when a client
sends both, they must agree. Without inputs, every attribute that is not a target is an
input. `extraParameters` arrive as strings: the typed readers here turn them into
numbers with one error message shape, so every model reports a bad value the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..accumulator import Accumulator
from ..errors import ModelError

ENCODED = frozenset("TSL")  # attributes that became indicator columns
ONE_HOT = frozenset("TS")  # exactly one indicator is 1 per row


@dataclass(frozen=True)
class MLContext:
    """What to build: targets, inputs and string parameters."""

    targets: tuple[int, ...] = ()
    input_attributes: tuple[int, ...] = ()
    input_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any) -> MLContext:
        """An MLContext from its JSON object (or an MLContext, returned as is)."""
        if isinstance(obj, MLContext):
            return obj
        if obj is None:
            obj = {}
        if not isinstance(obj, Mapping):
            raise ModelError("an MLContext must be a JSON object")
        unknown = set(obj) - {
            "targets",
            "inputAttributes",
            "inputAttributeNames",
            "targetAttributeNames",
            "extraParameters",
        }
        if unknown:
            raise ModelError(f"MLContext has unknown field(s): {', '.join(sorted(unknown))}")
        extra = obj.get("extraParameters") or {}
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise ModelError("extraParameters must be an object of strings")
        return cls(
            targets=_ints(obj, "targets"),
            input_attributes=_ints(obj, "inputAttributes"),
            input_names=_names(obj, "inputAttributeNames"),
            target_names=_names(obj, "targetAttributeNames"),
            extra={k: str(v) for k, v in extra.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "inputAttributes": list(self.input_attributes),
            "inputAttributeNames": list(self.input_names),
            "targetAttributeNames": list(self.target_names),
            "extraParameters": dict(self.extra),
        }

    # ----------------------------------------------------------------- resolution
    def resolve(self, acc: Accumulator) -> tuple[list[str], list[str]]:
        """(input attribute names, target attribute names), checked against `acc`."""
        attrs = attributes_of(acc)
        targets = _pick(attrs, self.target_names, self.targets, "target")
        if not targets:
            raise ModelError("the MLContext names no target (targets or targetAttributeNames)")
        inputs = _pick(attrs, self.input_names, self.input_attributes, "input")
        if not inputs:
            inputs = [a for a in attrs if a not in targets]
        both = [a for a in inputs if a in targets]
        if both:
            raise ModelError(f"attribute {both[0]!r} is both a target and an input")
        if len(set(inputs)) != len(inputs):
            dup = next(a for a in inputs if inputs.count(a) > 1)
            raise ModelError(f"input attribute {dup!r} is listed twice")
        if not inputs:
            raise ModelError("the model has no input attribute")
        return inputs, targets

    # ----------------------------------------------------------------- parameters
    def check_parameters(self, algo: str, accepted: Sequence[str]) -> None:
        """ModelError naming the first extraParameter `algo` does not take (never ignored).

        `accepted` lists every name the builder reads (the reference's and any alias);
        a parameter outside it is refused, so a misspelt or another algorithm's
        parameter cannot be silently dropped. Element names for initial weights
        (the reference's elastic-net `ATTRIBUTE_NAME` form) are not offered either.
        """
        unknown = sorted(set(self.extra) - set(accepted))
        if unknown:
            takes = ", ".join(sorted(accepted)) or "no extraParameters"
            raise ModelError(
                f"parameter {unknown[0]!r} is not a parameter of {algo} on this node: "
                f"{algo} takes {takes}"
            )

    def number(
        self,
        name: str,
        default: float,
        *,
        low: float = -math.inf,
        high: float = math.inf,
        low_open: bool = False,
        aliases: Sequence[str] = (),
    ) -> float:
        key, raw = self._raw(name, aliases)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ModelError(f"parameter {key!r} must be a number, got {raw!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            bound = f"{'>' if low_open else '>='} {low:g}" if low > -math.inf else ""
            if high < math.inf:
                bound = f"{bound} and <= {high:g}" if bound else f"<= {high:g}"
            raise ModelError(f"parameter {key!r} must be a finite number {bound}, got {raw!r}")
        return value

    def integer(
        self, name: str, default: int | None, *, low: int = 1, aliases: Sequence[str] = ()
    ) -> int | None:
        key, raw = self._raw(name, aliases)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise ModelError(f"parameter {key!r} must be an integer, got {raw!r}") from None
        if value < low:
            raise ModelError(f"parameter {key!r} must be >= {low}, got {raw!r}")
        return value

    def boolean(self, name: str, default: bool, *, aliases: Sequence[str] = ()) -> bool:
        """'true' or 'false' (any case), as the reference writes its Boolean parameters."""
        key, raw = self._raw(name, aliases)
        if raw is None:
            return default
        text = raw.strip().lower()
        if text not in ("true", "false"):
            raise ModelError(f"parameter {key!r} must be 'true' or 'false', got {raw!r}")
        return text == "true"

    def text(self, name: str, default: str, choices: Sequence[str]) -> str:
        """One of `choices`; a documented choice this node does not offer is refused."""
        key, raw = self._raw(name, ())
        if raw is None:
            return default
        if raw.strip() not in choices:
            raise ModelError(
                f"parameter {key!r} must be one of {', '.join(choices)} here, got {raw!r}"
            )
        return raw.strip()

    def _raw(self, name: str, aliases: Sequence[str]) -> tuple[str, str | None]:
        """(the key the client used, its value); a name given twice under aliases is refused."""
        given = [key for key in (name, *aliases) if key in self.extra]
        if len(given) > 1:
            raise ModelError(
                f"parameters {given[0]!r} and {given[1]!r} are the same setting: send one"
            )
        if not given:
            return name, None
        return given[0], self.extra[given[0]]


def attributes_of(acc: Accumulator) -> list[str]:
    """The project's attributes in order of first appearance."""
    seen: dict[str, None] = {}
    for col in acc.columns:
        seen.setdefault(acc.parents.get(col, col), None)
    return list(seen)


def present_columns(acc: Accumulator, attribute: str) -> list[str]:
    """An attribute's columns; for an encoded attribute, only the levels some row has.

    A category level whose rows were all forgotten carries no information (its column is
    all zeros) and would make every covariance singular, so it is left out.
    """
    cols = acc.attribute_columns(attribute)
    if acc.types.get(attribute) not in ENCODED:
        return cols
    return [c for c in cols if level_count(acc, c) > 0]


def level_count(acc: Accumulator, column: str) -> int:
    """The number of rows where a binary column is 1."""
    if column in acc.cond:
        return int(acc.cond[column].n)
    mean = float(acc.moments([column]).mean[0])
    return round(mean * acc.n)


def _pick(attrs: list[str], names: Sequence[str], indices: Sequence[int], role: str) -> list[str]:
    by_index = []
    for i in indices:
        if not 0 <= i < len(attrs):
            raise ModelError(
                f"{role} index {i} is out of range: the project has {len(attrs)} attributes"
            )
        by_index.append(attrs[i])
    unknown = [a for a in names if a not in attrs]
    if unknown:
        raise ModelError(f"unknown {role} attribute {unknown[0]!r}")
    if names and by_index and list(names) != by_index:
        raise ModelError(
            f"{role} attribute names {list(names)} disagree with indices {list(indices)}"
        )
    return list(names) or by_index


def _ints(obj: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise ModelError(f"{key} must be a list of attribute indices")
    out = []
    for v in value:
        if isinstance(v, bool):
            raise ModelError(f"{key} must hold integers, got {v!r}")
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise ModelError(f"{key} must hold integers, got {v!r}") from None
        if isinstance(v, float) and v != int(v):
            raise ModelError(f"{key} must hold integers, got {v!r}")
    return tuple(out)


def _names(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"{key} must be a list of attribute names")
    return tuple(value)


@dataclass
class Problem:
    """A context resolved against an accumulator: the columns a model reads."""

    inputs: list[str]  # expanded input columns
    input_types: dict[str, str]  # input attribute -> type letter
    input_parents: dict[str, str]  # input column -> attribute
    targets: list[str]  # target attribute names
    context: MLContext

    @classmethod
    def of(cls, acc: Accumulator, context: MLContext, *, drop_reference: bool) -> Problem:
        """Resolve; with `drop_reference`, one-hot inputs lose their last present level.

        A full set of one-hot columns sums to 1 in every row, so together with the
        intercept (or the class means) it is collinear; dropping the last level (in
        label order, so every site and every merge order agrees) makes it the reference
        level, as statistics packages do.
        """
        attrs, targets = context.resolve(acc)
        inputs: list[str] = []
        parents: dict[str, str] = {}
        for attr in attrs:
            cols = present_columns(acc, attr)
            if drop_reference and acc.types.get(attr) in ONE_HOT and cols:
                cols = sorted(cols)[:-1]
            for c in cols:
                parents[c] = attr
            inputs.extend(cols)
        if not inputs:
            raise ModelError("the input attributes have no usable column")
        types = {a: acc.types.get(a, "C") for a in attrs}
        return cls(inputs, types, parents, targets, context)

    def single_target(self) -> str:
        if len(self.targets) != 1:
            raise ModelError(f"the model takes one target attribute, got {len(self.targets)}")
        return self.targets[0]
