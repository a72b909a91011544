"""Three levels of node processes (edges -> region -> root) over plain HTTP: edges learn
split rows and feed their snapshots back, the region and the root aggregate exactly, and
a transfer brings the root's model down to an edge, where a model built from it equals
scikit-learn on the pooled rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fedstats.node.client import Client
from fedstats.node.engine.codec import decode_snapshot
from fedstats.node.engine.models import build_model
from fedstats_harness.frames import frame
from fedstats_harness.jsonrpc import download

pytestmark = pytest.mark.slow


def _rows(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 5.0, 0.1] + [0.0, 100.0, -3.0]
    y = x @ [2.0, -0.5, 7.0] + 1.5 + rng.normal(scale=0.3, size=n)
    return np.column_stack([x, y])


def _up(node, store, keys):
    return {"endpoint": node.url, "model_store_ddc": store, "apikey": "c1",
            "secret": keys["c1"]}


@pytest.fixture(scope="module")
def tree(ms_nodes, keys):
    root = ms_nodes("root", {"tenant_id": "root"})
    region = ms_nodes("region", {"tenant_id": "region",
                                 "upstream": _up(root, "ddc:global", keys)})
    edges = {name: ms_nodes(name, {"tenant_id": name, "tenant_name": f"edge {name}",
                                   "upstream": _up(parent, store, keys)})
             for name, parent, store in (("e1", region, "ddc:regional"),
                                         ("e2", region, "ddc:regional"),
                                         ("e3", root, "ddc:global"))}
    return root, region, edges


def test_three_levels_aggregate_exactly_and_the_root_model_comes_down(tree, keys, call,
                                                                      call_ok):
    root, region, edges = tree
    call_ok(root, "fl.initialize_model_store", ["ddc:global"])
    call_ok(region, "fl.initialize_model_store", ["ddc:regional"])
    parts = {name: _rows(i, 200 + 50 * i) for i, name in enumerate(edges)}
    fed_back = {}
    for name, node in edges.items():
        with Client(node.url, "c1", keys["c1"]) as rest:
            rest.create_project("p")
            rest.learn("p", frame(parts[name], ["a", "b", "c", "y"]))
        call_ok(node, "fl.initialize_model_store", ["ddc:edge"])
        snap = call_ok(node, "fedstats.put_project_snapshot", ["ddc:edge", "p"])
        assert snap["model_kind"] == "fedstats.snapshot" and snap["model_state"] == 10
        upstream_info = call_ok(node, "fl.feedback", ["ddc:edge", snap["model_id"]])
        assert upstream_info["model_state"] == 20 and upstream_info["tenant_id"] == name
        assert upstream_info["model_id"] != snap["model_id"]
        fed_back[name] = (snap, upstream_info)

    # feedback of the same model twice counts once
    again = call_ok(edges["e1"], "fl.feedback", ["ddc:edge", fed_back["e1"][0]["model_id"]])
    assert again["model_id"] == fed_back["e1"][1]["model_id"]
    feedbacked = [m for m in call_ok(region, "fl.get_models", ["ddc:regional"])
                  if m["model_state"] == 20]
    assert len(feedbacked) == 2

    regional = call_ok(region, "fl.get_latest_aggregated_model", ["ddc:regional"])
    assert regional["model_meta"]["fedstats_rows"] == len(parts["e1"]) + len(parts["e2"])
    call_ok(region, "fl.feedback", ["ddc:regional", regional["model_id"]])
    top = call_ok(root, "fl.get_latest_aggregated_model", ["ddc:global"])
    assert top["model_meta"]["fedstats_rows"] == sum(len(p) for p in parts.values())
    assert sorted(top["model_meta"]["fedstats_tenants"]) == ["e3", "region"]

    moved = call_ok(region, "fl.request_transfer", ["ddc:regional"])
    assert moved["model_state"] == 40 and moved["source_model_id"] == top["model_id"]
    assert call_ok(region, "fl.request_transfer", ["ddc:regional"])["model_id"] == moved[
        "model_id"]  # transferred once
    info = call_ok(edges["e1"], "fl.proxy_request_transfer_info", ["ddc:edge"])
    assert info["model_id"] == moved["model_id"]
    at_edge = call_ok(edges["e1"], "fl.request_transfer", ["ddc:edge"])
    assert at_edge["model_state"] == 40 and at_edge["hop_count"] == 1
    assert at_edge["model_sha256"] == top["model_sha256"]
    assert call_ok(edges["e1"], "fl.get_latest_transferred_model", ["ddc:edge"])[
        "model_id"] == at_edge["model_id"]

    body = download(edges["e1"].url, "ddc:edge", at_edge["model_id"], "c1", keys["c1"])
    model = build_model("mlr", decode_snapshot(body.content), {"targetAttributeNames": ["y"]})
    pooled = np.vstack(list(parts.values()))
    sk = LinearRegression().fit(pooled[:, :3], pooled[:, 3])
    np.testing.assert_allclose(model.arrays["coef"], sk.coef_, rtol=1e-9)
    np.testing.assert_allclose(model.arrays["intercept"], sk.intercept_, rtol=1e-9)


def test_parties_register_with_the_upstream(tree, call_ok):
    _, region, edges = tree
    party = call_ok(edges["e2"], "fl.create_party", ["edge two"])
    assert party["tenant_id"] == "e2" and party["tenant_name"] == "edge e2"
    listed = call_ok(edges["e1"], "fl.get_parties")  # e1's upstream is the region too
    assert party["id"] in [p["id"] for p in listed]
    here = call_ok(region, "fl.get_parties", {"here": True})  # the region's own registry
    assert party["id"] in [p["id"] for p in here]
    assert call_ok(region, "fl.get_parties") == []  # asked of the region: its upstream's
    assert call_ok(edges["e2"], "fl.delete_party", [party["id"]]) == 1
