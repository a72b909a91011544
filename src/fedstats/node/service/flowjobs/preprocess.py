"""Data components: Reader, DataTransform, FeatureScale, DataStatistics, Evaluation.

FeatureScale and DataStatistics pool the parties' moments exactly (frames.Moments), so a
homo job scales every party with the statistics of all the rows; Evaluation runs at each
party on its own predictions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .context import Context, PartyTask, flag, kind_of
from .errors import ComponentFailed
from .frames import Moments


def reader(ctx: Context) -> None:
    for p in ctx.data_parties():
        table = p.params.get("table") or {}
        if not isinstance(table, dict) or not table.get("name") or not table.get("namespace"):
            raise ComponentFailed(f"{ctx.component}: no table for {p.role} {p.party_id} "
                                  f"(component_parameters.role.{p.role}.{p.index}."
                                  f"{ctx.component}.table {{name, namespace}})")
        info = p.site.read(ctx.job_id, p.role, ctx.out, str(table["namespace"]), str(table["name"]))
        ctx.record.output(p.role, p.party_id, "summary",
                          {"count": info["count"], "table_info": dict(table)})


def data_transform(ctx: Context) -> None:
    for p in ctx.data_parties():
        prm = p.params
        for key, allowed in (("input_format", "dense"), ("output_format", "dense")):
            if str(prm.get(key, allowed)).lower() != allowed:
                raise ComponentFailed(f"{ctx.component}: {key} {prm[key]!r} is not offered "
                                      "(dense only)")
        if p.model is not None:  # predict: the train header and label
            m = p.model
            info = p.call(ctx, "transform", with_label=bool(m["with_label"]),
                          label_name=m["label_name"] or "y", label_type=m["label_type"],
                          header=m["header"])
            continue
        with_label = flag(prm.get("with_label"), False)
        label_name = str(prm.get("label_name", "y"))
        label_type = str(prm.get("label_type", "int"))
        info = p.call(ctx, "transform", with_label=with_label, label_name=label_name,
                      label_type=label_type)
        model = {"header": info["header"], "with_label": with_label,
                 "label_name": label_name if with_label else None, "label_type": label_type,
                 "input_format": "dense", "output_format": "dense"}
        ctx.record.output(p.role, p.party_id, "model", model)
        ctx.record.output(p.role, p.party_id, "model_meta",
                          {"module_name": "DataTransform", "meta_data": model})


# -- FeatureScale, DataStatistics ---------------------------------------------------------

def pooled(ctx: Context, parties: list[PartyTask]) -> Moments:
    total: Moments | None = None
    for p in parties:
        m = Moments.from_dict(p.call(ctx, "moments", output=False))
        total = m if total is None else total.merge(m)
    if total is None or total.n == 0:
        raise ComponentFailed(f"{ctx.component}: no party has rows")
    return total


def header_of(ctx: Context, parties: list[PartyTask]) -> list[str]:
    headers = {tuple(p.call(ctx, "describe", output=False)["header"]) for p in parties}
    if len(headers) != 1:
        raise ComponentFailed(f"{ctx.component}: the parties' headers differ: {sorted(headers)} "
                              "(homo learning needs the same features everywhere)")
    return list(headers.pop())


def feature_scale(ctx: Context) -> None:
    parties = ctx.data_parties()
    if not parties:
        return
    first = parties[0]
    if first.model is not None:
        model = first.model
    else:
        prm = first.params
        method = str(prm.get("method", "standard_scale"))
        if method not in ("standard_scale", "min_max_scale"):
            raise ComponentFailed(f"{ctx.component}: method {method!r} is not offered "
                                  "(standard_scale, min_max_scale)")
        if str(prm.get("mode", "normal")) != "normal":
            raise ComponentFailed(f"{ctx.component}: mode {prm['mode']!r} is not offered (normal)")
        for key in ("feat_upper", "feat_lower"):
            if prm.get(key) is not None:
                raise ComponentFailed(f"{ctx.component}: {key} is not offered")
        features = header_of(ctx, parties)
        cols = _scale_columns(ctx, prm, features)
        m = pooled(ctx, parties)
        if method == "standard_scale":
            std = np.sqrt(m.m2 / m.n)
            shift = m.center if flag(prm.get("with_mean"), True) else np.zeros_like(m.mean)
            divide = np.where(std > 0, std, 1.0) if flag(prm.get("with_std"), True) \
                else np.ones_like(std)
        else:
            rng = m.high - m.low
            shift, divide = m.low, np.where(rng > 0, rng, 1.0)
        model = {"method": method, "header": features, "scale_columns": cols,
                 "shift": [float(shift[j]) for j in cols], "divide": [float(divide[j]) for j in cols],
                 "col_scale_param": {features[j]: {
                     "column_lower": float(m.low[j]), "column_upper": float(m.high[j]),
                     "mean": float(m.center[j]), "std": float(math.sqrt(m.m2[j] / m.n))}
                     for j in cols}}
        ctx.model_everywhere(model, {"method": method, "mode": "normal",
                                     "scale_column_idx": cols, "need_run": True})
    for p in parties:
        p.call(ctx, "scale", shift=model["shift"], divide=model["divide"],
               columns=model["scale_columns"])


def _scale_columns(ctx: Context, prm: dict[str, Any], header: list[str]) -> list[int]:
    idx = prm.get("scale_col_indexes", -1)
    names = prm.get("scale_names") or []
    if idx == -1 or idx is None:
        cols = list(range(len(header))) if not names else []
    else:
        cols = [int(i) for i in (idx if isinstance(idx, list) else [idx])]
    for n in names:
        if n not in header:
            raise ComponentFailed(f"{ctx.component}: scale_names names {n!r}, not a feature")
        cols.append(header.index(n))
    bad = [j for j in cols if not 0 <= j < len(header)]
    if bad:
        raise ComponentFailed(f"{ctx.component}: scale_col_indexes {bad} outside the "
                              f"{len(header)} features")
    return sorted(set(cols))


STATISTICS = ("count", "sum", "mean", "min", "max", "variance", "stddev",
              "coefficient_of_variance", "skewness", "kurtosis", "missing_count", "missing_ratio")


def data_statistics(ctx: Context) -> None:
    parties = ctx.data_parties()
    if not parties:
        return
    prm = parties[0].params
    wanted = prm.get("statistics", "summary")
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    names: list[str] = []
    for w in wanted:
        if w == "summary":
            names += [s for s in STATISTICS if s not in names]
        elif w in STATISTICS:
            names.append(w)
        else:
            raise ComponentFailed(f"{ctx.component}: statistic {w!r} is not offered exactly "
                                  f"(offered: {', '.join(STATISTICS)}; percentiles and the "
                                  "median are not sufficient statistics)")
    header = header_of(ctx, parties)
    m = pooled(ctx, parties)
    n = float(m.n)
    var = m.m2 / (n - 1) if n > 1 else np.zeros_like(m.m2)
    pop = m.m2 / n
    mean = m.center
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(pop > 0, (m.m3 / n) / pop**1.5, 0.0)
        kurt = np.where(pop > 0, (m.m4 / n) / pop**2 - 3.0, 0.0)
        cv = np.where(mean != 0, np.sqrt(var) / np.abs(mean), np.inf)
    values = {"count": np.full(len(header), n), "sum": mean * n, "mean": mean, "min": m.low,
              "max": m.high, "variance": var, "stddev": np.sqrt(var),
              "coefficient_of_variance": cv, "skewness": skew, "kurtosis": kurt,
              "missing_count": np.zeros(len(header)), "missing_ratio": np.zeros(len(header))}
    stats = {s: {h: float(values[s][j]) for j, h in enumerate(header)} for s in names}
    ctx.model_everywhere({"header": header, "statistics": stats},
                         {"statistics": names, "variance": "sample (n - 1)"})
    ctx.summary_everywhere(stats)


def evaluation(ctx: Context) -> None:
    for p in ctx.data_parties():
        prm = p.params
        eval_type = str(prm.get("eval_type", "binary"))
        if eval_type not in ("binary", "regression", "multi"):
            raise ComponentFailed(f"{ctx.component}: eval_type {eval_type!r} is not offered "
                                  "(binary, regression, multi)")
        ref = p.data_ref() or ""
        upstream = ref.split(".")[0]
        res = p.call(ctx, "evaluate", output=False, eval_type=eval_type,
                     pos_label=prm.get("pos_label", 1))
        ns = kind_of(ctx) if ctx.job_type != "predict" else "test"
        ctx.record.metric(p.role, p.party_id, ns, upstream,
                          {"metric_type": "EVALUATION_SUMMARY", "name": upstream},
                          [[k, v] for k, v in res["summary"].items()])
        for curve, points in res["curves"].items():
            ctx.record.metric(p.role, p.party_id, ns, f"{upstream}_{curve}",
                              {"metric_type": curve.upper(), "name": f"{upstream}_{curve}",
                               "curve_name": upstream}, points)
        ctx.record.output(p.role, p.party_id, "summary", {upstream: res["summary"]})
