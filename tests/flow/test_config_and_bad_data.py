"""Authentication is on unless explicitly turned off; a non-numeric column fails an
upload naming the column, and leaves no table behind."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from fedstats.node.api.flow.auth import signature
from fedstats.node.api.flow.state import FlowConfig
from fedstats_harness.inprocess import Node


def test_auth_is_on_unless_explicitly_off() -> None:
    assert FlowConfig.from_env({}).auth is True
    assert FlowConfig.from_env({"FEDSTATS_FLOW_AUTH": "off"}).auth is False
    with pytest.raises(ValueError, match="FEDSTATS_FLOW_AUTH"):
        FlowConfig.from_env({"FEDSTATS_FLOW_AUTH": "maybe"})


def _signed_post(node: Node, path: str, query: str, files: dict, cid: str = "c1") -> dict:
    req = httpx.Request("POST", node.url + path, params={query: ""}, files=files)
    ts, nonce = str(round(time.time() * 1000)), str(uuid.uuid1())
    req.headers.update({"TIMESTAMP": ts, "NONCE": nonce, "APP_KEY": cid,
                        "SIGNATURE": signature(node.keys[cid], ts, nonce, cid,
                                               req.url.raw_path.decode(), b"")})
    with httpx.Client() as c:
        out: dict = c.send(req).json()
    return out


def test_a_text_column_fails_the_upload_naming_it(flow_node: Node) -> None:
    conf = json.dumps({"namespace": "bad", "table_name": "text", "head": 1, "partition": 1})
    csv = b"id,y,colour\n1,0,red\n2,1,blue\n"
    out = _signed_post(flow_node, "/v1/data/upload", conf,
                       {"file": ("t.csv", csv, "application/octet-stream")})
    assert out["retcode"] == 102 and "'colour'" in out["retmsg"], out
    assert flow_node.app.state.flow.tables.info("bad", "text")["exist"] == 0
    ok = _signed_post(flow_node, "/v1/data/upload", conf,
                      {"file": ("t.csv", b"id,y\n1,0\n2,1\n", "application/octet-stream")})
    assert ok["retcode"] == 0, ok
    assert flow_node.app.state.flow.tables.info("bad", "text")["count"] == 2
