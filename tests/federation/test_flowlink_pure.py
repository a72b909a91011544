"""What crosses between the parties of a FATE job (`flowlink`): answers keep their exact
sums, and a coordinator's output path reaches a member only as five plain names."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.glm import RoundStats, round_stats
from fedstats.node.federation.flowlink import decode_value, encode_value, relative_job_path
from fedstats.node.service.flowjobs.errors import ComponentFailed


def test_round_sums_accumulators_and_arrays_come_back_bit_identical() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 4)), (rng.uniform(size=200) < 0.5).astype(float)
    stats = round_stats(x, y, rng.normal(size=5), "binomial")
    acc = Accumulator()
    acc.learn_array(np.column_stack([x, y]), ["a", "b", "c", "d", "y"], binary=["y"])
    value = {"stats": stats, "acc": acc, "moments": np.arange(3.0), "n": np.int64(7),
             "nested": [{"k": np.float64(0.1)}]}
    back = decode_value(encode_value(value))
    assert isinstance(back["stats"], RoundStats)
    np.testing.assert_array_equal(back["stats"].hess, stats.hess)
    np.testing.assert_array_equal(back["stats"].grad, stats.grad)
    assert back["stats"].loss == stats.loss and back["stats"].n == stats.n
    assert isinstance(back["acc"], Accumulator) and back["acc"].n == acc.n
    assert back["moments"] == [0.0, 1.0, 2.0] and back["n"] == 7
    assert back["nested"] == [{"k": 0.1}]


def test_an_output_path_becomes_the_job_relative_names_only() -> None:
    assert relative_job_path("/srv/admin/flow/jobs/j1/guest/9999/lr_0/data.arrow") == [
        "j1", "guest", "9999", "lr_0", "data.arrow"]
    for bad in ("/srv/x/../guest/9999/lr_0/data.arrow", "data.arrow", "a/b/c/./e"):
        with pytest.raises(ComponentFailed):
            relative_job_path(bad)

