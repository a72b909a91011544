"""Accumulator snapshots: the bytes a peer stores and publishes, never pickled.

A snapshot is the whole accumulator (peers publish state, not deltas), so it must be
cheap at d=1000 (~4 MB) and safe to decode from an untrusted peer. Layout, little-endian:

    fixed header  magic "FSTSNAP\\0", format u16, flags u16 (bit 0: conditional),
                  accumulator version u64, d u32, blocks u32, metadata length u32
    metadata      UTF-8 JSON: columns, types, parents, binary, cond (block order), then
                  zero padding to a multiple of 8 bytes so the arrays below are aligned
    counts        one u64 row count per block
    arrays        per block, float64: mean, dmean (the mean's rounding error), m3, m4,
                  lo, hi (d each), then the UPPER
                  triangle of m2 row by row (d(d+1)/2; the matrix is symmetric)
    checksum      CRC-32 (zlib) of every byte before it, u32

Block 0 is the total moments, then one block per conditional column. CRC-32 rather
than SHA-256: the checksum is there to catch accidental damage (a torn write, a
truncated chunk, a bit flip in storage), which CRC-32 detects with certainty for bursts
up to 32 bits and otherwise misses with odds 2⁻³²; on the wire snapshots are also sealed
with AES-GCM, whose tag is what resists tampering, and no unkeyed hash can. CRC-32 runs
at ~7 GB/s here, SHA-256 at ~2 GB/s, on what is the largest message a peer sends.

Every size is checked against the length of the bytes before anything is allocated, so a
hostile header cannot make a node allocate gigabytes.
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache
from typing import Any, TypeGuard

import numpy as np

from .accumulator import Accumulator
from .errors import SnapshotError
from .moments import Moments
from .xp import array_module, to_numpy

MAGIC = b"FSTSNAP\x00"
FORMAT = 1
MAX_COLUMNS = 1 << 16  # m2 alone would be 16 GiB past this; no project comes near
MAX_METADATA = 64 << 20

_HEADER = struct.Struct("<8sHHQIII")
_CRC = struct.Struct("<I")
_F8 = np.dtype("<f8")
_U8 = np.dtype("<u8")
_CONDITIONAL = 1


def encode_snapshot(acc: Accumulator) -> bytes:
    """The accumulator as a self-describing, checksummed snapshot."""
    d = acc.d
    cond = list(acc.cond)
    blocks = [acc.total, *(acc.cond[c] for c in cond)]
    meta = json.dumps(
        {
            "columns": acc.columns,
            "types": acc.types,
            "parents": acc.parents,
            "binary": acc.binary,
            "cond": cond,
            "touched": acc.touched,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    meta += b"\x00" * (-len(meta) % 8)
    flags = _CONDITIONAL if acc.conditional else 0
    header = _HEADER.pack(MAGIC, FORMAT, flags, acc.version, d, len(blocks), len(meta))
    counts = np.array([m.n for m in blocks], dtype=_U8)
    per = _block_floats(d)
    arrays = np.empty(per * len(blocks), dtype=_F8)
    upper = _upper_flat(d)
    for k, m in enumerate(blocks):
        out = arrays[k * per : (k + 1) * per]
        for j, a in enumerate((m.mean, m.dmean, m.m3, m.m4, m.lo, m.hi)):
            out[j * d : (j + 1) * d] = to_numpy(a)
        # take() on the flattened matrix is ~6x faster than m2[np.triu_indices(d)]
        np.take(np.ascontiguousarray(to_numpy(m.m2)).ravel(), upper, out=out[6 * d :])
    body = b"".join((header, meta, counts.tobytes(), arrays.tobytes()))
    return body + _CRC.pack(zlib.crc32(body))


def decode_snapshot(data: bytes, engine: str = "cpu") -> Accumulator:
    """The accumulator a snapshot holds, on `engine`'s arrays; `SnapshotError` if damaged."""
    view = memoryview(data)
    fields = _header(view)
    _, _, flags, version, d, nblocks, meta_len = fields
    stored = _CRC.unpack_from(view, len(view) - _CRC.size)[0]
    if zlib.crc32(view[: len(view) - _CRC.size]) != stored:
        raise SnapshotError(
            "snapshot checksum mismatch: the bytes were damaged in storage or transit"
        )
    meta = _metadata(view, meta_len, d, nblocks)
    conditional = bool(flags & _CONDITIONAL)
    if set(meta["cond"]) != (set(meta["binary"]) if conditional else set()):
        # the accumulator keeps moments for every binary column exactly when conditional
        raise SnapshotError("snapshot's conditional blocks do not match its binary columns")
    pos = _HEADER.size + meta_len
    counts = np.frombuffer(view, dtype=_U8, count=nblocks, offset=pos)
    pos += 8 * nblocks
    per = _block_floats(d)
    arrays = np.frombuffer(view, dtype=_F8, count=per * nblocks, offset=pos)
    xp = array_module(engine)
    moments = [
        _moments(arrays[k * per : (k + 1) * per], int(counts[k]), d, xp) for k in range(nblocks)
    ]
    if any(m.n > moments[0].n for m in moments[1:]):
        raise SnapshotError("snapshot has a conditional block with more rows than the total")

    acc = Accumulator(engine=engine, conditional=conditional)
    acc.columns = meta["columns"]
    acc.index = {c: i for i, c in enumerate(acc.columns)}
    acc.types = meta["types"]
    acc.parents = meta["parents"]
    acc.binary = meta["binary"]
    acc.total = moments[0]
    acc.cond = dict(zip(meta["cond"], moments[1:], strict=True))
    acc.version = version
    touched = meta.get("touched", acc.total.n)
    if not isinstance(touched, int) or isinstance(touched, bool) or touched < 0:
        raise SnapshotError("snapshot metadata's touched count must be a non-negative integer")
    acc.touched = touched
    return acc


