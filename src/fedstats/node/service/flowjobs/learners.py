"""Learning components: HomoLR by exact Newton rounds, fedstats' models from co-moments.

HomoLR sums the parties' GLM round statistics (gradient, Hessian, loss: engine.glm) and
takes the Newton step, so the fit is the pooled optimum; the linear and discriminant
models merge the parties' accumulators and build from them (engine.models). What FATE
tunes for SGD (optimizer, learning_rate, batch_size, decay, ...) is accepted and
reported as not needed. The arbiter receives the global model, as in FATE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...engine.accumulator import Accumulator
from ...engine.errors import ModelError
from ...engine.glm import fit_glm
from ...engine.glm.solve import GlmNotConverged
from ...engine.models import build_model
from .context import Context, PartyTask, flag, kind_of
from .errors import ComponentFailed
from .preprocess import header_of

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


def homo_lr(ctx: Context) -> None:
    """Binary: one exact fit. More classes: FATE's one-vs-rest, one exact binary fit of each
    class against the others (scikit-learn's `OneVsRestClassifier` on the pooled rows)."""
    parties = ctx.data_parties()
    modelled = [p for p in parties if p.model is not None]
    if modelled:
        model = modelled[0].model
        assert model is not None
        _predict(ctx, parties, model, "test")
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
    fit_intercept = flag((prm.get("init_param") or {}).get("fit_intercept"), True)
    if str(prm.get("multi_class", "ovr")) != "ovr":
        raise ComponentFailed(f"{ctx.component}: multi_class {prm['multi_class']!r} is not offered")
    labels = sorted({v for p in parties for v in p.call(ctx, "labels", output=False)})
    if len(labels) < 2:
        raise ComponentFailed(f"{ctx.component}: the label has one value only ({labels}): "
                              "nothing to classify")
    binary = set(labels) <= {0.0, 1.0}
    header = header_of(ctx, parties)

    def fit_one(positive: float | None) -> dict[str, Any]:
        def round_fn(coef: np.ndarray) -> Any:
            ctx.check()
            total = None
            for p in parties:
                part = p.call(ctx, "glm_round", output=False, coef=coef, family="binomial",
                              positive=positive)
                total = part if total is None else total.add(part)
            return total

        try:
            fit = fit_glm(round_fn, len(header), "binomial", penalty, alpha, fit_intercept, tol,
                          max_iter)
        except GlmNotConverged as e:
            raise ComponentFailed(f"{ctx.component}: the fit failed: {e}") from None
        return {"header": header,
                "weight": {h: float(w) for h, w in zip(header, fit.coef[0], strict=True)},
                "intercept": float(fit.intercept[0]), "iters": fit.iterations,
                "isConverged": bool(fit.converged), "lossHistory": list(fit.losses),
                "bestIteration": -1, "rounds": fit.rounds, "n": fit.n}

    not_needed = _not_needed(prm)
    meta = {"penalty": penalty, "alpha": alpha, "tol": tol, "maxIter": max_iter,
            "fitIntercept": fit_intercept, "method": "exact Newton rounds (pooled optimum)",
            "objective": "mean log-loss + alpha/2 ||w||^2 (L2) | alpha ||w||_1 (L1)",
            "notNeeded": not_needed, "needOneVsRest": not binary}
    if binary:
        model = {**fit_one(None), "needOneVsRest": False, "encryptedWeight": {}}
        losses = model["lossHistory"]
        summary = {"coef": model["weight"], "intercept": model["intercept"],
                   "is_converged": model["isConverged"], "iters": model["iters"]}
    else:
        fits = [fit_one(c) for c in labels]
        model = {"header": header, "needOneVsRest": True, "encryptedWeight": {},
                 "one_vs_rest_result": {"completed_models": fits,
                                        "one_vs_rest_classes": [_class(c) for c in labels]},
                 "isConverged": all(f["isConverged"] for f in fits),
                 "iters": max(f["iters"] for f in fits)}
        losses = [sum(v) for v in zip(*(_padded(f["lossHistory"], model["iters"] + 1)
                                        for f in fits), strict=True)]
        summary = {"one_vs_rest_classes": [_class(c) for c in labels],
                   "coef": [f["weight"] for f in fits],
                   "intercept": [f["intercept"] for f in fits],
                   "is_converged": model["isConverged"], "iters": model["iters"]}
    ctx.model_everywhere(model, meta)
    ctx.summary_everywhere({**summary, "best_iteration": -1, "one_vs_rest": not binary,
                            "not_needed": sorted(not_needed)})
    for p in ctx.parties:
        if p.need_run:
            ctx.record.metric(p.role, p.party_id, "train", "loss",
                              {"name": "train", "metric_type": "LOSS", "unit_name": "iters",
                               "curve_name": "loss", "Best": min(losses)},
                              [[i, v] for i, v in enumerate(losses)])
    _predict(ctx, parties, model, kind_of(ctx))


def _class(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _padded(values: list[float], n: int) -> list[float]:
    """A loss history held at its last value to `n` entries (fits that ended early)."""
    return values + [values[-1]] * (n - len(values)) if values else [0.0] * n


def _predict(ctx: Context, parties: list[PartyTask], model: dict[str, Any], kind: str) -> None:
    header = model["header"]
    ovr = model.get("one_vs_rest_result")
    for p in parties:
        if ovr:
            fits = ovr["completed_models"]
            p.call(ctx, "predict_ovr", weights=[[f["weight"][h] for h in header] for f in fits],
                   intercepts=[f["intercept"] for f in fits],
                   classes=[float(c) for c in ovr["one_vs_rest_classes"]], kind=kind)
        else:
            p.call(ctx, "predict_lr", weight=[model["weight"][h] for h in header],
                   intercept=model["intercept"], kind=kind)


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
    header = header_of(ctx, parties)
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
        p.call(ctx, "predict_model", model=body["model"], kind=kind_of(ctx))


def _label_name(ctx: Context, parties: list[PartyTask]) -> str:
    names = {p.call(ctx, "describe", output=False).get("label") for p in parties}
    names.discard(None)
    return str(names.pop()) if names else "y"
