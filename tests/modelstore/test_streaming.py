"""Model bytes on the node's disk: streamed both ways in bounded memory, resumed when cut,
verified before they are served, durable once acknowledged, gone when never finished."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket

import httpx
import pytest

from fedstats.node.modelstore.multipart import encode_fields, encode_file_head, new_boundary
from fedstats.node.modelstore.rpcclient import RpcClient
from fedstats.node.security.signing import signed_headers_streamed
from fedstats_harness.jsonrpc import download
from fedstats_harness.waiting import eventually
from xdata_fl.client import Api, FlError

MiB = 1 << 20


def _api(node, keys):
    return Api(node.url, "c1", keys["c1"])


def _blobs(node):
    root = node.data_dir / "modelstore" / "blobs"
    return sorted(p for p in root.glob("*/*") if p.parent.name != "tmp"), list(
        (root / "tmp").glob("*"))


def _vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_cut_download_resumes_with_range(node, keys, tmp_path):
    data = os.urandom(8 * MiB)
    with _api(node, keys) as api:
        api.initialize_model_store("ddc:resume")
        info = api.put_model("ddc:resume", _write(tmp_path / "m", data))
    half = len(data) // 2
    got = bytearray()
    request = {"jsonrpc": "2.0", "method": "fl.load_model", "id": 1,
               "params": {"model_store_ddc": "ddc:resume", "model_id": info["model_id"]}}
    body = json.dumps(request).encode()
    headers = {**_signed(keys, body), "APIKey": "c1"}
    with httpx.stream("POST", node.url + "/jsonrpc/download/fl.load_model", content=body,
                      headers=headers) as resp:
        etag = resp.headers["ETag"]
        for chunk in resp.iter_raw(64 << 10):
            got += chunk
            if len(got) >= half:
                break  # the connection is dropped here, mid-transfer
    rest = download(node.url, "ddc:resume", info["model_id"], "c1", keys["c1"],
                    {"Range": f"bytes={len(got)}-", "If-Range": etag})
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes {len(got)}-{len(data) - 1}/{len(data)}"
    assert bytes(got) + rest.content == data
    stale = download(node.url, "ddc:resume", info["model_id"], "c1", keys["c1"],
                     {"Range": f"bytes={len(got)}-", "If-Range": '"another"'})
    assert stale.status_code == 200 and stale.content == data  # not this model: from 0


class _CutOnce(httpx.BaseTransport):
    """A real HTTP transport whose first download response breaks after `after` bytes."""

    def __init__(self, after: int) -> None:
        self.inner, self.after, self.cut = httpx.HTTPTransport(), after, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        if self.cut or not request.url.path.endswith("fl.load_model"):
            return resp
        self.cut = True
        stream, after = resp.stream, self.after

        class Broken(httpx.SyncByteStream):
            def __iter__(self):
                sent = 0
                for chunk in stream:
                    if sent + len(chunk) >= after:
                        yield chunk[: after - sent]
                        raise httpx.ReadError("connection cut")
                    sent += len(chunk)
                    yield chunk

            def close(self) -> None:
                stream.close()

        return httpx.Response(resp.status_code, headers=resp.headers, stream=Broken(),
                              request=request)

    def close(self) -> None:
        self.inner.close()


def test_the_client_resumes_a_cut_transfer_by_itself(node, keys, tmp_path):
    data = os.urandom(6 * MiB)
    with _api(node, keys) as api:
        api.initialize_model_store("ddc:cut")
        info = api.put_model("ddc:cut", _write(tmp_path / "m", data))
    transport = _CutOnce(3 * MiB)
    with RpcClient(node.url, "c1", keys["c1"], transport=transport) as rpc:
        got = bytearray()
        rpc.download({"model_store_ddc": "ddc:cut", "model_id": info["model_id"]}, got.extend)
    assert transport.cut and bytes(got) == data


def test_a_file_damaged_on_disk_is_refused_on_load(node, keys, tmp_path):
    data = os.urandom(MiB)
    with _api(node, keys) as api:
        api.initialize_model_store("ddc:rot")
        info = api.put_model("ddc:rot", _write(tmp_path / "m", data))
        assert b"".join(api.load_model("ddc:rot", info["model_id"])) == data
        path = node.data_dir / "modelstore" / "blobs" / info["model_sha256"][:2] / info[
            "model_sha256"]
        with open(path, "r+b") as f:
            f.seek(12345)
            byte = f.read(1)
            f.seek(12345)
            f.write(bytes([byte[0] ^ 1]))
        resp = download(node.url, "ddc:rot", info["model_id"], "c1", keys["c1"])
        assert resp.status_code == 500 and resp.json()["error"]["data"]["type"] == "IntegrityError"
        with pytest.raises(FlError) as caught:
            api.load_model("ddc:rot", info["model_id"])
        assert caught.value.code == -32008
        assert api.get_model_info("ddc:rot", info["model_id"])["model_size"] == len(data)


def test_an_acknowledged_put_survives_kill_9_and_a_partial_one_leaves_nothing(
        ms_nodes, keys, tmp_path):
    node = ms_nodes("durable")
    data = os.urandom(2 * MiB)
    with _api(node, keys) as api:
        api.initialize_model_store("ddc:d")
        info = api.put_model("ddc:d", _write(tmp_path / "m", data))
    sock = _half_an_upload(node, keys, 32 * MiB)
    eventually(lambda: _blobs(node)[1], what="the partial upload's temporary file")
    node.kill()  # kill -9 mid-upload
    sock.close()
    node.start()
    files, temporary = _blobs(node)
    assert temporary == [] and [p.name for p in files] == [info["model_sha256"]]
    with _api(node, keys) as api:
        assert [m["model_id"] for m in api.get_models("ddc:d")] == [info["model_id"]]
        assert b"".join(api.load_model("ddc:d", info["model_id"])) == data
    _half_an_upload(node, keys, 32 * MiB, close=True)  # a client that goes away
    eventually(lambda: _blobs(node)[1] == [], what="the abandoned upload to be removed")


def test_an_uploads_bytes_in_flight_are_held_on_the_nodes_gate(ms_nodes, keys, tmp_path):
    """The blocks an upload holds (received, not yet written) count on the transport's
    Gate as any body read does: an address that never signed holds at most its share,
    and a signed one streams a model many times the node's whole budget, the bytes given
    back as they are written."""
    node = ms_nodes("gated", env={"FEDSTATS_MAX_UNVERIFIED_BYTES_PER_ADDRESS": str(MiB),
                                  "FEDSTATS_MAX_BODY_BYTES_READING": str(16 * MiB)})
    # an address that has not signed: refused past its 1 MiB share, mid-body
    sock = _half_an_upload(node, keys, 5 * MiB, source="127.0.0.7")
    try:
        answer = _answer(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:300]
    assert b"max_unverified_bytes_per_address" in answer
    # a model of 64 MiB through a node that holds 16 MiB of bodies at most, from an address
    # that signed (its first call): the upload holds a few 4 MiB blocks, not the model
    model = os.urandom(64 * MiB)
    with _api(node, keys) as api:
        api.initialize_model_store("ddc:d")
        info = api.put_model("ddc:d", _write(tmp_path / "m", model))
        assert info["model_sha256"] == hashlib.sha256(model).hexdigest()
        assert b"".join(api.load_model("ddc:d", info["model_id"])) == model
    assert _blobs(node)[1] == []


def _answer(sock: socket.socket) -> bytes:
    """One HTTP answer (its head and its Content-Length of body) read off `sock`."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(body) >= length:
                return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.slow
