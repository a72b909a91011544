"""Models built from an accumulator alone, by algorithm id, and their stored form.

    build_model(algo, acc, context) -> Model      context: the spec's MLContext (dict)
    Model.predict(batch) -> KSVSMap               {"values": [{"res": "...", ...}, ...]}
    Model.predict_columns(batch) -> Columns        {"res": [...], ...} (the same, by key)
    Model.info() / Model.to_dict()                 JSON-able ModelInfo / complete state
    load_model(d) -> Model                         exact inverse of to_dict
ROW_ALGORITHMS                                  `lr`, `poisson`: fitted from rows by rounds
                                               (`models.glm`; the service drives them)

One map per input row, in input order, with the reference's keys (prediction-api.md):
regressions (`mlr`, `ridge`, `lasso`, `elasticnet`, `pcr`) answer `res` (the value);
classifiers (`lda`, `mlda`, `mqda`, `bayes`) answer `res` (the class label: "0"/"1" for
a B target, the level for a T target), their family's keys (`resZ`/`z0`/`z1GTz0`,
`<target>$<label>`, `Prob`) and fedstats' `proba_<label>` for every class. Every value
is a string, floats written with `repr` so they read back exactly. Each module holds
one family; this one is the registry and the only public door.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..accumulator import Accumulator
from ..errors import ModelError
from .base import Columns, KSVSMap, Model, load_model
from .bayes import build_bayes
from .context import MLContext
from .discriminant import build_lda, build_qda
from .glm import ALGOS as ROW_ALGORITHMS  # importing it registers GlmModel for load_model
from .linear import build_linear
from .pcr import build_pcr

ALGORITHMS = {
    "mlr": build_linear,
    "ridge": build_linear,
    "lasso": build_linear,
    "elasticnet": build_linear,
    "lda": build_lda,
    "mlda": build_lda,
    "mqda": build_qda,
    "bayes": build_bayes,
    "pcr": build_pcr,
}


def build_model(algo: str, acc: Accumulator, context: Mapping[str, Any] | MLContext) -> Model:
    """Build model `algo` from the accumulator's statistics (never from rows)."""
    builder = ALGORITHMS.get(algo)
    if algo in ROW_ALGORITHMS:
        raise ModelError(f"{algo} is fitted from rows, not from statistics: build it on a "
                         "project that keeps rows (keepRows=true)")
    if builder is None:
        raise ModelError(f"unknown algorithm {algo!r}: expected one of {', '.join(ALGORITHMS)}")
    ctx = MLContext.parse(context)
    if acc.n == 0:
        raise ModelError("the project has no rows: learn some before building a model")
    started = time.perf_counter_ns()
    model = builder(algo, acc, ctx)
    model.meta["buildTimeNanosec"] = time.perf_counter_ns() - started
    return model


__all__ = ["ALGORITHMS", "ROW_ALGORITHMS", "Columns", "KSVSMap", "MLContext", "Model", "build_model", "load_model"]
