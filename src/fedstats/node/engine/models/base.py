"""What every model shares: its inputs, its parameters as named arrays, and predict.

A model is a few small arrays (coefficients, class means, ...) plus the names of the
columns it reads. Keeping the state as named float64 arrays makes `to_dict` / `load_model`
one generic, exact round trip (floats travel as JSON numbers, which Python writes with
`repr` and reads back bit for bit), and lets each algorithm module hold only its math.

`predict(batch)` lays a parsed DataFrame out in the model's input columns: extra columns
are ignored, a category level the batch lacks is 0, an input attribute the batch lacks is
a `ModelError` naming it. Answers are the reference's `KSVSMap`:
`{"values": [{"res": "...", ...}, ...]}`, one map of strings per input row in input
order (prediction-api.md, "Model Prediction Map Keys"), floats written with `repr` so
they read back bit for bit. Each family computes its answer as columns
(`predict_columns`: key -> one string per row), which `ksvs` turns into the row maps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import linalg

from ..errors import ModelError
from ..frame import Batch
from .context import ENCODED

Floats = npt.NDArray[np.float64]
Columns = dict[str, list[str]]
KSVSMap = dict[str, list[dict[str, str]]]
FORMAT = 1

# Correlation matrices whose smallest eigenvalue is below this (relative to the largest)
# are treated as singular: an exactly collinear set of columns lands near 1e-16 after
# rounding, while real, merely correlated data sits many orders of magnitude above it.
COLLINEAR = 1e-12


class Model:
    """A built model: input columns, target attributes, named arrays, metadata."""

    algo: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Model]]] = {}

    def __init__(
        self,
        inputs: Sequence[str],
        input_types: Mapping[str, str],
        input_parents: Mapping[str, str],
        targets: Sequence[str],
        arrays: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.inputs: list[str] = list(inputs)
        self.input_types: dict[str, str] = dict(input_types)  # attribute -> type letter
        self.input_parents: dict[str, str] = dict(input_parents)  # column -> attribute
        self.targets: list[str] = list(targets)
        self.arrays: dict[str, Floats] = {
            k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()
        }
        self.meta: dict[str, Any] = dict(meta or {})
        self.meta.setdefault("creationDate", time.time_ns() // 1_000_000)  # ms, as Appendix A

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for algo in getattr(cls, "algos", (cls.algo,)):
            if algo:
                Model.registry[algo] = cls

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.meta.get('algo', self.algo)} inputs={self.inputs}>"

    # ----------------------------------------------------------------- use
    def predict(self, batch: Batch) -> KSVSMap:
        """Predictions for every row of `batch`, as the reference's KSVSMap (row maps)."""
        return ksvs(self._predict(self.design(batch)))

    def predict_columns(self, batch: Batch) -> Columns:
        """The same answer as columns: key -> one string per row (`res` first)."""
        return self._predict(self.design(batch))

    def _predict(self, x: Floats) -> Columns:  # pragma: no cover - every model overrides
        raise NotImplementedError

    def design(self, batch: Batch) -> Floats:
        """The batch's values in the model's input column order."""
        for attr, typ in self.input_types.items():
            got = batch.types.get(attr)
            if got is None:
                raise ModelError(f"the rows lack input attribute {attr!r} that the model needs")
            if (got in ENCODED) != (typ in ENCODED):
                raise ModelError(
                    f"input attribute {attr!r} has type {got!r} here but {typ!r} in the model"
                )
        where = {c: j for j, c in enumerate(batch.columns)}
        x = np.zeros((batch.rows, len(self.inputs)))
        pairs = [(k, where[c]) for k, c in enumerate(self.inputs) if c in where]
        if pairs:
            mine, theirs = zip(*pairs, strict=True)
            x[:, list(mine)] = batch.values[:, list(theirs)]
        return x

    # ----------------------------------------------------------------- describe
    @property
    def name(self) -> str:
        return str(self.meta.get("algo", self.algo))

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: Appendix A's ModelInfo fields (but the project-relative
        `attributeIndexes` / `targetindexes` and `modelId`, which the caller knows),
        then fedstats' own (`algo`, `inputs`, `targets`, parameters, arrays)."""
        keys = list(self._predict(np.zeros((1, len(self.inputs)))))
        scores = [k for k in keys if k not in ("res", "z0", "z1GTz0")
                  and not k.startswith("proba_")]
        params = self.meta.get("params") or {}
        out: dict[str, Any] = {
            "modelType": self.name,
            "modelBuilt": int(self.meta.get("n", 0)),
            "buildTime": int(self.meta.get("buildTimeNanosec", 0)) // 1_000_000,
            "creationDate": int(self.meta.get("creationDate", 0)),
            "attributeNames": list(self.input_types),
            "attributeTypes": list(self.input_types.values()),
            "predictInfo": keys,
            "scoreInfo": scores or ["res"],
            "targetNames": list(self.targets),
            "info": {"buildStatus": "No Error",
                     "buildTimeNanosec": str(int(self.meta.get("buildTimeNanosec", 0))),
                     **{str(k): _text(v) for k, v in params.items()}},
            "extra": {},
            "algo": self.name,
            "inputs": list(self.inputs),
            "targets": list(self.targets),
        }
        out.update({k: v for k, v in self.meta.items() if k != "algo"})
        out.update(self._info())
        return out

    def _info(self) -> dict[str, Any]:
        return {k: v.tolist() for k, v in self.arrays.items()}

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the model exactly (JSON-able)."""
        return {
            "format": FORMAT,
            "algo": self.name,
            "inputs": list(self.inputs),
            "inputTypes": dict(self.input_types),
            "inputParents": dict(self.input_parents),
            "targets": list(self.targets),
            "meta": dict(self.meta),
            "arrays": {
                k: {"shape": list(v.shape), "data": v.ravel().tolist()}
                for k, v in self.arrays.items()
            },
        }


def load_model(d: Mapping[str, Any]) -> Model:
    """The model `Model.to_dict` described (an exact round trip)."""
    if not isinstance(d, Mapping):
        raise ModelError("a stored model must be a JSON object")
    if d.get("format") != FORMAT:
        raise ModelError(f"stored model has format {d.get('format')!r}, expected {FORMAT}")
    cls = Model.registry.get(str(d.get("algo")))
    if cls is None:
        raise ModelError(f"stored model has unknown algo {d.get('algo')!r}")
    try:
        arrays = {
            k: np.asarray(v["data"], dtype=np.float64).reshape(v["shape"])
            for k, v in d["arrays"].items()
        }
        return cls(d["inputs"], d["inputTypes"], d["inputParents"], d["targets"], arrays, d["meta"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"stored model is malformed: {e}") from e


# --------------------------------------------------------------------- shared helpers
def _text(value: Any) -> str:
    """A ModelInfo `info` value: the reference's map holds strings only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def strings(values: Iterable[float]) -> list[str]:
    """Floats written so they read back bit for bit."""
    return [repr(float(v)) for v in values]


