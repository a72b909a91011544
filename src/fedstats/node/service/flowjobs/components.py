"""The DSL's modules as coordinators: each asks its parties' sites for what it needs.

A component sees a `Context`: its parties (role, party id, site, resolved parameters,
input references, the upstream model), a recorder for tracking (metrics, model,
summary) and `check()`, which raises when the job was stopped or timed out. Parties of
role arbiter hold no data: they receive the global model of a homo fit, as in FATE.
Homo fits are exact: FeatureScale and DataStatistics pool the sites' moments, the
linear and discriminant models merge their co-moment accumulators, HomoLR runs Newton
rounds on the sum of the sites' gradients and Hessians (engine.glm). What FATE tunes
for SGD (optimizer, learning_rate, batch_size, decay, ...) is accepted and reported as
not needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ...engine.accumulator import Accumulator
from ...engine.errors import ModelError
from ...engine.glm import fit_glm
from ...engine.glm.solve import GlmNotConverged
from ...engine.models import build_model
from .errors import ComponentFailed
from .frames import Moments

DATA_KINDS = ("data", "train_data", "test_data", "eval_data", "validate_data")
NOT_NEEDED = ("optimizer", "learning_rate", "batch_size", "decay", "decay_sqrt", "early_stop",
              "encrypt_param", "aggregate_iters", "init_param.init_method", "shuffle",
              "batch_strategy", "masked_rate", "callback_param", "cv_param",
              "floating_point_precision", "validation_freqs", "early_stopping_rounds")
GENERIC = frozenset({"need_run", "optimizer", "learning_rate", "batch_size", "decay",
                     "decay_sqrt", "early_stop", "encrypt_param", "aggregate_iters",
                     "init_param", "cv_param", "callback_param", "shuffle", "batch_strategy",
                     "masked_rate", "floating_point_precision", "validation_freqs",
                     "early_stopping_rounds", "metrics", "use_first_metric_only", "penalty"})
LINEAR = {"HomoMLR": "mlr", "HomoRidge": "ridge", "HomoLasso": "lasso",
          "HomoElasticNet": "elasticnet", "HomoLDA": "lda", "HomoMQDA": "mqda",
          "HomoBayes": "bayes", "HomoPCR": "pcr"}
CLASSIFIERS = frozenset({"lda", "mqda", "bayes"})


class Recorder(Protocol):
    def metric(self, role: str, party: str, namespace: str, name: str,
               meta: dict[str, Any], data: list[list[Any]]) -> None: ...

    def output(self, role: str, party: str, kind: str, body: Any) -> None: ...


@dataclass
class PartyTask:
    role: str
    party_id: str
    index: int
    site: Any
    params: dict[str, Any]
    inputs: dict[str, list[str]] = field(default_factory=dict)
    model: dict[str, Any] | None = None  # the upstream component's model body

    @property
    def need_run(self) -> bool:
        return bool(self.params.get("need_run", True))

    @property
    def holds_data(self) -> bool:
        return self.role != "arbiter"

    def data_ref(self) -> str | None:
        for kind in DATA_KINDS:
            refs = self.inputs.get(kind)
            if refs:
                return refs[0]
        return None

    def call(self, ctx: Context, op: str, output: bool = True, **args: Any) -> Any:
        ref = self.data_ref()
        if ref is None:
            raise ComponentFailed(f"{ctx.component}: {self.role} {self.party_id} has no data input")
        return self.site.call(ctx.job_id, self.role, op, [ref], ctx.out if output else None,
                              **args)


@dataclass
class Context:
    job_id: str
    component: str
    module: str
    job_type: str
    parties: list[PartyTask]
    record: Recorder
    check: Callable[[], None]

    @property
    def out(self) -> str:
        return f"{self.component}.data"

    def data_parties(self) -> list[PartyTask]:
        return [p for p in self.parties if p.holds_data and p.need_run]

    def model_everywhere(self, model: dict[str, Any], meta: dict[str, Any]) -> None:
        for p in self.parties:
            if p.need_run:
                self.record.output(p.role, p.party_id, "model", model)
                self.record.output(p.role, p.party_id, "model_meta",
                                   {"module_name": self.module, "meta_data": meta})

    def summary_everywhere(self, summary: dict[str, Any]) -> None:
        for p in self.parties:
            if p.need_run:
                self.record.output(p.role, p.party_id, "summary", summary)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


# -- Reader, DataTransform ----------------------------------------------------------------

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
        with_label = _flag(prm.get("with_label"), False)
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

def _pooled(ctx: Context, parties: list[PartyTask]) -> Moments:
    total: Moments | None = None
    for p in parties:
        m = Moments.from_dict(p.call(ctx, "moments", output=False))
        total = m if total is None else total.merge(m)
    if total is None or total.n == 0:
        raise ComponentFailed(f"{ctx.component}: no party has rows")
    return total


def _header(ctx: Context, parties: list[PartyTask]) -> list[str]:
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
        features = _header(ctx, parties)
        cols = _scale_columns(ctx, prm, features)
        m = _pooled(ctx, parties)
        if method == "standard_scale":
            std = np.sqrt(m.m2 / m.n)
            shift = m.center if _flag(prm.get("with_mean"), True) else np.zeros_like(m.mean)
            divide = np.where(std > 0, std, 1.0) if _flag(prm.get("with_std"), True) \
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
    header = _header(ctx, parties)
    m = _pooled(ctx, parties)
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


# -- HomoLR --------------------------------------------------------------------------------

def _not_needed(prm: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in NOT_NEEDED:
        top, _, sub = key.partition(".")
        if top in prm:
            value = prm[top]
            if sub:
                if isinstance(value, dict) and sub in value:
                    out[key] = value[sub]
            else:
                out[key] = value
    return out


def _kind(ctx: Context) -> str:
    return "train" if ctx.job_type != "predict" else "test"


def homo_lr(ctx: Context) -> None:
    parties = ctx.data_parties()
    modelled = [p for p in parties if p.model is not None]
    if modelled:
        model = modelled[0].model
        assert model is not None
        for p in parties:
            p.call(ctx, "predict_lr", weight=[model["weight"][h] for h in model["header"]],
                   intercept=model["intercept"], kind="test")
        return
    if not parties:
        raise ComponentFailed(f"{ctx.component}: no guest or host party has training data")
    prm = next((p.params for p in ctx.parties if p.role != "arbiter"), parties[0].params)
    raw_pen = prm.get("penalty", "L2")
    penalty = "NONE" if raw_pen in (None, "", "none", "None", "NONE") else str(raw_pen).upper()
    if penalty not in ("L1", "L2", "NONE"):
        raise ComponentFailed(f"{ctx.component}: penalty {raw_pen!r} is not L1, L2 or none")
    try:
        alpha = float(prm.get("alpha", 1.0))
        tol = float(prm.get("tol", 1e-4))
        max_iter = int(prm.get("max_iter", 100))
    except (TypeError, ValueError) as e:
        raise ComponentFailed(f"{ctx.component}: alpha, tol and max_iter must be numbers: {e}") from None
    if alpha < 0 or tol <= 0 or max_iter < 1:
        raise ComponentFailed(f"{ctx.component}: needs alpha >= 0, tol > 0 and max_iter >= 1")
    fit_intercept = _flag((prm.get("init_param") or {}).get("fit_intercept"), True)
    if str(prm.get("multi_class", "ovr")) != "ovr":
        raise ComponentFailed(f"{ctx.component}: multi_class {prm['multi_class']!r} is not offered")
    labels = sorted({v for p in parties for v in p.call(ctx, "labels", output=False)})
    if not set(labels) <= {0.0, 1.0}:
        raise ComponentFailed(f"{ctx.component}: HomoLR fits a binary 0/1 label; the label has "
                              f"values {labels[:10]}")
    header = _header(ctx, parties)

    def round_fn(coef: np.ndarray) -> Any:
        ctx.check()
        total = None
        for p in parties:
            part = p.call(ctx, "glm_round", output=False, coef=coef, family="binomial")
            total = part if total is None else total.add(part)
        return total

    try:
        fit = fit_glm(round_fn, len(header), "binomial", penalty, alpha, fit_intercept, tol,
                      max_iter)
    except GlmNotConverged as e:
        raise ComponentFailed(f"{ctx.component}: the fit failed: {e}") from None
    weight = {h: float(w) for h, w in zip(header, fit.coef[0], strict=True)}
    intercept = float(fit.intercept[0])
    not_needed = _not_needed(prm)
    model = {"header": header, "weight": weight, "intercept": intercept, "iters": fit.iterations,
             "isConverged": bool(fit.converged), "lossHistory": list(fit.losses),
             "bestIteration": -1, "needOneVsRest": False, "encryptedWeight": {},
             "rounds": fit.rounds, "n": fit.n}
    meta = {"penalty": penalty, "alpha": alpha, "tol": tol, "maxIter": max_iter,
            "fitIntercept": fit_intercept, "method": "exact Newton rounds (pooled optimum)",
            "objective": "mean log-loss + alpha/2 ||w||^2 (L2) | alpha ||w||_1 (L1)",
            "notNeeded": not_needed, "needOneVsRest": False}
    ctx.model_everywhere(model, meta)
    ctx.summary_everywhere({"coef": weight, "intercept": intercept, "is_converged": fit.converged,
                            "iters": fit.iterations, "best_iteration": -1, "one_vs_rest": False,
                            "not_needed": sorted(not_needed)})
    for p in ctx.parties:
        if p.need_run:
            ctx.record.metric(p.role, p.party_id, "train", "loss",
                              {"name": "train", "metric_type": "LOSS", "unit_name": "iters",
                               "curve_name": "loss", "Best": min(fit.losses)},
                              [[i, v] for i, v in enumerate(fit.losses)])
    for p in parties:
        p.call(ctx, "predict_lr", weight=list(weight.values()), intercept=intercept,
               kind=_kind(ctx))


# -- fedstats' exact homo models ---------------------------------------------------------

def homo_linear(ctx: Context) -> None:
    algo = LINEAR[ctx.module]
    parties = ctx.data_parties()
    modelled = [p for p in parties if p.model is not None]
    if modelled:
        model = modelled[0].model
        assert model is not None
        for p in parties:
            p.call(ctx, "predict_model", model=model["model"], kind="test")
        return
    if not parties:
        raise ComponentFailed(f"{ctx.component}: no guest or host party has training data")
    prm = parties[0].params
    header = _header(ctx, parties)
    classifier = algo in CLASSIFIERS
    if classifier:
        labels = sorted({v for p in parties for v in p.call(ctx, "labels", output=False)})
        if not set(labels) <= {0.0, 1.0}:
            raise ComponentFailed(f"{ctx.component}: {algo} here needs a binary 0/1 label; "
                                  f"the label has values {labels[:10]}")
    parts = [p.call(ctx, "accumulate", output=False, binary_label=classifier) for p in parties]
    ctx.check()
    acc = Accumulator.merged(parts)
    label = _label_name(ctx, parties)
    extra = {k: str(v) for k, v in prm.items() if k not in GENERIC}
    try:
        m = build_model(algo, acc, {"targetAttributeNames": [label],
                                    "inputAttributeNames": header, "extraParameters": extra})
    except ModelError as e:
        raise ComponentFailed(f"{ctx.component} ({ctx.module} = fedstats {algo}): {e}") from None
    info = m.info()
    body: dict[str, Any] = {"header": header, "algo": algo, "model": m.to_dict()}
    if "coef" in m.arrays:
        coef = np.atleast_1d(np.asarray(m.arrays["coef"], dtype=float))
        if coef.ndim == 1 and len(coef) == len(header):
            body["weight"] = {h: float(w) for h, w in zip(header, coef, strict=True)}
            body["intercept"] = float(np.asarray(m.arrays["intercept"]).ravel()[0])
    ctx.model_everywhere(body, {"algo": algo, "params": extra, "exact": True})
    ctx.summary_everywhere({k: v for k, v in info.items() if k not in ("model",)}
                           if isinstance(info, dict) else {})
    for p in parties:
        p.call(ctx, "predict_model", model=body["model"], kind=_kind(ctx))


def _label_name(ctx: Context, parties: list[PartyTask]) -> str:
    names = {p.call(ctx, "describe", output=False).get("label") for p in parties}
    names.discard(None)
    return str(names.pop()) if names else "y"


# -- Evaluation ------------------------------------------------------------------------------

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
        ns = _kind(ctx) if ctx.job_type != "predict" else "test"
        ctx.record.metric(p.role, p.party_id, ns, upstream,
                          {"metric_type": "EVALUATION_SUMMARY", "name": upstream},
                          [[k, v] for k, v in res["summary"].items()])
        for curve, points in res["curves"].items():
            ctx.record.metric(p.role, p.party_id, ns, f"{upstream}_{curve}",
                              {"metric_type": curve.upper(), "name": f"{upstream}_{curve}",
                               "curve_name": upstream}, points)
        ctx.record.output(p.role, p.party_id, "summary", {upstream: res["summary"]})


RUNNERS: dict[str, Callable[[Context], None]] = {
    "Reader": reader, "DataTransform": data_transform, "FeatureScale": feature_scale,
    "DataStatistics": data_statistics, "HomoLR": homo_lr, "Evaluation": evaluation,
    **{m: homo_linear for m in LINEAR},
}
HAS_MODEL = frozenset({"DataTransform", "FeatureScale", "DataStatistics", "HomoLR", *LINEAR})
