"""`build?algo=lr|poisson` on one node's keepRows project equals scikit-learn on the rows
that remain after a random part was forgotten: coefficients, probabilities, classes."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as lm

from fedstats.node.client import ApiError, Client, ksvs_columns
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve

RTOL, RTOL_L1 = 1e-8, 1e-6


def frame(x: np.ndarray, y: np.ndarray, ytype: str) -> dict[str, Any]:
    names = [f"x{j}" for j in range(x.shape[1])]
    ys = [str(int(v)) if ytype == "B" else (str(v) if ytype == "T" else repr(float(v)))
          for v in y]
    return {"attributeNames": [*names, "y"], "attributeTypes": ["C"] * len(names) + [ytype],
            "data": [[*map(repr, map(float, r)), t] for r, t in zip(x, ys, strict=True)]}


def cancer() -> tuple[np.ndarray, np.ndarray, str]:
    x, y = datasets.load_breast_cancer(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y.astype(float), "B"


def labelled(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    d = datasets.load_iris() if name == "iris" else datasets.load_wine()
    return d.data, d.target_names[d.target], "T"


def counts() -> tuple[np.ndarray, np.ndarray, str]:
    x, _ = datasets.load_diabetes(return_X_y=True)
    x = x / x.std(0)
    rng = np.random.default_rng(7)
    return x, rng.poisson(np.exp(0.5 + x @ rng.normal(scale=0.2, size=x.shape[1]))) * 1.0, "C"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    gen = serve(Settings(data_dir=tmp_path_factory.mktemp("glm")), {"c1": new_secret_key()})
    yield next(gen)
    gen.close()


def kept(c: Client, pid: str, x: np.ndarray, y: np.ndarray, ytype: str,
         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learn every row in shuffled pieces, forget a random tenth; the rows that remain."""
    c.request("POST", c._rest("projects"), params={"pid": pid, "keepRows": "true"})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    for part in np.array_split(order, 3):
        c.learn(pid, frame(x[part], y[part], ytype))
    gone = rng.choice(len(y), size=len(y) // 10, replace=False)
    c.forget(pid, frame(x[gone], y[gone], ytype))
    keep = np.setdiff1d(np.arange(len(y)), gone)
    return x[keep], y[keep]


def close(actual: Any, expected: Any, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol, 0)


def probabilities(c: Client, pid: str, x: np.ndarray, ytype: str,
                  labels: list[str]) -> tuple[np.ndarray, list[str]]:
    fake = np.zeros(len(x)) if ytype != "T" else np.array([labels[0]] * len(x))
    answer = c.predict(pid, "m", frame(x, fake, ytype))["values"]["KSVSMap"]
    cols = ksvs_columns(answer)
    return np.array([[float(v) for v in cols[f"proba_{lab}"]] for lab in labels]).T, cols["res"]


@pytest.mark.parametrize("penalty", ["L2", "NONE", "L1"])
def test_binary_lr_equals_scikit_learn_on_the_kept_rows(node: Node, penalty: str) -> None:
    c = node.client()
    x, y, t = cancer()
    if penalty == "NONE":
        x = x[:, :4]  # four features: not separable, the unpenalized optimum exists
    pid = f"lr-{penalty.lower()}"
    xk, yk = kept(c, pid, x, y, t, seed=3)
    alpha = 0.01
    info = c.build(pid, "m", "lr", {"targetAttributeNames": ["y"], "extraParameters":
                                    {"penalty": penalty, "alpha": str(alpha)}})
    assert info["converged"] and info["n"] == len(yk)
    if penalty == "L1":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = lm.LogisticRegression(C=1 / (alpha * len(yk)), l1_ratio=1.0, solver="saga",
                                        tol=1e-12, max_iter=100_000).fit(xk, yk)
        np.testing.assert_allclose(info["coef"][0], ref.coef_[0], RTOL_L1, 1e-9)
        return
    c_value = np.inf if penalty == "NONE" else 1 / (alpha * len(yk))
    ref = lm.LogisticRegression(C=c_value, solver="newton-cholesky", tol=1e-14,
                                max_iter=1000).fit(xk, yk)
    close(info["coef"][0], ref.coef_[0])
    close(info["intercept"], ref.intercept_)
    proba, classes = probabilities(c, pid, xk, t, ["0", "1"])
    close(proba, ref.predict_proba(xk))
    assert classes == [str(int(v)) for v in ref.predict(xk)]


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_multinomial_lr_equals_scikit_learn_on_the_kept_rows(node: Node, name: str) -> None:
    c = node.client()
    x, y, t = labelled(name)
    xk, yk = kept(c, name, x, y, t, seed=4)
    info = c.build(name, "m", "lr", {"targetAttributeNames": ["y"],
                                     "extraParameters": {"alpha": "0.01"}})
    ref = lm.LogisticRegression(C=1 / (0.01 * len(yk)), solver="newton-cholesky", tol=1e-14,
                                max_iter=1000).fit(xk, yk)
    assert info["labels"] == list(ref.classes_)
    close(info["coef"], ref.coef_)
    close(info["intercept"], ref.intercept_)
    proba, classes = probabilities(c, name, xk, t, list(ref.classes_))
    close(proba, ref.predict_proba(xk))
    assert classes == list(ref.predict(xk))


def test_poisson_equals_scikit_learn_on_the_kept_rows(node: Node) -> None:
    c = node.client()
    x, y, t = counts()
    xk, yk = kept(c, "counts", x, y, t, seed=5)
    info = c.build("counts", "m", "poisson", {"targetAttributeNames": ["y"],
                                              "extraParameters": {"alpha": "0.1"}})
    ref = lm.PoissonRegressor(alpha=0.1, solver="newton-cholesky", tol=1e-14,
                              max_iter=1000).fit(xk, yk)
    close(info["coef"][0], ref.coef_)
    close(info["intercept"], [ref.intercept_])
    answer = c.predict("counts", "m", frame(xk, yk, t))["values"]["KSVSMap"]
    close([float(v) for v in ksvs_columns(answer)["res"]], ref.predict(xk))


def test_a_glm_on_a_project_without_kept_rows_is_refused_at_once(node: Node) -> None:
    c = node.client()
    c.create_project("plain")
    x, y, t = cancer()
    c.learn("plain", frame(x[:50], y[:50], t))
    with pytest.raises(ApiError) as e:
        c.start_build("plain", "m", "lr", {"targetAttributeNames": ["y"]})
    assert e.value.http_status == 400
    assert "'lr'" in str(e.value) and "keepRows" in str(e.value)


def test_a_glm_model_survives_a_restart(tmp_path: Path) -> None:
    keys = {"c1": new_secret_key()}
    gen = serve(Settings(data_dir=tmp_path), keys)
    c = next(gen).client()
    x, y, t = cancer()
    c.request("POST", c._rest("projects"), params={"pid": "p", "keepRows": "true"})
    c.learn("p", frame(x, y, t))
    before = c.build("p", "m", "lr", {"targetAttributeNames": ["y"]})
    expected = c.predict("p", "m", frame(x[:20], y[:20], t))
    gen.close()
    gen = serve(Settings(data_dir=tmp_path), keys)
    try:
        c = next(gen).client()
        assert c.model("p", "m")["coef"] == before["coef"]
        assert c.predict("p", "m", frame(x[:20], y[:20], t)) == expected
    finally:
        gen.close()
