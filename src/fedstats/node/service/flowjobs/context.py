"""What a component sees: its parties (role, party id, site, parameters, inputs, the
upstream model), a recorder for tracking, and `check()`, which raises when the job was
stopped or ran out of time. Parties of role arbiter hold no data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ComponentFailed

DATA_KINDS = ("data", "train_data", "test_data", "eval_data", "validate_data")


class Recorder(Protocol):
    def metric(self, role: str, party: str, namespace: str, name: str,
               meta: dict[str, Any], data: list[list[Any]]) -> None: ...

    def output(self, role: str, party: str, kind: str, body: Any) -> None: ...


@dataclass
class PartyTask:
    role: str
    party_id: str
    index: int
    site: Any
    params: dict[str, Any]
    inputs: dict[str, list[str]] = field(default_factory=dict)
    model: dict[str, Any] | None = None  # the upstream component's model body

    @property
    def need_run(self) -> bool:
        return bool(self.params.get("need_run", True))

    @property
    def holds_data(self) -> bool:
        return self.role != "arbiter"

    def data_ref(self) -> str | None:
        for kind in DATA_KINDS:
            refs = self.inputs.get(kind)
            if refs:
                return refs[0]
        return None

    def call(self, ctx: Context, op: str, output: bool = True, **args: Any) -> Any:
        ref = self.data_ref()
        if ref is None:
            raise ComponentFailed(f"{ctx.component}: {self.role} {self.party_id} has no data input")
        return self.site.call(ctx.job_id, self.role, op, [ref], ctx.out if output else None,
                              **args)


@dataclass
class Context:
    job_id: str
    component: str
    module: str
    job_type: str
    parties: list[PartyTask]
    record: Recorder
    check: Callable[[], None]

    @property
    def out(self) -> str:
        return f"{self.component}.data"

    def data_parties(self) -> list[PartyTask]:
        return [p for p in self.parties if p.holds_data and p.need_run]

    def model_everywhere(self, model: dict[str, Any], meta: dict[str, Any]) -> None:
        for p in self.parties:
            if p.need_run:
                self.record.output(p.role, p.party_id, "model", model)
                self.record.output(p.role, p.party_id, "model_meta",
                                   {"module_name": self.module, "meta_data": meta})

    def summary_everywhere(self, summary: dict[str, Any]) -> None:
        for p in self.parties:
            if p.need_run:
                self.record.output(p.role, p.party_id, "summary", summary)


def flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def kind_of(ctx: Context) -> str:
    """The output data's type: train, or test in a predict job."""
    return "train" if ctx.job_type != "predict" else "test"
