"""A model file written in blocks (the upload's two halves: the bytes, then their SHA-256,
with the disk's writeback started between blocks) is the file `write` makes."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from fedstats.node.store.blobs import BlobStore


@pytest.mark.parametrize("seed", range(3))
def test_blocks_written_hashed_and_written_back_make_the_same_file(tmp_path, seed):
    rng = random.Random(seed)
    store = BlobStore(tmp_path / "blobs")
    blocks = [[memoryview(os.urandom(rng.choice([0, 1, 4096, 65536, 256000])))
               for _ in range(rng.randint(1, 1500))] for _ in range(4)]  # over IOV_MAX parts
    expected = b"".join(bytes(p) for block in blocks for p in block)

    by_parts = store.writer()
    for block in blocks:
        by_parts.write_parts(block)
        by_parts.hash_parts(block)
        by_parts.start_writeback()
    digest = by_parts.finish()

    whole = store.writer()
    for block in blocks:
        for part in block:
            whole.write(part)
    assert digest == whole.finish() == hashlib.sha256(expected).hexdigest()
    assert by_parts.size == len(expected)
    assert by_parts.path.read_bytes() == expected
    whole.abort()
    assert store.place(by_parts).read_bytes() == expected
