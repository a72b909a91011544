"""The DSL as a graph (pure): component order, upstream references, the predict DSL.

The facade checks a DSL before it gets here (api/flow/dsl.py); these functions read a
checked one. `predict_dsl` is what `model/deploy` stores: the train DSL restricted to
the chosen components, `train_data` read as `test_data`, `validate_data` dropped and
every model input taken from the deployed model (`pipeline.<cpn>.model`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .components import HAS_MODEL


def refs(component: Mapping[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """(data inputs by kind, model inputs) of one component."""
    inp = component.get("input") or {}
    data = {k: (v if isinstance(v, list) else [v]) for k, v in (inp.get("data") or {}).items()}
    model: list[str] = []
    for key in ("model", "isometric_model"):
        value = inp.get(key) or []
        model += value if isinstance(value, list) else [value]
    return data, model


def order(dsl: Mapping[str, Any]) -> list[str]:
    comps = dsl["components"]
    deps = {}
    for name, c in comps.items():
        data, model = refs(c)
        ups = [r.split(".")[0] for rs in data.values() for r in rs]
        ups += [r.split(".")[0] for r in model if not r.startswith("pipeline.")]
        deps[name] = [u for u in ups if u in comps]
    done: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        for d in deps[n]:
            visit(d)
        done.append(n)

    for n in comps:
        visit(n)
    return done


def predict_dsl(train: Mapping[str, Any], cpn_list: Iterable[str] | None = None) -> dict[str, Any]:
    comps = train["components"]
    chosen = list(comps) if cpn_list is None else [c for c in order(train) if c in set(cpn_list)]
    out: dict[str, Any] = {}
    for name in chosen:
        c = comps[name]
        new: dict[str, Any] = {"module": c["module"]}
        data, model = refs(c)
        inputs: dict[str, Any] = {}
        d2: dict[str, list[str]] = {}
        for kind, rs in data.items():
            if kind == "validate_data":
                continue
            kept = [r for r in rs if r.split(".")[0] in chosen]
            if kept:
                d2["test_data" if kind == "train_data" else kind] = kept
        if d2:
            inputs["data"] = d2
        sources = [r.split(".")[1] if r.startswith("pipeline.") else r.split(".")[0] for r in model]
        if c["module"] in HAS_MODEL and not sources:
            sources = [name]
        if sources:
            inputs["model"] = [f"pipeline.{s}.model" for s in sources]
        if inputs:
            new["input"] = inputs
        if "output" in c:
            new["output"] = c["output"]
        out[name] = new
    return {"components": out}


def predict_conf(roles: Mapping[str, list[int]], initiator: Mapping[str, Any], model_id: str,
                 model_version: str, readers: Iterable[str]) -> dict[str, Any]:
    per_role = {role: {str(i): {r: {"table": {"name": "", "namespace": ""}} for r in readers}
                       for i in range(len(ids))}
                for role, ids in roles.items() if role != "arbiter"}
    return {"dsl_version": 2, "initiator": dict(initiator), "role": dict(roles),
            "job_parameters": {"common": {"model_id": model_id, "model_version": model_version,
                                          "job_type": "predict"}},
            "component_parameters": {"role": per_role}}
