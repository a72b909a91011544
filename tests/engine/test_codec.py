"""Snapshots: exact round trips, and every kind of damage refused with a clear message."""

from __future__ import annotations

import pickle
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import (
    FORMAT,
    MAGIC,
    MAX_COLUMNS,
    decode_snapshot,
    encode_snapshot,
    snapshot_info,
)
from fedstats.node.engine.errors import SnapshotError
from fedstats.node.engine.frame import parse_frame

HEADER = struct.Struct("<8sHHQIII")


def _continuous() -> Accumulator:
    acc = Accumulator()
    acc.learn_array(np.random.default_rng(1).normal(size=(40, 3)), ["x", "y", "z"])
    return acc


def _classes() -> Accumulator:
    rng = np.random.default_rng(2)
    x = np.c_[rng.normal(size=(50, 2)), rng.integers(0, 2, size=(50, 2))]
    acc = Accumulator()
    acc.learn_array(x, ["a", "b", "c1", "c2"], binary=["c1", "c2"])
    return acc


def _categories() -> Accumulator:
    acc = Accumulator()
    data = [["1.5", "Red", "|a|b"], ["2", "blue", "|b"], ["-3", "red", ""]]
    acc.learn(
        parse_frame(
            {"attributeNames": ["x", "c", "l"], "attributeTypes": ["C", "T", "L"], "data": data}
        )
    )
    return acc


def _unconditional() -> Accumulator:
    acc = Accumulator(conditional=False)
    acc.learn_array([[1.0, 0.0], [2.0, 1.0], [4.0, 1.0]], ["x", "y"], binary=["y"])
    return acc


def _after_forget() -> Accumulator:
    acc = _classes()
    acc.forget_array([[0.1, 0.2, 1.0, 0.0]], ["a", "b", "c1", "c2"], binary=["c1", "c2"])
    return acc


def _unicode_names() -> Accumulator:
    acc = Accumulator()
    acc.learn_array([[1.0, 2.0], [3.0, 5.0]], ["température", "日本"])
    return acc


CASES: dict[str, Callable[[], Accumulator]] = {
    "empty": Accumulator,
    "continuous": _continuous,
    "binary-classes": _classes,
    "categories-and-lists": _categories,
    "unconditional": _unconditional,
    "after-forget": _after_forget,
    "unicode-names": _unicode_names,
}


def assert_identical(a: Accumulator, b: Accumulator) -> None:
    assert (a.columns, a.types, a.parents, a.binary) == (b.columns, b.types, b.parents, b.binary)
    assert (a.conditional, a.version, a.n) == (b.conditional, b.version, b.n)
    assert list(a.cond) == list(b.cond)
    assert b.index == {c: i for i, c in enumerate(b.columns)}
    for ma, mb in [(a.total, b.total), *((a.cond[k], b.cond[k]) for k in a.cond)]:
        assert ma.n == mb.n
        for key in ("mean", "m3", "m4", "lo", "hi"):
            assert np.array_equal(getattr(ma, key), getattr(mb, key)), key
        # BLAS rank-1 updates may leave the two triangles a last bit apart: the upper is kept
        assert np.array_equal(np.triu(ma.m2), np.triu(mb.m2))
        assert np.array_equal(mb.m2, mb.m2.T)


def resealed(data: bytes | bytearray) -> bytes:
    """The bytes with a fresh checksum: damage that only a structural check can catch."""
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_decode_gives_back_the_same_accumulator_bit_for_bit(
    make: Callable[[], Accumulator],
) -> None:
    acc = make()
    data = encode_snapshot(acc)
    back = decode_snapshot(data)
    assert_identical(acc, back)
    assert encode_snapshot(back) == data


def test_a_decoded_accumulator_goes_on_learning_like_the_original() -> None:
    acc = _classes()
    back = decode_snapshot(encode_snapshot(acc))
    more = np.array([[0.5, 0.5, 1.0, 1.0], [9.0, -9.0, 0.0, 1.0]])
    for a in (acc, back):
        a.learn_array(more, ["a", "b", "c1", "c2"], binary=["c1", "c2"])
        a.learn(
            parse_frame(
                {
                    "attributeNames": ["a", "b", "c1", "c2", "t"],
                    "attributeTypes": ["C", "C", "B", "B", "T"],
                    "data": [["1", "2", "0", "1", "new"]],
                }
            )
        )
    assert (acc.columns, acc.binary, acc.types, acc.version) == (
        back.columns,
        back.binary,
        back.types,
        back.version,
    )
    assert acc.allclose(back, rtol=1e-13, atol=1e-13)


