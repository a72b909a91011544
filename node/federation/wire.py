"""Federation messages on NATS: sealed with the federation key, split into chunks when large.

A message is a header and a body. The body (a snapshot's codec bytes, or a control
message's JSON) is sealed with AES-256-GCM under the federation secret key, the header
being the associated data: the broker, or anyone who captures the stream, sees who sent
what version of which size, but neither reads nor alters the statistics, and a header
cannot be moved onto another body. The sealed bytes are then cut into chunks that fit
the server's `max_payload`; every chunk repeats the header plus its index, so chunks can
arrive interleaved with other peers' and be put back together by (peer, kind, version).

Frame layout: magic `FSW1`, u32 header length (little-endian), header JSON, chunk bytes.
Pure functions; the agent does the I/O.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ..engine.accumulator import Accumulator
from ..engine.codec import decode_snapshot, encode_snapshot
from ..security import aead
from ..security.errors import CryptoError
from .errors import WireError

MAGIC = b"FSW1"
_LEN = struct.Struct("<I")
MAX_HEADER = 4096
DEFAULT_CHUNK = 4 * 1024 * 1024  # half the 8 MB max_payload: room for headers, no surprises
KINDS = ("snapshot", "control")


@dataclass(frozen=True)
class Frame:
    """One chunk as read off the wire: the common header, its index, its bytes."""

    header: dict[str, Any]  # fed, peer, kind, version, size, sealed, chunks
    index: int
    data: bytes

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.header["peer"], self.header["kind"], self.header["version"])


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal_message(
    key_b64: str,
    fed: str,
    peer: str,
    kind: str,
    version: int,
    body: bytes,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[bytes]:
    """The frames that carry `body` (one unless it is larger than `chunk_size`)."""
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    if chunk_size <= 0:
        raise WireError("chunk size must be positive")
    sealed_len = len(body) + aead.NONCE_BYTES + aead.TAG_BYTES
    chunks = max(1, -(-sealed_len // chunk_size))
    header = {
        "fed": fed,
        "peer": peer,
        "kind": kind,
        "version": int(version),
        "size": len(body),
        "sealed": sealed_len,
        "chunks": chunks,
    }
    sealed = aead.seal(key_b64, body, aad=_aad(header))
    frames = []
    for i in range(chunks):
        head = json.dumps({**header, "chunk": i}, separators=(",", ":")).encode()
        part = sealed[i * chunk_size : (i + 1) * chunk_size]
        frames.append(MAGIC + _LEN.pack(len(head)) + head + part)
    return frames


def read_frame(data: bytes) -> Frame:
    """Parse one frame's header (nothing is decrypted yet); WireError if it is not ours."""
    if len(data) < len(MAGIC) + _LEN.size or not data.startswith(MAGIC):
        raise WireError("not a fedstats federation message")
    (hlen,) = _LEN.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    if hlen > MAX_HEADER or start + hlen > len(data):
        raise WireError("federation message header is truncated or too large")
    try:
        head = json.loads(data[start : start + hlen])
        index = int(head.pop("chunk"))
        header: dict[str, Any] = {
            "fed": str(head["fed"]),
            "peer": str(head["peer"]),
            "kind": str(head["kind"]),
            "version": int(head["version"]),
            "size": int(head["size"]),
            "sealed": int(head["sealed"]),
            "chunks": int(head["chunks"]),
        }
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise WireError(f"unreadable federation message header: {e}") from e
    if header["kind"] not in KINDS or not 0 <= index < header["chunks"] or header["chunks"] < 1:
        raise WireError("federation message header is inconsistent")
    if header["sealed"] != header["size"] + aead.NONCE_BYTES + aead.TAG_BYTES:
        raise WireError("federation message sizes are inconsistent")
    return Frame(header, index, bytes(data[start + hlen :]))


def open_message(key_b64: str, frames: list[Frame]) -> bytes:
    """The body carried by all the chunks of one message; WireError if anything is off."""
    if not frames:
        raise WireError("no chunks")
    header = frames[0].header
    ordered = sorted(frames, key=lambda f: f.index)
    if [f.index for f in ordered] != list(range(header["chunks"])):
        raise WireError("chunks missing or repeated")
    if any(f.header != header for f in ordered):
        raise WireError("chunks of different messages mixed")
    sealed = b"".join(f.data for f in ordered)
    if len(sealed) != header["sealed"]:
        raise WireError(f"message of {len(sealed)} bytes, header says {header['sealed']}")
    try:
        return aead.open_(key_b64, sealed, aad=_aad(header))
    except CryptoError as e:
        raise WireError(f"message from {header['peer']!r} does not decrypt: {e}") from e


@dataclass
class Reassembler:
    """Collects chunks until a message is whole; forgets partial messages after `ttl_s`.

    Memory is bounded by `max_bytes`: a peer that sends chunks it never finishes cannot
    make the node hold them forever.
    """

    ttl_s: float = 300.0
    max_bytes: int = 1 << 30
    _parts: dict[tuple[str, str, int], dict[int, Frame]] = field(default_factory=dict)
    _seen: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def add(self, frame: Frame, now: float | None = None) -> list[Frame] | None:
        """The frames of a whole message once its last chunk arrives, else None."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        if frame.header["chunks"] == 1:
            return [frame]
        key = frame.key
        parts = self._parts.setdefault(key, {})
        self._seen.setdefault(key, now)
        parts[frame.index] = frame
        if len(parts) < frame.header["chunks"]:
            self._bound()
            return None
        del self._parts[key]
        self._seen.pop(key, None)
        return list(parts.values())

    @property
    def pending_bytes(self) -> int:
        return sum(len(f.data) for parts in self._parts.values() for f in parts.values())

    def _expire(self, now: float) -> None:
        for key, t in list(self._seen.items()):
            if now - t > self.ttl_s:
                self._parts.pop(key, None)
                del self._seen[key]

    def _bound(self) -> None:
        while self._parts and self.pending_bytes > self.max_bytes:
            oldest = min(self._seen, key=self._seen.__getitem__)
            self._parts.pop(oldest, None)
            del self._seen[oldest]


def seal_snapshot(
    key_b64: str,
    fed: str,
    peer: str,
    version: int,
    acc: Accumulator,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[bytes]:
    """The frames of a snapshot message carrying `acc`'s codec bytes."""
    return seal_message(key_b64, fed, peer, "snapshot", version, encode_snapshot(acc), chunk_size)


def open_snapshot(key_b64: str, frames: list[Frame]) -> Accumulator:
    """The `Accumulator` a whole snapshot message carries (SnapshotError if corrupted)."""
    return decode_snapshot(open_message(key_b64, frames))
