"""Snapshot messages: sealed with the federation key, chunked, reassembled, authenticated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.federation.errors import WireError
from fedstats.node.federation.wire import (
    MAGIC,
    Reassembler,
    open_message,
    open_snapshot,
    read_frame,
    seal_message,
    seal_snapshot,
)
from fedstats.node.security.keys import new_secret_key

KEY = new_secret_key()


def _acc(d: int = 6, rows: int = 50) -> Accumulator:
    acc = Accumulator()
    acc.learn_array(
        np.random.default_rng(1).normal(size=(rows, d)), [f"confidential_{i}" for i in range(d)]
    )
    return acc


@pytest.mark.parametrize("chunk", [1 << 20, 100, 7], ids=["one-frame", "chunks", "tiny-chunks"])
def test_snapshot_round_trips_whole_or_chunked(chunk: int) -> None:
    acc = _acc()
    frames = seal_snapshot(KEY, "fed", "p1", 42, acc, chunk_size=chunk)
    assert (len(frames) == 1) is (chunk == 1 << 20)
    parsed = [read_frame(f) for f in frames]
    assert {f.key for f in parsed} == {("p1", "snapshot", 42)}
    assert open_snapshot(KEY, parsed[::-1]).allclose(acc, rtol=0, atol=0)


def test_captured_snapshot_does_not_decrypt_without_the_key() -> None:
    frames = seal_snapshot(KEY, "fed", "p1", 1, _acc())
    with pytest.raises(WireError, match="does not decrypt"):
        open_snapshot(new_secret_key(), [read_frame(f) for f in frames])


def test_statistics_are_not_readable_in_the_frame() -> None:
    acc = _acc()
    [frame] = seal_snapshot(KEY, "fed", "p1", 1, acc)
    assert b"confidential_" not in frame  # column names travel inside the sealed bytes
    assert np.asarray(acc.total.mean).tobytes()[:8] not in frame


def _tamper_header(frame: bytes, **changes: object) -> bytes:
    hlen = int.from_bytes(frame[4:8], "little")
    head = json.loads(frame[8 : 8 + hlen])
    head.update(changes)
    new = json.dumps(head).encode()
    return MAGIC + len(new).to_bytes(4, "little") + new + frame[8 + hlen :]


@pytest.mark.parametrize(
    "change",
    [{"peer": "p2"}, {"version": 43}, {"fed": "other"}],
    ids=["other-peer", "other-version", "other-federation"],
)
def test_header_is_authenticated(change: dict[str, object]) -> None:
    [frame] = seal_message(KEY, "fed", "p1", "snapshot", 42, b"body")
    with pytest.raises(WireError, match="does not decrypt"):
        open_message(KEY, [read_frame(_tamper_header(frame, **change))])


def test_flipped_body_byte_is_refused() -> None:
    [frame] = seal_message(KEY, "fed", "p1", "control", 1, b"hello world")
    bad = bytearray(frame)
    bad[-3] ^= 1
    with pytest.raises(WireError, match="does not decrypt"):
        open_message(KEY, [read_frame(bytes(bad))])


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"hello", "not a fedstats"),
        (MAGIC + (10_000).to_bytes(4, "little") + b"{}", "truncated or too large"),
        (MAGIC + (2).to_bytes(4, "little") + b"{}", "unreadable"),
    ],
    ids=["foreign", "huge-header", "empty-header"],
)
def test_foreign_or_broken_frames_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(WireError, match=words):
        read_frame(data)


def test_reassembler_puts_interleaved_messages_back_together() -> None:
    a = [read_frame(f) for f in seal_message(KEY, "f", "pa", "snapshot", 1, b"a" * 100, 30)]
    b = [read_frame(f) for f in seal_message(KEY, "f", "pb", "snapshot", 1, b"b" * 100, 30)]
    r = Reassembler()
    done = []
    for fa, fb in zip(a, b, strict=True):
        for f in (fb, fa):
            whole = r.add(f)
            if whole:
                done.append(open_message(KEY, whole))
    assert sorted(done) == [b"a" * 100, b"b" * 100]
    assert r.pending_bytes == 0


def test_reassembler_drops_partial_messages_after_ttl() -> None:
    frames = [read_frame(f) for f in seal_message(KEY, "f", "p", "snapshot", 1, b"x" * 90, 30)]
    r = Reassembler(ttl_s=10)
    assert r.add(frames[0], now=0.0) is None
    assert r.pending_bytes > 0
    assert r.add(frames[1], now=100.0) is None  # the first chunk was forgotten meanwhile
    assert r.pending_bytes == len(frames[1].data)


def test_a_peer_that_never_finishes_evicts_only_its_own_partial_messages() -> None:
    r = Reassembler(peer_max_bytes=4000)
    honest = [read_frame(f) for f in seal_message(KEY, "f", "good", "snapshot", 1, b"g" * 900, 300)]
    assert r.add(honest[0], now=0.0) is None
    # a hostile peer starts many messages (distinct versions) and never finishes any
    for v in range(1, 200):
        frames = seal_message(KEY, "f", "bad", "snapshot", v, b"b" * 900, 300)
        assert r.add(read_frame(frames[0]), now=float(v) / 1000) is None
        assert r.peer_bytes("bad") <= 4000
    assert r.peer_bytes("good") > 0  # the honest peer's chunk is still held
    whole = None
    for f in honest[1:]:
        whole = r.add(f, now=1.0)
    assert whole is not None and open_message(KEY, whole) == b"g" * 900
    assert r.peer_bytes("good") == 0
    # the hostile peer's newest partial message survived, its oldest went
    assert r.peer_bytes("bad") <= 4000 and r.pending_bytes <= 4000


def test_a_message_larger_than_a_peers_budget_is_refused_at_its_first_chunk() -> None:
    r = Reassembler(peer_max_bytes=1000)
    frames = seal_message(KEY, "f", "p", "snapshot", 1, b"x" * 2000, 300)
    with pytest.raises(WireError, match="exceeds"):
        r.add(read_frame(frames[0]))
    assert r.pending_bytes == 0


@pytest.mark.parametrize(
    "change",
    [{"chunks": 1 << 20}, {"size": 1 << 40, "sealed": (1 << 40) + 28}, {"chunks": 50}],
    ids=["too-many-chunks", "too-large", "more-chunks-than-bytes"],
)
def test_frames_announcing_absurd_sizes_are_refused(change: dict[str, object]) -> None:
    [frame] = seal_message(KEY, "fed", "p1", "snapshot", 1, b"tiny")
    with pytest.raises(WireError, match=r"out of bounds|do not fit"):
        read_frame(_tamper_header(frame, **change))
