"""A party's data between components, and exact pooled moments (pure).

A `Frame` is what FATE calls a DTable of instances: sample ids, a feature header and
matrix, an optional label; predictions add FATE's result columns. Frames stay at their
site: what a coordinator sees of them are `Moments` (count, mean, centered power sums,
min, max per column), combined exactly across sites with the pairwise update of Chan
et al. and Pébay (stable at large offsets: no raw power sums).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

Floats = npt.NDArray[np.float64]


@dataclass
class Frame:
    sid: Floats
    header: list[str]
    x: Floats  # (n, d)
    label: Floats | None = None
    label_name: str | None = None
    sid_name: str = "id"
    # predictions: {"label", "predict_result", "predict_score", "predict_detail", "type"}
    predictions: dict[str, Any] | None = None
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.x.shape[0]) if self.predictions is None else len(self.sid)

    def columns(self) -> list[str]:
        if self.predictions is not None:
            return ["label", "predict_result", "predict_score", "predict_detail", "type"]
        return ([self.label_name] if self.label is not None and self.label_name else []) + self.header

    def rows(self, limit: int = -1) -> list[list[Any]]:
        """Rows as FATE's output data shows them (without the sid)."""
        n = self.n if limit < 0 else min(limit, self.n)
        if self.predictions is not None:
            p = self.predictions
            return [[_num(p["label"][i]), _num(p["predict_result"][i]), float(p["predict_score"][i]),
                     json.dumps(p["predict_detail"][i]), p["type"]] for i in range(n)]
        out = []
        for i in range(n):
            head = [_num(self.label[i])] if self.label is not None else []
            out.append(head + [float(v) for v in self.x[i]])
        return out

    def write_csv(self, path: Path) -> None:
        """`<path>` as CSV (header `sid,<columns>`) and `<path>.meta` (`{"header": [...]}`),
        written column-wise by pyarrow (floats to full precision)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        names = [self.sid_name, *self.columns()]
        arrays: list[Any] = [_ints_if_whole(self.sid)]
        if self.predictions is not None:
            p = self.predictions
            arrays += [_ints_if_whole(np.asarray(p["label"], dtype=float)),
                       _ints_if_whole(np.asarray(p["predict_result"], dtype=float)),
                       pa.array(np.asarray(p["predict_score"], dtype=float)),
                       pa.array([json.dumps(d) for d in p["predict_detail"]]),
                       pa.array([p["type"]] * self.n)]
        else:
            if self.label is not None and self.label_name:
                arrays.append(_ints_if_whole(self.label))
            arrays += [pa.array(self.x[:, j]) for j in range(self.x.shape[1])]
        table = pa.Table.from_arrays(arrays, names=names)
        with open(path, "wb") as f:
            f.write((",".join(names) + "\n").encode())
            pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False,
                                                         quoting_style="needed"))
        path.with_suffix(".meta").write_text(json.dumps({"header": names}))


def _ints_if_whole(v: Floats) -> Any:
    if len(v) and np.all(np.isfinite(v)) and np.all(v == np.floor(v)) and np.all(np.abs(v) < 2**53):
        return pa.array(v.astype(np.int64))
    return pa.array(v)


def _num(v: Any) -> Any:
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


@dataclass
class Moments:
    """Per column: n, mean, Σ(x-mean)^2..4, min, max (one site's or the pooled)."""

    n: int
    mean: Floats
    m2: Floats
    m3: Floats
    m4: Floats
    low: Floats
    high: Floats

    @classmethod
    def of(cls, x: Floats) -> Moments:
        n, d = x.shape
        if n == 0:
            z = np.zeros(d)
            return cls(0, z, z, z, z, np.full(d, np.inf), np.full(d, -np.inf))
        mean = x.mean(axis=0)
        c = x - mean
        c2 = c * c
        return cls(n, mean, c2.sum(0), (c2 * c).sum(0), (c2 * c2).sum(0), x.min(0), x.max(0))

    def merge(self, o: Moments) -> Moments:
        if o.n == 0:
            return self
        if self.n == 0:
            return o
        na, nb = float(self.n), float(o.n)
        n = na + nb
        d = o.mean - self.mean
        mean = self.mean + d * nb / n
        m2 = self.m2 + o.m2 + d * d * na * nb / n
        m3 = (self.m3 + o.m3 + d**3 * na * nb * (na - nb) / n**2
              + 3.0 * d * (na * o.m2 - nb * self.m2) / n)
        m4 = (self.m4 + o.m4 + d**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
              + 6.0 * d * d * (na * na * o.m2 + nb * nb * self.m2) / n**2
              + 4.0 * d * (na * o.m3 - nb * self.m3) / n)
        return Moments(self.n + o.n, mean, m2, m3, m4, np.minimum(self.low, o.low),
                       np.maximum(self.high, o.high))

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Moments:
        return cls(int(d["n"]), *(np.asarray(d[k], dtype=float)
                                  for k in ("mean", "m2", "m3", "m4", "low", "high")))
