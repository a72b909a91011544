"""DSL v2 and runtime conf v2 checks (fateflow-v1.md §5), as pure functions.

A job is refused before anything runs when its DSL is not an object of components with
modules, an input names a component or an output that does not exist, the components
form a cycle, a module is vertical (hetero) learning, trees or neural networks (fedstats
offers none of them: no silent fallback), the conf's roles are malformed, the initiator is
not one of its role's parties, or component parameters name a party index a role lacks.
Each failure is a FlowError(ARGUMENT_ERROR) whose message names the component or role.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .envelope import ARGUMENT_ERROR, FlowError

OFFERED = frozenset({"Reader", "DataTransform", "FeatureScale", "DataStatistics", "HomoLR",
                     "Evaluation", "HomoMLR", "HomoRidge", "HomoLasso", "HomoElasticNet",
                     "HomoLDA", "HomoMQDA", "HomoBayes", "HomoPCR"})
ROLES = ("guest", "host", "arbiter", "local")


def _fail(msg: str) -> NoReturn:
    raise FlowError(ARGUMENT_ERROR, msg)


def _refused(module: str) -> str | None:
    if module == "Intersection" or module.startswith("Hetero"):
        return "is vertical (hetero) learning, which fedstats does not offer (homo only)"
    if "SecureBoost" in module or module.endswith(("NN", "FTL")) or "Tree" in module:
        return "is a tree or neural module, which fedstats does not offer"
    if module not in OFFERED:
        return f"is not a module of this node (offered: {', '.join(sorted(OFFERED))})"
    return None


def check_dsl(dsl: Any) -> list[str]:
    """The components in an order where each follows its inputs; FlowError if invalid."""
    if not isinstance(dsl, dict) or not isinstance(dsl.get("components"), dict) \
            or not dsl["components"]:
        _fail('job_dsl must be {"components": {name: {"module": ...}, ...}} with one or more')
    comps: dict[str, Any] = dsl["components"]
    deps: dict[str, set[str]] = {}
    for name, c in comps.items():
        if not isinstance(c, dict) or not isinstance(c.get("module"), str):
            _fail(f"component {name!r} has no module")
        why = _refused(c["module"])
        if why:
            _fail(f"component {name!r}: module {c['module']} {why}")
        deps[name] = set()
        for kind, refs in _inputs(name, c.get("input", {})):
            for ref in refs:
                if kind == "model" and isinstance(ref, str) and ref.startswith("pipeline."):
                    if len(ref.split(".")) != 3 or not ref.endswith(".model"):
                        _fail(f"component {name!r}: input {ref!r} is not pipeline.<component>.model")
                    continue  # a deployed model's component (predict DSLs)
                if not isinstance(ref, str) or "." not in ref:
                    _fail(f"component {name!r}: input {ref!r} is not <component>.<output>")
                src, out = ref.split(".", 1)
                if src not in comps:
                    _fail(f"component {name!r}: input {ref!r} names no component of the DSL")
                outputs = comps[src].get("output", {}) if isinstance(comps[src], dict) else {}
                if out not in (outputs.get(kind, []) if isinstance(outputs, dict) else []):
                    _fail(f"component {name!r}: input {ref!r}: {src} has no {kind} output {out!r}")
                deps[name].add(src)
    return _order(deps)


def _inputs(name: str, inp: Any) -> list[tuple[str, list[Any]]]:
    if not isinstance(inp, dict):
        _fail(f"component {name!r}: input must be an object")
    out: list[tuple[str, list[Any]]] = []
    for kind, value in inp.items():
        if kind == "data":
            if not isinstance(value, dict):
                _fail(f"component {name!r}: input.data must be an object of lists")
            out += [("data", v if isinstance(v, list) else [v]) for v in value.values()]
        elif kind in ("model", "isometric_model", "cache"):
            out.append(("model" if kind != "cache" else "cache",
                        value if isinstance(value, list) else [value]))
    return out


def _order(deps: dict[str, set[str]]) -> list[str]:
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = [*path[path.index(n):], n]
            _fail(f"the DSL has a cycle: {' -> '.join(cycle)}")
        state[n] = 1
        for d in sorted(deps[n]):
            visit(d, [*path, n])
        state[n] = 2
        done.append(n)

    for n in deps:
        visit(n, [])
    return done


def check_conf(conf: Any) -> dict[str, list[int]]:
    """The conf's parties by role (ids as ints); FlowError naming what is wrong."""
    if not isinstance(conf, dict):
        _fail("job_runtime_conf must be an object")
    roles = conf.get("role")
    if not isinstance(roles, dict) or not roles:
        _fail('job_runtime_conf.role must be {"guest": [party ids], "host": [...], ...}')
    parties: dict[str, list[int]] = {}
    for role, ids in roles.items():
        if role not in ROLES:
            _fail(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        if not isinstance(ids, list) or not ids:
            _fail(f"role {role!r} needs a list of party ids")
        try:
            parties[role] = [int(i) for i in ids]
        except (TypeError, ValueError):
            _fail(f"role {role!r}: party ids must be integers, got {ids!r}")
    init = conf.get("initiator")
    if not isinstance(init, dict) or "role" not in init or "party_id" not in init:
        _fail('job_runtime_conf.initiator must be {"role": ..., "party_id": ...}')
    try:
        pid = int(init["party_id"])
    except (TypeError, ValueError):
        _fail(f"initiator party_id {init['party_id']!r} is not an integer")
    if pid not in parties.get(str(init["role"]), []):
        _fail(f"the initiator {init['role']} {init['party_id']} is not among the conf's "
              f"{init['role']} parties {parties.get(str(init['role']), [])}")
    per_role = (conf.get("component_parameters") or {}).get("role") or {}
    for role, by_index in per_role.items():
        if role not in parties:
            _fail(f"component_parameters name role {role!r}, which the conf's role lacks")
        for key in by_index if isinstance(by_index, dict) else []:
            if key == "all":
                continue
            for idx in str(key).split("|"):
                if not idx.isdigit() or int(idx) >= len(parties[role]):
                    _fail(f"component_parameters.role.{role}: index {key!r} is not one of "
                          f"the {len(parties[role])} {role} parties")
    return parties
