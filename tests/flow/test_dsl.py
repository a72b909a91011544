"""DSL v2 and conf checks: FATE's own homo LR example passes; each defect is refused with
a message naming it, also through fate-client's `flow job submit`."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fedstats.node.api.flow.dsl import check_conf, check_dsl
from fedstats.node.api.flow.envelope import FlowError
from fedstats_harness.inprocess import Node

DATA = Path(__file__).parent / "data"
CONF = json.loads((DATA / "homo_lr_train_conf.json").read_text())
DSL = json.loads((DATA / "homo_lr_train_dsl.json").read_text())


def test_fates_homo_lr_example_is_valid() -> None:
    assert check_dsl(DSL) == ["reader_0", "data_transform_0", "scale_0", "homo_lr_0",
                              "evaluation_0"]
    assert check_conf(CONF) == {"guest": [9999], "host": [10000], "arbiter": [10000]}


def _dsl(edit: Any) -> dict[str, Any]:
    d = copy.deepcopy(DSL)
    edit(d["components"])
    return d


@pytest.mark.parametrize(("edit", "words"), [
    (lambda c: c["scale_0"]["input"]["data"].update(data=["nowhere_0.data"]), "names no component"),
    (lambda c: c["scale_0"]["input"]["data"].update(data=["reader_0.model"]), "has no data output"),
    (lambda c: c["reader_0"].update(input={"data": {"data": ["evaluation_0.data"]}}), "cycle"),
    (lambda c: c["homo_lr_0"].update(module="HeteroLR"), "HeteroLR is vertical (hetero)"),
    (lambda c: c.update(intersection_0={"module": "Intersection"}), "Intersection is vertical"),
    (lambda c: c["homo_lr_0"].update(module="HomoSecureBoost"), "tree or neural"),
    (lambda c: c["homo_lr_0"].pop("module"), "has no module"),
])
def test_dsl_defects_are_named(edit: Any, words: str) -> None:
    with pytest.raises(FlowError, match=re.escape(words)):
        check_dsl(_dsl(edit))


@pytest.mark.parametrize(("edit", "words"), [
    (lambda c: c["initiator"].update(party_id=1), "initiator guest 1 is not among"),
    (lambda c: c["role"].update(guest=["x"]), "must be integers"),
    (lambda c: c["role"].update(judge=[1]), "unknown role 'judge'"),
    (lambda c: c["component_parameters"]["role"]["host"].update({"1": {}}), "index '1'"),
])
def test_conf_defects_are_named(edit: Any, words: str) -> None:
    conf = copy.deepcopy(CONF)
    edit(conf)
    with pytest.raises(FlowError, match=re.escape(words)):
        check_conf(conf)


def test_flow_job_submit_reports_the_hetero_module(flow_bin: Path, flow_node: Node,
                                                   tmp_path: Path) -> None:
    port = flow_node.url.rsplit(":", 1)[1]
    subprocess.run([str(flow_bin), "init", "--ip", "127.0.0.1", "--port", port, "--app-key",
                    "c1", "--secret-key", flow_node.keys["c1"]], check=True, capture_output=True)
    conf, dsl = tmp_path / "conf.json", tmp_path / "dsl.json"
    conf.write_text(json.dumps(CONF))
    dsl.write_text(json.dumps(_dsl(lambda c: c["homo_lr_0"].update(module="HeteroLR"))))
    r = subprocess.run([str(flow_bin), "job", "submit", "-c", str(conf), "-d", str(dsl)],
                       capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout[r.stdout.index("{"):])
    assert out["retcode"] == 101 and "HeteroLR is vertical (hetero)" in out["retmsg"], out
