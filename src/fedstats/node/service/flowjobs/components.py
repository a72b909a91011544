"""The DSL's modules, by name: which function runs each and which leave a model.

    context.py     what a component sees (parties, recorder, check)
    preprocess.py  Reader, DataTransform, FeatureScale, DataStatistics, Evaluation
    learners.py    HomoLR (exact Newton rounds), fedstats' homo models (co-moments)
"""

from __future__ import annotations

from collections.abc import Callable

from .context import Context, PartyTask
from .learners import LINEAR, homo_linear, homo_lr
from .preprocess import data_statistics, data_transform, evaluation, feature_scale, reader

RUNNERS: dict[str, Callable[[Context], None]] = {
    "Reader": reader, "DataTransform": data_transform, "FeatureScale": feature_scale,
    "DataStatistics": data_statistics, "HomoLR": homo_lr, "Evaluation": evaluation,
    **{m: homo_linear for m in LINEAR},
}
HAS_MODEL = frozenset({"DataTransform", "FeatureScale", "DataStatistics", "HomoLR", *LINEAR})

__all__ = ["HAS_MODEL", "RUNNERS", "Context", "PartyTask"]