def check_rows(n: int, needed: int, what: str) -> None:
    if n < needed:
        raise ModelError(f"{what} needs at least {needed} rows, the project has {n}")


def spd_solve(s: Floats, b: Floats, columns: Sequence[str], hint: str = "") -> Floats:
    """Solve s·x = b for a symmetric positive (semi)definite s, refusing singular s.

    Solving on the correlation scale keeps columns of very different units from
    deciding the conditioning; a constant column or collinear columns get a message
    that names them, since a client can fix those.
    """
    diag = np.diag(s).copy()
    flat = [c for c, v in zip(columns, diag, strict=True) if not v > 0.0]
    if flat:
        raise ModelError(f"input column {flat[0]!r} is constant: it cannot be used{hint}")
    scale = 1.0 / np.sqrt(diag)
    c = s * scale[:, None] * scale[None, :]
    w, v = linalg.eigh(c)
    if w[0] <= COLLINEAR * w[-1]:
        weights = v[:, 0]
        involved = [columns[int(i)] for i in np.flatnonzero(np.abs(weights) > 1e-3)]
        raise ModelError(
            f"input columns {involved} are collinear (the matrix is singular): "
            f"drop one of them{hint}"
        )
    factor = linalg.cho_factor(c, check_finite=False)
    rhs = b * (scale[:, None] if b.ndim == 2 else scale)
    z = linalg.cho_solve(factor, rhs, check_finite=False)
    return z * (scale[:, None] if b.ndim == 2 else scale)


def ksvs(columns: Mapping[str, Sequence[str]]) -> KSVSMap:
    """`{"values": [row map, ...]}` from equal-length columns, rows in order."""
    keys = list(columns)
    rows = zip(*columns.values(), strict=True)
    return {"values": [dict(zip(keys, row, strict=True)) for row in rows]}


def classify(labels: Sequence[str], proba: Floats,
             keys: Mapping[str, Sequence[str]] | None = None) -> Columns:
    """Columns for a classifier: `res` (the most probable label), the family's own
    reference keys (`keys`, already strings), then fedstats' `proba_<label>` per class."""
    out: Columns = {"res": [labels[i] for i in np.argmax(proba, axis=1)]}
    for key, values in (keys or {}).items():
        out[key] = list(values)
    for k, label in enumerate(labels):
        out[f"proba_{label}"] = strings(proba[:, k])
    return out


Builder = Callable[..., Model]