def test_the_snapshot_holds_only_the_upper_triangle_of_each_co_moment_matrix() -> None:
    acc = _classes()
    d, blocks = acc.d, 1 + len(acc.cond)
    meta_len = HEADER.unpack_from(encode_snapshot(acc))[6]
    floats = blocks * (6 * d + d * (d + 1) // 2)
    assert len(encode_snapshot(acc)) == HEADER.size + meta_len + 8 * blocks + 8 * floats + 4

    acc.total.m2[3, 0] += 1.0  # the lower triangle is not stored: the upper one wins
    back = decode_snapshot(encode_snapshot(acc))
    assert back.total.m2[3, 0] == back.total.m2[0, 3] == acc.total.m2[0, 3]


def test_the_header_is_little_endian_with_magic_format_and_version() -> None:
    acc = _continuous()
    acc.version = 0x0102030405
    data = encode_snapshot(acc)
    assert data[:8] == MAGIC
    assert data[8:10] == FORMAT.to_bytes(2, "little")
    assert data[12:20] == (0x0102030405).to_bytes(8, "little")
    assert data[-4:] == zlib.crc32(data[:-4]).to_bytes(4, "little")


def test_the_snapshot_is_never_a_pickle() -> None:
    data = encode_snapshot(_classes())
    assert not data.startswith(b"\x80")  # every pickle protocol >= 2 opens so
    with pytest.raises(SnapshotError, match="wrong magic"):
        decode_snapshot(pickle.dumps(_classes().total))


def test_decoded_arrays_do_not_share_memory_with_the_input_bytes() -> None:
    buf = bytearray(encode_snapshot(_continuous()))
    acc = decode_snapshot(buf)
    before = acc.total.mean.copy()
    buf[-100:-4] = b"\xff" * 96
    assert np.array_equal(acc.total.mean, before)


@pytest.mark.parametrize(
    "where",
    [0.3, 0.5, 0.9, -5],
    ids=["in-metadata", "in-counts-or-means", "in-co-moments", "in-last-float"],
)
def test_a_flipped_byte_fails_the_checksum(where: float) -> None:
    data = bytearray(encode_snapshot(_classes()))
    i = int(len(data) * where) if where > 0 else len(data) + int(where)
    i = max(i, HEADER.size)
    data[i] ^= 0x10
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        decode_snapshot(bytes(data))


def test_a_damaged_checksum_is_refused() -> None:
    data = bytearray(encode_snapshot(_classes()))
    data[-1] ^= 0x01
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        decode_snapshot(bytes(data))


@pytest.mark.parametrize("keep", [0, 10, 35, 0.5, -1], ids=lambda k: f"keep-{k}")
def test_truncated_snapshots_are_refused(keep: float) -> None:
    data = encode_snapshot(_classes())
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    with pytest.raises(SnapshotError, match="truncated"):
        decode_snapshot(data[:n])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(SnapshotError, match="trailing bytes"):
        decode_snapshot(encode_snapshot(_classes()) + b"\x00")


def test_wrong_magic_is_refused() -> None:
    data = b"NOTSNAP!" + encode_snapshot(_classes())[8:]
    with pytest.raises(SnapshotError, match="not a fedstats snapshot"):
        decode_snapshot(data)


def test_a_snapshot_from_a_future_format_asks_for_an_upgrade() -> None:
    data = bytearray(encode_snapshot(_classes()))
    data[8:10] = (FORMAT + 1).to_bytes(2, "little")
    with pytest.raises(SnapshotError, match=f"format {FORMAT + 1} is newer .* upgrade"):
        decode_snapshot(resealed(data))


def test_unknown_flags_are_refused() -> None:
    data = bytearray(encode_snapshot(_classes()))
    data[10:12] = (0x8001).to_bytes(2, "little")
    with pytest.raises(SnapshotError, match="unknown flags"):
        decode_snapshot(resealed(data))


@pytest.mark.parametrize(
    ("d", "blocks", "message"),
    [
        pytest.param(MAX_COLUMNS + 1, 1, "more than the", id="too-many-columns"),
        pytest.param(MAX_COLUMNS, 1, "truncated", id="largest-width-but-short"),
        pytest.param(50_000, 50_001, "truncated", id="every-column-conditional"),
        pytest.param(10, 10_000, "moment blocks", id="more-blocks-than-columns"),
        pytest.param(10, 0, "moment blocks", id="no-total-block"),
    ],
)
def test_absurd_sizes_are_refused_before_allocating(d: int, blocks: int, message: str) -> None:
    data = HEADER.pack(MAGIC, FORMAT, 1, 1, d, blocks, 16) + b"\x00" * 64
    tracemalloc.start()
    try:
        with pytest.raises(SnapshotError, match=message):
            decode_snapshot(resealed(data))
        with pytest.raises(SnapshotError, match=message):
            snapshot_info(resealed(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def _with_metadata(meta: bytes, acc: Accumulator) -> bytes:
    """`acc`'s snapshot with its metadata replaced (sizes and checksum fixed up)."""
    data = encode_snapshot(acc)
    fields = list(HEADER.unpack_from(data))
    old = fields[6]
    meta += b" " * (-len(meta) % 8)
    fields[6] = len(meta)
    return resealed(HEADER.pack(*fields) + meta + data[HEADER.size + old :])


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="not-json"),
        pytest.param(b"\xff\xfe", "not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "not an object", id="not-an-object"),
        pytest.param(
            b'{"columns":["x","x","y","z"],"types":{},"parents":{},"binary":[],"cond":[]}',
            "distinct column names",
            id="duplicate-columns",
        ),
        pytest.param(
            b'{"columns":["a","b"],"types":{},"parents":{},"binary":[],"cond":[]}',
            "distinct column names",
            id="too-few-columns",
        ),
        pytest.param(
            b'{"columns":["a","b","c1","c2"],"types":{},"parents":{},"binary":["q"],"cond":[]}',
            "binary columns that are not columns",
            id="unknown-binary",
        ),
        pytest.param(
            b'{"columns":["a","b","c1","c2"],"types":{},"parents":{},"binary":["c1","c2"],'
            b'"cond":["c1"]}',
            "conditional blocks",
            id="too-few-blocks",
        ),
        pytest.param(
            b'{"columns":["a","b","c1","c2"],"types":{"a":7},"parents":{},'
            b'"binary":["c1","c2"],"cond":["c1","c2"]}',
            "type letters",
            id="bad-type",
        ),
        pytest.param(
            b'{"columns":["a","b","c1","c2"],"types":{},"parents":{"zz":"a"},'
            b'"binary":["c1","c2"],"cond":["c1","c2"]}',
            "parents",
            id="parent-of-unknown-column",
        ),
    ],
)
def test_inconsistent_metadata_is_refused(meta: bytes, message: str) -> None:
    data = _with_metadata(meta, _classes())
    with pytest.raises(SnapshotError, match=message):
        decode_snapshot(data)


def test_a_conditional_flag_without_conditional_blocks_is_refused() -> None:
    data = bytearray(encode_snapshot(_unconditional()))
    data[10:12] = (1).to_bytes(2, "little")
    with pytest.raises(SnapshotError, match="conditional blocks do not match"):
        decode_snapshot(resealed(data))


def test_non_finite_moments_are_refused() -> None:
    acc = _continuous()
    acc.total.m2[0, 2] = np.nan
    with pytest.raises(SnapshotError, match="non-finite"):
        decode_snapshot(encode_snapshot(acc))


def test_a_conditional_block_with_more_rows_than_the_total_is_refused() -> None:
    acc = _classes()
    acc.cond["c1"].n = acc.n + 1
    with pytest.raises(SnapshotError, match="more rows than the total"):
        decode_snapshot(encode_snapshot(acc))


def test_snapshot_info_reads_the_header_without_the_matrices() -> None:
    acc = _classes()
    data = bytearray(encode_snapshot(acc))
    info = snapshot_info(bytes(data))
    assert info["columns"] == ["a", "b", "c1", "c2"]
    assert (info["n"], info["version"], info["d"]) == (50, 1, 4)
    assert info["binary"] == ["c1", "c2"] and info["conditional"] is True
    assert info["size"] == len(data) and info["format"] == FORMAT

    data[-20] ^= 0xFF  # inside the last matrix: info does not read it, decode does
    assert snapshot_info(bytes(data))["n"] == 50
    with pytest.raises(SnapshotError):
        decode_snapshot(bytes(data))


@pytest.mark.parametrize(
    "data",
    [b"", b"FSTSNAP\x00", b"x" * 100],
    ids=["empty", "magic-only", "garbage"],
)
def test_snapshot_info_refuses_what_is_not_a_snapshot(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        snapshot_info(data)