def snapshot_info(data: bytes) -> dict[str, Any]:
    """What a snapshot holds (columns, rows, version, sizes), read from its header alone.

    The matrices are not decoded and the checksum is not verified (that is the cost this
    avoids); the structure and the length are checked, as in `decode_snapshot`.
    """
    view = memoryview(data)
    _, fmt, flags, version, d, nblocks, meta_len = _header(view)
    meta = _metadata(view, meta_len, d, nblocks)
    n = int(np.frombuffer(view, dtype=_U8, count=1, offset=_HEADER.size + meta_len)[0])
    return {
        "format": fmt,
        "version": version,
        "n": n,
        "d": d,
        "columns": meta["columns"],
        "types": meta["types"],
        "binary": meta["binary"],
        "conditional": bool(flags & _CONDITIONAL),
        "size": len(view),
    }


# ---------------------------------------------------------------------- decoding pieces
def _header(view: memoryview) -> tuple[Any, ...]:
    """The fixed header, checked, with the total length checked against it."""
    if len(view) < _HEADER.size + _CRC.size:
        raise SnapshotError(f"snapshot truncated: {len(view)} bytes is shorter than any snapshot")
    fields = _HEADER.unpack_from(view, 0)
    magic, fmt, flags, _, d, nblocks, meta_len = fields
    if magic != MAGIC:
        raise SnapshotError("not a fedstats snapshot (wrong magic bytes)")
    if fmt > FORMAT:
        raise SnapshotError(
            f"snapshot format {fmt} is newer than this node reads ({FORMAT}): upgrade the node"
        )
    if fmt != FORMAT:
        raise SnapshotError(f"snapshot format {fmt} is not supported (this node reads {FORMAT})")
    if flags & ~_CONDITIONAL:
        raise SnapshotError(f"snapshot has unknown flags {flags:#x}")
    if d > MAX_COLUMNS:
        raise SnapshotError(f"snapshot claims {d} columns, more than the {MAX_COLUMNS} allowed")
    if nblocks < 1 or nblocks > d + 1:
        raise SnapshotError(f"snapshot claims {nblocks} moment blocks for {d} columns")
    if meta_len > MAX_METADATA or meta_len % 8:
        raise SnapshotError(f"snapshot has a malformed metadata length ({meta_len})")
    expected = _HEADER.size + meta_len + 8 * nblocks + 8 * _block_floats(d) * nblocks + _CRC.size
    if len(view) != expected:
        kind = "truncated" if len(view) < expected else "has trailing bytes"
        raise SnapshotError(f"snapshot {kind}: {len(view)} bytes, its header says {expected}")
    return fields


def _metadata(view: memoryview, meta_len: int, d: int, nblocks: int) -> dict[str, Any]:
    raw = bytes(view[_HEADER.size : _HEADER.size + meta_len]).rstrip(b"\x00")
    try:
        meta = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise SnapshotError(f"snapshot metadata is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise SnapshotError("snapshot metadata is not an object")
    columns, types = meta.get("columns"), meta.get("types")
    parents, binary, cond = meta.get("parents"), meta.get("binary"), meta.get("cond")
    if not _strings(columns) or len(columns) != d or len(set(columns)) != d:
        raise SnapshotError(f"snapshot metadata must list {d} distinct column names")
    known = set(columns)
    if not _strings(binary) or not set(binary) <= known:
        raise SnapshotError("snapshot metadata lists binary columns that are not columns")
    if not _strings(cond) or len(cond) != nblocks - 1 or not set(cond) <= set(binary):
        raise SnapshotError(
            "snapshot metadata's conditional blocks do not match its binary columns"
        )
    if not isinstance(types, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 1 for k, v in types.items()
    ):
        raise SnapshotError("snapshot metadata's types must map attributes to type letters")
    if not isinstance(parents, dict) or not all(
        k in known and isinstance(v, str) for k, v in parents.items()
    ):
        raise SnapshotError("snapshot metadata's parents must map columns to attributes")
    return meta


def _strings(v: Any) -> TypeGuard[list[str]]:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _moments(block: np.ndarray, n: int, d: int, xp: Any) -> Moments:
    vec = [block[j * d : (j + 1) * d] for j in range(6)]
    upper = block[6 * d :]
    if not (np.isfinite(upper).all() and all(np.isfinite(v).all() for v in vec[:4])):
        raise SnapshotError("snapshot holds non-finite moments (NaN or infinity)")
    m2 = np.empty((d, d))
    flat = m2.ravel()  # a view: m2 is fresh and C-ordered
    flat[_upper_flat(d)] = upper
    flat[_lower_flat(d)] = upper
    mean, dmean, m3, m4, lo, hi = (v.copy() for v in vec)  # own the memory, not the bytes
    if xp is not np:  # pragma: no cover - GPU only
        mean, dmean, m2, m3, m4, lo, hi = (
            xp.asarray(a) for a in (mean, dmean, m2, m3, m4, lo, hi)
        )
    return Moments(n, mean, m2, m3, m4, lo, hi, dmean)


def _block_floats(d: int) -> int:
    return 6 * d + d * (d + 1) // 2


# The index arrays are 4 MB each at d=1000 and cost more than the copy they drive: keep a
# few, since a node sees the same handful of project widths over and over.
@lru_cache(maxsize=8)
def _upper_flat(d: int) -> np.ndarray:
    i, j = np.triu_indices(d)
    return i * d + j


@lru_cache(maxsize=8)
def _lower_flat(d: int) -> np.ndarray:
    i, j = np.triu_indices(d)
    return j * d + i
