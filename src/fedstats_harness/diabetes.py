"""scikit-learn's diabetes rows, as the federation tests split them between nodes.

`frame(data(part))` is what a node learns; a federated model built from every part must
equal scikit-learn's `LinearRegression` on `X, Y` pooled. Values are written with
`repr(float)`, so what a node parses is exactly these floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes

X, Y = load_diabetes(return_X_y=True)
NAMES = [f"x{i}" for i in range(X.shape[1])] + ["y"]


def data(part: slice) -> np.ndarray:
    """The rows `part`, the target as the last column."""
    return np.column_stack([X[part], Y[part]])


def frame(rows: np.ndarray) -> dict[str, Any]:
    """Rows of the diabetes columns as a DataFrame."""
    return {
        "attributeNames": NAMES,
        "attributeTypes": ["C"] * len(NAMES),
        "data": [[repr(float(v)) for v in row] for row in rows],
    }
