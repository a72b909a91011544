"""The Python client with the reference's names: its own examples run unchanged through
the `xdata_fl` compatibility package against a node process."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest

from fedstats.node.modelstore.rpcclient import (
    Signer,
    digest_upload_headers,
    file_sha256,
    upload_headers,
)
from fedstats.node.security.keys import new_secret_key
from fedstats.node.security.signing import (
    CUSTOMER_HEADER,
    format_sym_date,
    parse_sym_date,
    rest_signature,
    signed_headers,
)
from xdata_fl.client import Api, FlEvents, set_logger


@pytest.fixture
def api(node, keys, monkeypatch):
    monkeypatch.setenv("XDATA_FL_ENDPOINT", node.url)
    monkeypatch.setenv("XDATA_FL_APIKEY", "c1")
    monkeypatch.setenv("XDATA_FL_SECRET", keys["c1"])
    with Api() as client:
        yield client


def test_the_reference_examples_run_unchanged(api, tmp_path, caplog):
    logger = logging.getLogger("your_logger")
    set_logger(logger)
    model = tmp_path / "model_1"
    model.write_bytes(b"\x00weights\xff" * 1000)
    api.initialize_model_store(model_store_ddc="ddc:my_first_model_store")
    assert api.exists_store("ddc:my_first_model_store")
    with caplog.at_level(logging.INFO, logger="your_logger"):
        by_path = api.put_model("ddc:my_first_model_store", str(model),
                                model_description="test model",
                                model_meta={"additonal": "additional data"})
    assert any("fl.put_model" in r.getMessage() for r in caplog.records)
    with open(model, "rb") as f:
        by_file = api.put_model("ddc:my_first_model_store", f, model_description="test model")
    assert by_path["model_state"] == FlEvents.CREATED == 10
    assert by_path["model_sha256"] == by_file["model_sha256"]
    assert by_path["start_datetime"].tzinfo is not None  # aware datetimes back
    result = b"".join(api.load_model("ddc:my_first_model_store", by_path["model_id"]))
    assert result == model.read_bytes()
    agg = api.put_aggregated_model("ddc:my_first_model_store", io.BytesIO(b"agg"))
    assert agg["model_state"] == FlEvents.AGGREGATED
    assert api.get_latest_aggregated_model("ddc:my_first_model_store")["model_id"] == agg[
        "model_id"]
    assert len(api.get_models("ddc:my_first_model_store")) == 3
    assert api.delete_all_model("ddc:my_first_model_store") == 3
    assert api.delete_store("ddc:my_first_model_store") == 1


def test_errors_raise_the_class_the_server_named(api):
    from xdata_fl.client import FlError

    with pytest.raises(FlError) as caught:
        api.get_models("ddc:never-made")
    assert type(caught.value).__name__ == "StoreNotFound"
    assert caught.value.code == -32001 and caught.value.data["model_store_ddc"] == "ddc:never-made"


def test_api_without_credentials_says_what_to_set(monkeypatch):
    monkeypatch.delenv("XDATA_FL_APIKEY", raising=False)
    with pytest.raises(ValueError, match="XDATA_FL_APIKEY"):
        Api()


def test_an_upload_is_signed_in_one_pass_as_rest_signs_it_with_an_empty_content_md5():
    key, date, path = new_secret_key(), format_sym_date(), "/jsonrpc/upload/fl.put_model"
    body = b"--b\r\nhead\r\n\r\n" + bytes(range(256)) * 64 + b"\r\n--b--\r\n"
    expected = rest_signature("POST", "", key, date, "c1", body, path, None)
    chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
    assert upload_headers("c1", key, path, chunks, sym_date=date) == {
        "Authorization": expected, "sym-date": date}
    assert upload_headers("c1", key, path, [], sym_date=date)["Authorization"] == \
        rest_signature("POST", "", key, date, "c1", b"", path, None)


def test_an_upload_that_declares_its_digest_signs_it_in_the_files_place():
    key, date, path = new_secret_key(), format_sym_date(), "/jsonrpc/upload/fl.put_model"
    head, tail = b"--b\r\nhead\r\n\r\n", b"\r\n--b--\r\n"
    model = bytes(range(256)) * 64
    digest = hashlib.sha256(model).hexdigest()
    assert file_sha256(io.BytesIO(model)) == digest
    assert digest_upload_headers("c1", key, path, head, digest, tail, sym_date=date) == {
        "Authorization": rest_signature("POST", "", key, date, "c1",
                                        head + digest.encode() + tail, path, None),
        "sym-date": date, "X-Model-Sha256": digest}


def test_the_clients_signer_signs_as_the_node_signs_rest_requests():
    key, date, path = new_secret_key(), format_sym_date(), "/jsonrpc"
    signer = Signer("c1", key)
    for body in (b'{"jsonrpc":"2.0","method":"fl.get_server_version","id":1}', b""):
        expected = signed_headers("c1", key, "POST", path, None, body, sym_date=date)
        expected.pop(CUSTOMER_HEADER)
        assert signer.headers(path, body, sym_date=date) == expected
    now = signer.date()
    assert abs(parse_sym_date(now).timestamp() - parse_sym_date(format_sym_date())
               .timestamp()) < 5
    assert len(now) == len(format_sym_date())
