"""The customers file: formats, environment variable, and errors that never echo a key."""

from __future__ import annotations

import base64
import json

import pytest

from fedstats.node.security import Customer, load_customers, new_secret_key

KEY = new_secret_key()


def test_plain_and_object_entries(tmp_path) -> None:
    path = tmp_path / "customers.json"
    path.write_text(json.dumps({"c1": KEY, "c2": {"key": KEY, "legacy_cbc": True}}))
    customers = load_customers(str(path))
    assert customers == {"c1": Customer("c1", KEY), "c2": Customer("c2", KEY, legacy_cbc=True)}


def test_repr_masks_the_key() -> None:
    text = repr(Customer("c1", KEY))
    assert KEY not in text and KEY[:4] + "****" in text


@pytest.mark.parametrize("as_path", [pytest.param(True, id="env-path"),
                                     pytest.param(False, id="env-json-text")])
def test_env_var_holds_a_path_or_the_json_itself(tmp_path, monkeypatch, as_path: bool) -> None:
    text = json.dumps({"c1": KEY})
    if as_path:
        (tmp_path / "c.json").write_text(text)
        text = str(tmp_path / "c.json")
    monkeypatch.setenv("FEDSTATS_CUSTOMERS", text)
    assert load_customers() == {"c1": Customer("c1", KEY)}


SHORT = base64.b64encode(b"0123456789abcdef").decode()


@pytest.mark.parametrize("content,reason", [
    pytest.param("{not json", "not valid JSON", id="not-json"),
    pytest.param('["c1"]', "expected a JSON object", id="not-object"),
    pytest.param(json.dumps({"c1": SHORT}), "'c1': secret key must decode to 32 bytes",
                 id="short-key"),
    pytest.param(json.dumps({"c1": SHORT[:-2] + "*="}), "'c1': secret key is not valid Base64",
                 id="bad-base64"),
    pytest.param(json.dumps({"c1": 42}), "'c1': the key must be a Base64 string", id="number"),
    pytest.param(json.dumps({"c1": {"key": KEY, "legacy": True}}), "unknown fields",
                 id="unknown-field"),
    pytest.param(json.dumps({"c1": {"key": KEY, "legacy_cbc": "yes"}}), "true or false",
                 id="legacy-not-bool"),
    pytest.param(json.dumps({"": KEY}), "empty customer id", id="empty-id"),
])
def test_bad_files_give_clear_errors_without_the_key(tmp_path, content: str, reason: str) -> None:
    path = tmp_path / "customers.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=reason) as e:
        load_customers(str(path))
    assert SHORT not in str(e.value) and KEY not in str(e.value)


def test_missing_file_and_missing_configuration(tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="cannot read customers file"):
        load_customers(str(tmp_path / "absent.json"))
    monkeypatch.delenv("FEDSTATS_CUSTOMERS", raising=False)
    with pytest.raises(ValueError, match="FEDSTATS_CUSTOMERS"):
        load_customers()