def test_a_2_gib_model_goes_in_and_out_with_the_server_growing_under_64_mb(
        ms_nodes, keys, tmp_path):
    node = ms_nodes("big")
    pid = node.child.pid
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:  # sparse: 2 GiB of zeros that take no disk here
        f.truncate(2 << 30)
    with _api(node, keys) as api:
        api.initialize_model_store("ddc:big")
        warm = api.put_model("ddc:big", _write(tmp_path / "small", os.urandom(8 * MiB)))
        b"".join(api.load_model("ddc:big", warm["model_id"]))
        before = _vm_hwm_kib(pid)
        info = api.put_model("ddc:big", str(source))
        assert info["model_size"] == 2 << 30
        sha = hashlib.sha256()
        with RpcClient(node.url, "c1", keys["c1"], timeout=600) as rpc:
            rpc.download({"model_store_ddc": "ddc:big", "model_id": info["model_id"]},
                         sha.update)
    assert sha.hexdigest() == info["model_sha256"]
    grown_mb = (_vm_hwm_kib(pid) - before) / 1024
    print(f"server peak memory grew by {grown_mb:.1f} MB for a 2 GiB put + load")
    assert grown_mb < 64, f"the server's peak memory grew by {grown_mb:.0f} MB"


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _signed(keys, body: bytes) -> dict[str, str]:
    return signed_headers_streamed("c1", keys["c1"], "POST",
                                   "/jsonrpc/download/fl.load_model", lambda: [body])


def _half_an_upload(node, keys, size: int, close: bool = False,
                    source: str | None = None) -> socket.socket:
    """Send the headers and half the body of a signed upload of `size` bytes, then stop
    (and with `close`, hang up); the socket is kept open otherwise. From `source`, an
    address of this host, when given."""
    boundary = new_boundary()
    path = "/jsonrpc/upload/fl.put_model"
    head = (encode_fields(boundary, [("data", b'{"model_store_ddc": "ddc:d"}',
                                      "application/json")]) + encode_file_head(boundary))
    body_len = len(head) + size + len(f"\r\n--{boundary}--\r\n")
    headers = signed_headers_streamed("c1", keys["c1"], "POST", path,
                                      lambda: [head, b"\0" * size])  # never finished anyway
    lines = [f"POST {path} HTTP/1.1", f"Host: {node.host}:{node.port}",
             f"Content-Type: multipart/form-data; boundary={boundary}",
             f"Content-Length: {body_len}", "APIKey: c1",
             *(f"{k}: {v}" for k, v in headers.items())]
    sock = socket.create_connection((node.host, node.port), timeout=60,
                                    source_address=(source, 0) if source else None)
    # refused before it was all sent, maybe: the answer is the caller's to read
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + head
                     + b"\0" * (size // 2))
    if close:
        sock.close()
    return sock
