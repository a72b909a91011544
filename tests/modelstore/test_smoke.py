def test_version(node, call, call_ok):
    assert call_ok(node, "fl.get_server_version")
    assert call(node, "fl.nope").code == -32601
