"""A lossless form for log entries that are mostly zero: the statistics of small batches.

A learn's log entry is the snapshot of an accumulator of that batch alone: d(d+1)/2
co-moments per block whatever the batch's rows. For a batch of a few rows most of them are
exactly zero (the co-moments of one row all are), so 10,000 columns made every 1-row
learn write ~400 MB. Here such bytes are kept as the positions and values of their
non-zero 8-byte words, which for one row of continuous columns is O(d), not O(d²).

    magic "FSTSPRS\\0", original length u64, count u64, then count u32 word positions,
    then count u64 words (little-endian)

`pack` uses the form only when it is smaller than half the original, else returns the
bytes unchanged; `unpack` undoes it and passes anything else (a plain snapshot, whose own
magic differs) through, so entries written before this form still load. The snapshot
inside keeps its CRC, checked when it is decoded: a damaged entry is still caught.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"FSTSPRS\x00"
_HEAD = struct.Struct("<8sQQ")
_U8 = np.dtype("<u8")
_U4 = np.dtype("<u4")
_MAX_WORDS = 1 << 32  # positions are u32: 32 GiB of words, far past any entry


def pack(data: bytes) -> bytes:
    """`data`, or its sparse form when that is less than half its size."""
    n = len(data)
    words = -(-n // 8)
    if words < 64 or words >= _MAX_WORDS:
        return data
    padded = np.zeros(words, dtype=_U8)
    padded.view(np.uint8)[:n] = np.frombuffer(data, dtype=np.uint8)
    where = np.flatnonzero(padded)
    if where.size * 12 + _HEAD.size >= n // 2:
        return data
    return b"".join((_HEAD.pack(MAGIC, n, where.size), where.astype(_U4).tobytes(),
                     padded[where].tobytes()))


def unpack(data: bytes) -> bytes:
    """The original bytes of `pack(x)` (anything not in the sparse form, unchanged)."""
    if not data.startswith(MAGIC):
        return data
    if len(data) < _HEAD.size:
        raise ValueError("truncated sparse log entry")
    _, n, count = _HEAD.unpack_from(data)
    if len(data) != _HEAD.size + 12 * count or count > -(-n // 8):
        raise ValueError("sparse log entry of the wrong length")
    where = np.frombuffer(data, dtype=_U4, count=count, offset=_HEAD.size).astype(np.intp)
    values = np.frombuffer(data, dtype=_U8, count=count, offset=_HEAD.size + 4 * count)
    words = -(-n // 8)
    if count and int(where.max()) >= words:
        raise ValueError("sparse log entry with a position past its end")
    out = np.zeros(words, dtype=_U8)
    out[where] = values
    return out.tobytes()[:n]
