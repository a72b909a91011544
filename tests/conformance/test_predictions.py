"""Every model id predicts through the reference's KSVSMap, over REST and WebSocket,
equal to scikit-learn fitted on the same rows.

A client of the reference reads `values["KSVSMap"]["values"][i]["res"]`; here that is
all a test reads for the prediction itself (plus the family's documented keys), and it
must be scikit-learn's prediction for row i: 1e-9 relative for values, the same label
for classes. Parameters are sent by the reference's names (`alpha` for ridge, `lambda`
and `eta` for lasso and elastic net, `q` for pcr), with the mapping docs/conformance.md
states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn import discriminant_analysis as da
from sklearn import linear_model as lm
from sklearn.decomposition import PCA
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline

from fedstats.node.client import Client, ksvs_columns
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve

RTOL = 1e-9


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from serve(Settings(data_dir=tmp_path_factory.mktemp("predictions")),
                     {"c1": new_secret_key()})


def _frame(names: list[str], types: list[str], columns: list[np.ndarray]) -> dict[str, Any]:
    cells = [[v if isinstance(v, str) else repr(float(v)) for v in col] for col in columns]
    return {"attributeNames": names, "attributeTypes": types,
            "data": [list(r) for r in zip(*cells, strict=True)]}


def diabetes() -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
    """(x, y, the learn frame, the predict frame: inputs only, reversed)."""
    d = datasets.load_diabetes()
    x, y = d.data, d.target
    names = [f"x{j}" for j in range(x.shape[1])]
    learn = _frame([*names, "y"], ["C"] * (len(names) + 1), [*x.T, y])
    predict = _frame(names[::-1], ["C"] * len(names), list(x.T[::-1]))
    return x, y, learn, predict


def iris(binary: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
    """Iris with a B target (setosa or not) or a T target (the species' names)."""
    d = datasets.load_iris()
    x = d.data
    names = ["sl", "sw", "pl", "pw"]
    if binary:
        y: np.ndarray = (d.target == 0).astype(int).astype(str)
        target = [str(v) for v in y]
        kind = "B"
    else:
        y = np.asarray(d.target_names)[d.target]
        target = [str(v) for v in y]
        kind = "T"
    learn = _frame([*names, "species"], ["C"] * 4 + [kind], [*x.T, np.asarray(target)])
    predict = _frame(names, ["C"] * 4, list(x.T))
    return x, y, learn, predict


REGRESSIONS: dict[str, tuple[dict[str, str], Callable[[], Any]]] = {
    "mlr": ({}, lm.LinearRegression),
    "ridge": ({"alpha": "0.5"}, lambda: lm.Ridge(alpha=0.5)),
    "lasso": ({"lambda": "0.1"}, lambda: lm.Lasso(alpha=0.1, tol=1e-14, max_iter=10**6)),
    "elasticnet": ({"lambda": "0.05", "eta": "0.7"},
                   lambda: lm.ElasticNet(alpha=0.05, l1_ratio=0.7, tol=1e-14, max_iter=10**6)),
    "pcr": ({"q": "4"}, lambda: make_pipeline(PCA(4), lm.LinearRegression())),
}


def _both(node: Node, client: Client, pid: str, model: str,
          frame: dict[str, Any]) -> list[dict[str, str]]:
    """The KSVSMap rows over REST, checked equal to those over WebSocket."""
    over_rest = client.predict(pid, model, frame)["values"]["KSVSMap"]["values"]
    with node.ws().connect("predict", [pid, model]) as ws:
        ws.send(frame)
        over_ws = ws.recv(30)["values"]["KSVSMap"]["values"]
    assert over_ws == over_rest
    assert len(over_rest) == len(frame["data"])
    assert all(isinstance(v, str) for row in over_rest for v in row.values())
    return over_rest


def _project(client: Client, name: str, learn: dict[str, Any]) -> str:
    client.create_project(name)
    client.learn(name, learn)
    return name


@pytest.mark.parametrize("algo", list(REGRESSIONS))
def test_regression_res_equals_scikit_learn_over_rest_and_websocket(node: Node,
                                                                   algo: str) -> None:
    client = node.client()
    x, y, learn, predict = diabetes()
    pid = _project(client, f"reg_{algo}", learn)
    extra, estimator = REGRESSIONS[algo]
    client.build(pid, "m", algo, {"targetAttributeNames": ["y"], "extraParameters": extra})
    rows = _both(node, client, pid, "m", predict)
    assert all(set(row) == {"res"} for row in rows)
    got = np.asarray([float(row["res"]) for row in rows])
    np.testing.assert_allclose(got, estimator().fit(x, y).predict(x), rtol=RTOL)


def test_lda_res_and_scores_equal_scikit_learn(node: Node) -> None:
    client = node.client()
    x, y, learn, predict = iris(binary=True)
    pid = _project(client, "cls_lda", learn)
    client.build(pid, "m", "lda", {"targetAttributeNames": ["species"]})
    rows = _both(node, client, pid, "m", predict)
    sk = da.LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    assert [row["res"] for row in rows] == list(sk.predict(x))
    decision = np.asarray([float(r["resZ"]) - float(r["z0"]) for r in rows])
    scale = np.abs(sk.decision_function(x)).max()
    np.testing.assert_allclose(decision, sk.decision_function(x), rtol=RTOL, atol=RTOL * scale)
    assert {row["z1GTz0"] for row in rows} == {"true"}
    proba = np.asarray([[float(r["proba_0"]), float(r["proba_1"])] for r in rows])
    np.testing.assert_allclose(proba, sk.predict_proba(x), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("algo", ["mlda", "mqda", "bayes"])
def test_multiclass_res_equals_scikit_learn(node: Node, algo: str) -> None:
    client = node.client()
    x, y, learn, predict = iris(binary=False)
    pid = _project(client, f"cls_{algo}", learn)
    client.build(pid, "m", algo, {"targetAttributeNames": ["species"]})
    rows = _both(node, client, pid, "m", predict)
    sk = {"mlda": lambda: da.LinearDiscriminantAnalysis(solver="lsqr"),
          "mqda": da.QuadraticDiscriminantAnalysis, "bayes": GaussianNB}[algo]().fit(x, y)
    columns = ksvs_columns({"values": rows})
    assert columns["res"] == list(sk.predict(x))
    labels = list(sk.classes_)
    proba = np.column_stack([np.asarray(columns[f"proba_{c}"], float) for c in labels])
    np.testing.assert_allclose(proba, sk.predict_proba(x), rtol=RTOL, atol=1e-12)
    if algo == "mqda":  # one key per class, its log posterior (prediction-api.md's QDA row)
        logp = np.column_stack([np.asarray(columns[f"species${c}"], float) for c in labels])
        np.testing.assert_allclose(np.exp(logp), sk.predict_proba(x), rtol=RTOL, atol=1e-12)
    if algo == "bayes":  # Prob: the likelihood of the result
        np.testing.assert_allclose(np.asarray(columns["Prob"], float),
                                   sk.predict_proba(x).max(axis=1), rtol=RTOL)
