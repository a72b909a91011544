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
import pyarrow.ipc

Floats = npt.NDArray[np.float64]


@dataclass
class Frame:
    sid: Floats
    header: list[str]
    x: Floats  # (n, d)
    label: Floats | None = None
    label_name: str | None = None
    sid_name: str = "id"
    # predictions: label, predict_result, predict_score (arrays), predict_detail
    # {class: probability array}, type ("train" | "test")
    predictions: dict[str, Any] | None = None
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.sid)

    def columns(self) -> list[str]:
        if self.predictions is not None:
            return list(PREDICTION_COLUMNS)
        return ([self.label_name] if self.label is not None and self.label_name else []) + self.header

    def save(self, path: Path) -> list[str]:
        """The frame as Arrow IPC at `path` (numbers as they are, fast to write); the CSV
        FATE's clients read is made from it when asked (`output_csv`). Answers the header."""
        path.parent.mkdir(parents=True, exist_ok=True)
        names = [self.sid_name, *self.columns()]
        cols: dict[str, Any] = {"sid": self.sid}
        meta = {"names": names, "kind": "instances"}
        if self.predictions is not None:
            p = self.predictions
            cols.update(label=np.asarray(p["label"], float),
                        predict_result=np.asarray(p["predict_result"], float),
                        predict_score=np.asarray(p["predict_score"], float))
            for k, v in p["predict_detail"].items():
                cols[f"detail:{k}"] = np.asarray(v, float)
            meta.update(kind="predictions", type=p["type"])
        else:
            if self.label is not None and self.label_name:
                cols["label"] = self.label
            for j in range(self.x.shape[1]):
                cols[f"x:{j}"] = self.x[:, j]
        table = pa.table(cols).replace_schema_metadata({"fedstats": json.dumps(meta)})
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        return names


PREDICTION_COLUMNS = ("label", "predict_result", "predict_score", "predict_detail", "type")


def _open(path: Path, limit: int) -> tuple[pa.Table, dict[str, Any], int]:
    with pa.memory_map(str(path)) as src:
        table = pa.ipc.open_file(src).read_all()
    meta = json.loads(table.schema.metadata[b"fedstats"])
    total = table.num_rows
    if limit >= 0:
        table = table.slice(0, limit)
    return table, meta, total


def _csv_columns(table: pa.Table, meta: dict[str, Any]) -> list[Any]:
    """The table's columns as FATE writes them: whole numbers as ints, detail as JSON."""
    out: list[Any] = []
    for name in table.column_names:
        if name.startswith("detail:"):
            continue
        col = table.column(name).to_numpy()
        if name in ("sid", "label", "predict_result") and _whole(col):
            out.append(pa.array(col.astype(np.int64)))
        else:
            out.append(pa.array(col))
    if meta["kind"] == "predictions":
        keys = [n[len("detail:"):] for n in table.column_names if n.startswith("detail:")]
        values = [table.column(f"detail:{k}").to_numpy() for k in keys]
        out.append(pa.array([json.dumps(dict(zip(keys, map(float, row), strict=True)))
                             for row in zip(*values, strict=True)] if keys
                            else ["{}"] * table.num_rows))
        out.append(pa.array([meta["type"]] * table.num_rows))
    return out


def _whole(v: Floats) -> bool:
    return bool(len(v) == 0 or (np.all(np.isfinite(v)) and np.all(v == np.floor(v))
                                and np.all(np.abs(v) < 2**53)))


def output_csv(path: Path, limit: int = -1) -> tuple[bytes, list[str]]:
    """(CSV bytes with the header line `sid,<columns>`, the header) of a saved frame."""
    table, meta, _ = _open(path, limit)
    names = meta["names"]
    buf = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_arrays(_csv_columns(table, meta), names=names), buf,
                    pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return (",".join(names) + "\n").encode() + buf.getvalue().to_pybytes(), names


def output_rows(path: Path, limit: int) -> tuple[list[str], list[list[Any]], int]:
    """(header, rows, total rows) of a saved frame, for `output/data`'s preview."""
    table, meta, total = _open(path, limit)
    columns = [c.to_pylist() for c in _csv_columns(table, meta)]
    return meta["names"], [list(r) for r in zip(*columns, strict=True)], total


@dataclass
class Moments:
    """Per column: n, mean, Σ(x-mean)^2..4, min, max (one site's or the pooled).

    The mean travels as two floats, `mean` + `lo` (a double-double): at an offset of 1e9
    a float64 mean is off by ~1e-7, and the merge's δ²·na·nb/n term would carry that
    into the variance at ~1e-9 relative; with the low part it stays at rounding."""

    n: int
    mean: Floats
    m2: Floats
    m3: Floats
    m4: Floats
    low: Floats
    high: Floats
    lo: Floats

    @classmethod
    def of(cls, x: Floats) -> Moments:
        n, d = x.shape
        if n == 0:
            z = np.zeros(d)
            return cls(0, z, z, z, z, np.full(d, np.inf), np.full(d, -np.inf), z)
        hi = x.mean(axis=0)
        c = x - hi
        lo = c.mean(axis=0)
        c -= lo
        c2 = c * c
        return cls(n, hi, c2.sum(0), (c2 * c).sum(0), (c2 * c2).sum(0), x.min(0), x.max(0), lo)

    def merge(self, o: Moments) -> Moments:
        if o.n == 0:
            return self
        if self.n == 0:
            return o
        na, nb = float(self.n), float(o.n)
        n = na + nb
        d = (o.mean - self.mean) + (o.lo - self.lo)
        hi, lo = _two_sum(self.mean, self.lo + d * nb / n)
        m2 = self.m2 + o.m2 + d * d * na * nb / n
        m3 = (self.m3 + o.m3 + d**3 * na * nb * (na - nb) / n**2
              + 3.0 * d * (na * o.m2 - nb * self.m2) / n)
        m4 = (self.m4 + o.m4 + d**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
              + 6.0 * d * d * (na * na * o.m2 + nb * nb * self.m2) / n**2
              + 4.0 * d * (na * o.m3 - nb * self.m3) / n)
        return Moments(self.n + o.n, hi, m2, m3, m4, np.minimum(self.low, o.low),
                       np.maximum(self.high, o.high), lo)

    @property
    def center(self) -> Floats:
        """The mean, rounded to one float per column."""
        return self.mean + self.lo

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Moments:
        return cls(int(d["n"]), *(np.asarray(d[k], dtype=float)
                                  for k in ("mean", "m2", "m3", "m4", "low", "high", "lo")))


def _two_sum(a: Floats, b: Floats) -> tuple[Floats, Floats]:
    """(s, e) with s = fl(a + b) and a + b = s + e exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)
