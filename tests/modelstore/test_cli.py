"""`fedstats modelstore ...` against a node process: JSON out, server errors on stderr."""

from __future__ import annotations

import json

from fedstats.cli import main


def test_the_commands_put_list_load_and_report_errors(node, keys, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.setenv("XDATA_FL_APIKEY", "c1")
    monkeypatch.setenv("XDATA_FL_SECRET", keys["c1"])
    base = ["modelstore", "--endpoint", node.url]
    assert main([*base, "init", "ddc:cli"]) == 0
    model = tmp_path / "m.bin"
    model.write_bytes(b"cli model")
    capsys.readouterr()
    assert main([*base, "put", "ddc:cli", str(model), "--meta", '{"v": 1}']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_meta"] == {"v": 1}
    assert main([*base, "models", "ddc:cli"]) == 0
    assert [m["model_id"] for m in json.loads(capsys.readouterr().out)] == [info["model_id"]]
    out = tmp_path / "out.bin"
    assert main([*base, "load", "ddc:cli", info["model_id"], "-o", str(out)]) == 0
    assert out.read_bytes() == b"cli model"
    capsys.readouterr()
    assert main([*base, "info", "ddc:cli", "no-such-model"]) == 1
    assert json.loads(capsys.readouterr().err)["code"] == -32003
