"""The small calls the event loop answers itself (get_model_info, exists_*) never wait
for the node's write lock: answered while another thread holds a transaction open."""

from __future__ import annotations

import threading

from fedstats.node.modelstore.service import PutRequest
from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness import jsonrpc
from fedstats_harness.inprocess import serve


def test_inline_reads_are_answered_while_a_write_transaction_is_open(tmp_path):
    key = new_secret_key()
    gen = serve(Settings(data_dir=tmp_path), {"c1": key})
    node = next(gen)
    try:
        svc = node.app.state.modelstore.service
        svc.initialize_store("c1", "ddc:loop")
        rec = svc.put_bytes("c1", "ddc:loop", b"model", PutRequest())
        held, release = threading.Event(), threading.Event()

        def writer() -> None:
            with node.app.state.db.transaction():  # the node's write lock, held
                held.set()
                release.wait(60)

        thread = threading.Thread(target=writer)
        thread.start()
        assert held.wait(30)
        try:  # were these waiting for the lock, the loop would stall and the calls time out
            info = jsonrpc.ok(node.url, "fl.get_model_info", ["ddc:loop", rec.model_id],
                              "c1", key)
            assert info["model_id"] == rec.model_id and info["model_size"] == 5
            assert jsonrpc.ok(node.url, "fl.exists_model", ["ddc:loop", rec.model_id],
                              "c1", key) is True
            assert jsonrpc.ok(node.url, "fl.exists_store", ["ddc:loop"], "c1", key) is True
            missing = jsonrpc.rpc(node.url, "fl.get_model_info", ["ddc:gone", "x"], "c1", key)
            assert missing.data["type"] == "StoreNotFound"
        finally:
            release.set()
            thread.join(30)
    finally:
        gen.close()
