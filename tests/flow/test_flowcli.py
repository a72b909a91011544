"""`fedstats flow -f ...` (the reference CLI's syntax, signed): upload, info, history,
delete; a wrong key is refused; a restarted node still has its tables."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import cast

import pytest

from fedstats.cli import main as fedstats_main
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve


def _call(capsys: pytest.CaptureFixture[str], url: str, cid: str, key: str, *args: str) -> dict:
    port = url.rsplit(":", 1)[1]
    fedstats_main(["flow", "--ip", "127.0.0.1", "--port", port, "--app-key", cid,
                   "--secret-key", key, *args])
    out = capsys.readouterr().out
    assert out.startswith("{\n    ")  # indented by 4, as FATE's CLI prints
    return json.loads(out)


def test_the_flow_function_cli_and_a_restart(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys = {"c1": new_secret_key()}
    csv = tmp_path / "t.csv"
    csv.write_text("id,y,x0\n" + "".join(f"{i},{i % 2},{i * 0.5}\n" for i in range(100)))
    conf = tmp_path / "up.json"
    conf.write_text(json.dumps({"file": str(csv), "head": 1, "partition": 2,
                                "namespace": "cli", "table_name": "t"}))
    os.environ.pop("FEDSTATS_FLOW_ROOT", None)
    gen = cast(Generator[Node, None, None], serve(Settings(data_dir=data), keys))
    node = next(gen)
    try:
        up = _call(capsys, node.url, "c1", keys["c1"], "-f", "upload", "-c", str(conf))
        assert up["retcode"] == 0, up
        info = _call(capsys, node.url, "c1", keys["c1"], "-f", "table_info", "-n", "cli", "-t", "t")
        assert (info["data"]["exist"], info["data"]["count"]) == (1, 100)
        bad = _call(capsys, node.url, "c1", new_secret_key(), "-f", "table_info", "-n", "cli", "-t", "t")
        assert bad["retcode"] == 109
    finally:
        gen.close()
    gen = cast(Generator[Node, None, None], serve(Settings(data_dir=data), keys))
    node = next(gen)
    try:
        info = _call(capsys, node.url, "c1", keys["c1"], "-f", "table_info", "-n", "cli", "-t", "t")
        assert (info["data"]["exist"], info["data"]["count"]) == (1, 100)
        hist = _call(capsys, node.url, "c1", keys["c1"], "-f", "upload_history", "-limit", "3")
        assert [next(iter(h)) for h in hist["data"]] == [up["jobId"]]
        gone = _call(capsys, node.url, "c1", keys["c1"], "-f", "table_delete", "-n", "cli", "-t", "t")
        assert gone["retcode"] == 0
    finally:
        gen.close()
