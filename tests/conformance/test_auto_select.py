"""autoSelect (auto-select-with-symetryml.md, "Auto Select DataFrame Rest API"): the best
model for a task, built from the statistics and scored on the validation DataFrame.

The sample requests are replayed (a binary classifier on Iris_virginica, a regression
with the fw/bw selector and a grid); the chosen model must be a real model of the
project whose reported score is what scikit-learn's metric gives for its predictions on
the validation rows, and no other candidate of the search may score better.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn.metrics import mean_squared_error, roc_auc_score

from fedstats.node.client import ApiError, Client
from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.frame import parse_frame
from fedstats.node.engine.models import build_model
from fedstats.node.engine.models.select import _auc, auto_select
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width", "sepal_lengt_b1",
         "sepal_lengt_b2", "sepal_width_b1", "sepal_width_b2", "petal_length_b1",
         "petal_length_b2", "petal_width_b1", "petal_width_b2", "Iris_setosa",
         "Iris_versicolor", "Iris_virginica"]


def iris_frame(rows: slice, types: str = "CB") -> dict[str, Any]:
    iris = datasets.load_iris()
    x, y = iris.data, iris.target
    above = x > np.median(x, axis=0)
    data = []
    for i in range(len(y))[rows]:
        bins = [v for j in range(4) for v in ((0, 1) if above[i, j] else (1, 0))]
        data.append([repr(float(v)) for v in x[i]] +
                    [str(v) for v in bins + [int(y[i] == k) for k in range(3)]])
    kinds = ["C"] * 4 + (["B"] * 11 if types == "CB" else ["C"] * 11)
    return {"attributeNames": NAMES, "attributeTypes": kinds, "data": data}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from serve(Settings(data_dir=tmp_path_factory.mktemp("autoselect")),
                     {"c1": new_secret_key()})


@pytest.fixture(scope="module")
def project(node: Node) -> str:
    client = node.client()
    client.create_project("p1")
    client.learn("p1", iris_frame(slice(0, None, 2)))  # even rows learn, odd rows validate
    return "p1"


def _select(client: Client, pid: str, task: str, model: str, mlcontext: dict[str, Any],
            validation: dict[str, Any]) -> dict[str, Any]:
    accepted = client.request("POST", f"/symetry/rest/c1/projects/{pid}/autoSelect",
                              params={"task": task, "modelid": model},
                              json={"mlcontext": mlcontext, "dataframe": validation})
    assert accepted["statusCode"] == "ACCEPTED" and accepted["statusString"] == "Job Created"
    return client.wait_job(f"/symetry/rest/c1/jobs/{accepted['values']['jobinfo']['id']}")


def test_auto_select_dataframe_sample_request_classifier(node: Node, project: str) -> None:
    client = node.client()
    validation = iris_frame(slice(1, None, 2), types="C")  # as sym-rest-rc sends it: all C
    done = _select(client, project, "binary_classifier", "autoSelectModel1",
                   {"targets": [], "inputAttributes": [], "inputAttributeNames": NAMES[:12],
                    "targetAttributeNames": ["Iris_virginica"],
                    "extraParameters": {"rnd_seed": "1"}}, validation)
    info = done["modelInfo"]
    assert info["modelId"] == "autoSelectModel1" and info["modelType"] in ("lda", "bayes")
    (chosen,) = done["KSVSMap"]["values"]
    assert chosen["metric"] == "auc" and chosen["algo"] == info["modelType"]
    assert chosen["inputs"].split(",") == info["attributeNames"]
    rows = client.predict(project, "autoSelectModel1", validation)["values"]["KSVSMap"]["values"]
    truth = [int(r[14]) for r in validation["data"]]
    assert float(chosen["score"]) == pytest.approx(
        roc_auc_score(truth, [float(r["proba_1"]) for r in rows]), rel=1e-12)


def test_auto_select_dataframe_sample_request_regression(node: Node, project: str) -> None:
    client = node.client()
    validation = iris_frame(slice(1, None, 2))
    done = _select(client, project, "regression", "autoSelectModelReg1",
                   {"targetAttributeNames": ["sepal_length"],
                    "inputAttributeNames": NAMES[1:4],
                    "extraParameters": {"rnd_seed": "1", "selector_type": "selector_type_fw_bw",
                                        "autoselect_grid_type": "autoselect_grid_type_small"}},
                   validation)
    (chosen,) = done["KSVSMap"]["values"]
    assert done["modelInfo"]["modelType"] == "elasticnet" and chosen["metric"] == "rmse"
    assert chosen["lambda"] in {"0.001", "0.01", "0.1", "1.0"} and chosen["eta"] in {
        "0.0", "0.5", "1.0"}
    rows = client.predict(project, "autoSelectModelReg1", validation)["values"]["KSVSMap"]
    truth = [float(r[0]) for r in validation["data"]]
    rmse = mean_squared_error(truth, [float(r["res"]) for r in rows["values"]]) ** 0.5
    assert float(chosen["score"]) == pytest.approx(rmse, rel=1e-12)


@pytest.mark.parametrize(("extra", "named"), [
    ({"selector_type": "selector_type_genetic"}, "selector_type"),
    ({"sml_model_assessment_type": "rmse"}, "sml_model_assessment_type"),
    ({"kmeans_k": "2"}, "kmeans_k"),
], ids=["genetic", "rmse-for-classifier", "unknown"])
def test_auto_select_parameters_not_offered_are_400_naming_them(
        node: Node, project: str, extra: dict[str, str], named: str) -> None:
    with pytest.raises(ApiError) as e:
        _select(node.client(), project, "binary_classifier", "bad",
                {"targetAttributeNames": ["Iris_virginica"],
                 "inputAttributeNames": NAMES[:4], "extraParameters": extra},
                iris_frame(slice(1, None, 2)))
    assert e.value.http_status == 400 and repr(named) in e.value.message


def test_no_candidate_of_the_search_beats_the_chosen_one() -> None:
    """The selection is a search: every single-attribute lda and bayes model, and the
    four measures together, score at most what fw/bw chose."""
    acc = Accumulator()
    acc.learn(parse_frame(iris_frame(slice(0, None, 2))))
    validation = parse_frame(iris_frame(slice(1, None, 2)))
    ctx = {"targetAttributeNames": ["Iris_versicolor"], "inputAttributeNames": NAMES[:12]}
    chosen = auto_select("binary_classifier", acc, ctx, validation)
    truth = validation.values[:, validation.columns.index("Iris_versicolor")]
    for algo in ("lda", "bayes"):
        for subset in [[a] for a in NAMES[:12]] + [NAMES[:4]]:
            model = build_model(algo, acc, {"targetAttributeNames": ["Iris_versicolor"],
                                            "inputAttributeNames": subset})
            p = np.asarray(model.predict_columns(validation)["proba_1"], float)
            assert roc_auc_score(truth, p) <= chosen.score + 1e-12


def test_auc_is_the_mann_whitney_statistic_with_ties_counted_half() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=200).astype(float)
    scores = np.round(rng.random(200), 1)  # many ties
    assert _auc(truth, scores) == pytest.approx(roc_auc_score(truth, scores), rel=1e-15)
