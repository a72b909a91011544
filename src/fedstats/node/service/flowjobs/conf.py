"""Runtime conf v2 resolution (pure): a component's parameters for one (role, party index).

FATE merges `component_parameters.common.<cpn>` with the role-specific block whose key
is the party's index, `"all"`, or a `"0|1"` list of indices; the role-specific values
win, dicts merging key by key. `job_parameters` resolve the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_TIMEOUT = 259200  # seconds, FATE's job_default_config


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _role_blocks(section: Mapping[str, Any], role: str, index: int) -> list[Mapping[str, Any]]:
    blocks = []
    by_index = (section.get("role") or {}).get(role) or {}
    for key, block in by_index.items():
        if (key == "all" or str(index) in str(key).split("|")) and isinstance(block, Mapping):
            blocks.append(block)
    return blocks


def component_params(conf: Mapping[str, Any], component: str, role: str,
                     index: int) -> dict[str, Any]:
    section = conf.get("component_parameters") or {}
    params: dict[str, Any] = dict((section.get("common") or {}).get(component) or {})
    for block in _role_blocks(section, role, index):
        params = merge(params, block.get(component) or {})
    return params


def job_params(conf: Mapping[str, Any], role: str | None = None, index: int = 0) -> dict[str, Any]:
    section = conf.get("job_parameters") or {}
    params: dict[str, Any] = dict(section.get("common") or {})
    if role is not None:
        for block in _role_blocks(section, role, index):
            params = merge(params, block)
    return params


def model_id_of(roles: Mapping[str, list[int]]) -> str:
    """FATE's model id: `arbiter-10000#guest-9999#host-10000#model`."""
    parts = sorted(f"{r}-{'_'.join(str(p) for p in sorted(set(ids)))}" for r, ids in roles.items())
    return "#".join(parts) + "#model"


def timeout_of(conf: Mapping[str, Any]) -> float:
    value = job_params(conf).get("timeout", DEFAULT_TIMEOUT)
    try:
        t = float(value)
    except (TypeError, ValueError):
        return float(DEFAULT_TIMEOUT)
    return t if t > 0 else float(DEFAULT_TIMEOUT)
