"""One round's sufficient statistics: row weight, loss, gradient, Hessian — and their bytes.

Every field is a sum over rows, so the contributions of many batches and many sites
just add (`add`, `merge`), in any order. The Hessian is symmetric and travels as its
upper triangle. Layout, little-endian:

    header    magic "FSTGLMR\\0", format u16, reserved u16, p u32, round u64
    floats    n, loss, grad (p), upper triangle of hess row by row (p(p+1)/2), float64
    checksum  CRC-32 (zlib) of every byte before it, u32

`round` is a tag the federation may use to bind a contribution to the round it answers
(a late or duplicated message then changes nothing); the engine ignores it. As with
snapshots, CRC-32 catches damage; on the wire the bytes are sealed with the federation
key, whose tag is what resists tampering. Sizes are checked before any allocation.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..errors import SnapshotError
from ..xp import to_numpy

Floats = npt.NDArray[np.float64]

MAGIC = b"FSTGLMR\x00"
FORMAT = 1
MAX_PARAMS = 1 << 14  # a (p × p) Hessian past this is 2 GiB; no GLM here comes near

_HEADER = struct.Struct("<8sHHIQ")
_CRC = struct.Struct("<I")
_F8 = np.dtype("<f8")


@dataclass
class RoundStats:
    """Σ weights, Σ loss, Σ gradient, Σ Hessian of the unpenalized per-row losses."""

    n: float
    loss: float
    grad: Floats
    hess: Floats
    round: int = field(default=0, compare=False)

    @classmethod
    def zeros(cls, p: int) -> RoundStats:
        return cls(0.0, 0.0, np.zeros(p), np.zeros((p, p)))

    @property
    def p(self) -> int:
        return int(self.grad.shape[0])

    def add(self, other: RoundStats) -> RoundStats:
        """Add `other` into this one (in place); returns self."""
        if other.p != self.p:
            raise ValueError(f"cannot add round statistics of {other.p} parameters to {self.p}")
        self.n += other.n
        self.loss += other.loss
        self.grad = self.grad + to_numpy(other.grad)
        self.hess = self.hess + to_numpy(other.hess)
        return self

    @staticmethod
    def merge(*parts: RoundStats) -> RoundStats:
        """The sum of several contributions (a new object)."""
        if not parts:
            raise ValueError("merge needs at least one contribution")
        out = RoundStats.zeros(parts[0].p)
        for part in parts:
            out.add(part)
        return out


def encode_round_stats(stats: RoundStats) -> bytes:
    """The statistics as self-describing, checksummed bytes (never pickled)."""
    p = stats.p
    hess = np.ascontiguousarray(to_numpy(stats.hess), dtype=np.float64)
    upper = hess[np.triu_indices(p)]
    floats = np.concatenate(
        [np.array([stats.n, stats.loss]), to_numpy(stats.grad).astype(np.float64), upper]
    ).astype(_F8)
    body = _HEADER.pack(MAGIC, FORMAT, 0, p, stats.round) + floats.tobytes()
    return body + _CRC.pack(zlib.crc32(body))


def decode_round_stats(data: bytes | bytearray | memoryview) -> RoundStats:
    """The statistics `encode_round_stats` wrote; `SnapshotError` if damaged or foreign."""
    view = memoryview(data)
    if len(view) < _HEADER.size + _CRC.size:
        raise SnapshotError("round statistics are truncated: shorter than their header")
    magic, fmt, _, p, tag = _HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise SnapshotError("these bytes are not GLM round statistics (bad magic)")
    if fmt != FORMAT:
        raise SnapshotError(f"round statistics have format {fmt}, this node reads {FORMAT}")
    if not 0 < p <= MAX_PARAMS:
        raise SnapshotError(f"round statistics claim {p} parameters (at most {MAX_PARAMS})")
    count = 2 + p + p * (p + 1) // 2
    if len(view) != _HEADER.size + 8 * count + _CRC.size:
        raise SnapshotError("round statistics have the wrong length for their parameter count")
    stored = _CRC.unpack_from(view, len(view) - _CRC.size)[0]
    if zlib.crc32(view[: len(view) - _CRC.size]) != stored:
        raise SnapshotError("round statistics checksum mismatch: the bytes were damaged")
    floats = np.frombuffer(view, dtype=_F8, count=count, offset=_HEADER.size).astype(np.float64)
    if not np.all(np.isfinite(floats[:1])) or floats[0] < 0:
        raise SnapshotError("round statistics have a negative or non-finite row weight")
    hess = np.zeros((p, p))
    iu = np.triu_indices(p)
    hess[iu] = floats[2 + p :]
    hess.T[iu] = floats[2 + p :]
    return RoundStats(float(floats[0]), float(floats[1]), floats[2 : 2 + p].copy(), hess, tag)

