"""A FATE model bound to a service id, as a model the node's own predict endpoints serve.

`model/bind` (FATE's step before FATE-Serving answers for a service id) makes one party's
trained pipeline an engine model: the binary HomoLR's weights with the FeatureScale before
it folded in (a standard or min-max scale is affine, x' = (x − shift)/divide, so
w·x' + b = Σ (w_j/divide_j)·x_j + b − Σ w_j·shift_j/divide_j: the same probabilities on
raw rows), as fedstats' `lr` over the DataTransform's feature names, the label the
class. The REST and WebSocket predict endpoints then answer it like any model built here.
Pipelines with another learner, or a one-vs-rest HomoLR, are refused naming why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...engine.models.glm import GlmModel
from . import dag
from .errors import JobRefused


def serving_model(store: Any, model_id: str, model_version: str, role: str,
                  party: str) -> GlmModel:
    """The engine model of `role` `party`'s part of the FATE model (JobRefused if none)."""
    rows = store.models({"model_id": model_id, "model_version": model_version, "role": role,
                         "party_id": party})
    if not rows:
        raise JobRefused(f"model {role}#{party}#{model_id} {model_version} does not exist")
    row = rows[0]
    dsl = row["train_dsl"]
    scale: dict[str, Any] | None = None
    label = "y"
    lr: dict[str, Any] | None = None
    for name in dag.order(dsl):
        module = dsl["components"][name]["module"]
        body = store.output(row["job_id"], name, role, party, "model")
        if body is None:
            continue
        if module == "DataTransform":
            label = str(body.get("label_name") or "y")
        elif module == "FeatureScale":
            scale = dict(body)
        elif module == "HomoLR":
            lr = dict(body)
    if lr is None:
        raise JobRefused("only a pipeline ending in a HomoLR is served by service id "
                         f"(model {model_id} {model_version} has none)")
    if lr.get("needOneVsRest"):
        raise JobRefused("a one-vs-rest HomoLR (more than two classes) is not served by "
                         "service id; predict jobs serve it")
    header = [str(h) for h in lr["header"]]
    w = np.array([float(lr["weight"][h]) for h in header])
    b = float(lr["intercept"])
    if scale is not None:
        scaled = [str(scale["header"][j]) for j in scale["scale_columns"]]
        for name, shift, divide in zip(scaled, scale["shift"], scale["divide"], strict=True):
            if name in header:
                j = header.index(name)
                b -= w[j] * float(shift) / float(divide)
                w[j] /= float(divide)
    meta = {"algo": "lr", "labels": ["0", "1"], "family": "binomial",
            "source": {"fate_model_id": model_id, "fate_model_version": model_version,
                       "role": role, "party_id": party}}
    return GlmModel(header, {h: "C" for h in header}, {h: h for h in header}, [label],
                    {"coef": w[None, :], "intercept": np.array([b])}, meta)
