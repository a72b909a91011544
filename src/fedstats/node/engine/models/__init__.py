"""Models built from an accumulator alone, by algorithm id, and their stored form.

    build_model(algo, acc, context) -> Model      context: the spec's MLContext (dict)
    Model.predict(batch) -> KSVSMap               {"prediction": [...], "proba_<label>": [...]}
    Model.info() / Model.to_dict()                 JSON-able summary / complete state
    load_model(d) -> Model                         exact inverse of to_dict

Regression models (`mlr`, `ridge`, `lasso`, `elasticnet`, `pcr`) answer `prediction` (the
value); classifiers (`lda`, `mlda`, `mqda`, `bayes`) answer `prediction` (the class label:
"0"/"1" for a B target, the level for a T target) and `proba_<label>` for every class.
Every value is a string, floats written with `repr` so they read back exactly. Each
module holds one family; this one is the registry and the only public door.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..accumulator import Accumulator
from ..errors import ModelError
from .base import KSVSMap, Model, load_model
from .bayes import build_bayes
from .context import MLContext
from .discriminant import build_lda, build_qda
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
    if builder is None:
        raise ModelError(f"unknown algorithm {algo!r}: expected one of {', '.join(ALGORITHMS)}")
    ctx = MLContext.parse(context)
    if acc.n == 0:
        raise ModelError("the project has no rows: learn some before building a model")
    return builder(algo, acc, ctx)


__all__ = ["ALGORITHMS", "KSVSMap", "MLContext", "Model", "build_model", "load_model"]
