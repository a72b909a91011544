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
from .subjects import DEFAULT_PEER_PENDING

MAGIC = b"FSW1"
_LEN = struct.Struct("<I")
MAX_HEADER = 4096
DEFAULT_CHUNK = 4 * 1024 * 1024  # half the 8 MB max_payload: room for headers, no surprises
# What one frame's header may announce: bounds a receiver can check before it holds anything
MAX_SEALED = 4 << 30  # far above any snapshot a stream could hold (a d=1000 one is 4 MB)
MAX_CHUNKS = 1 << 16
FRAME_OVERHEAD = 512  # bytes a held chunk costs beyond its data (header, bookkeeping)
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
    if not 0 < header["sealed"] <= MAX_SEALED or header["chunks"] > MAX_CHUNKS:
        raise WireError(
            f"federation message of {header['sealed']} bytes in {header['chunks']} chunks is "
            f"out of bounds (at most {MAX_SEALED} bytes, {MAX_CHUNKS} chunks)"
        )
    if header["chunks"] > header["sealed"] or len(data) - start - hlen > header["sealed"]:
        raise WireError("federation message chunks do not fit its size")
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


def _cost(frame: Frame) -> int:
    return len(frame.data) + FRAME_OVERHEAD


@dataclass
class Reassembler:
    """Collects chunks until a message is whole; forgets partial messages after `ttl_s`.

    Memory is bounded per peer by `peer_max_bytes`, with a running count of what each
    peer's partial messages hold: a peer that sends chunks it never finishes, on as many
    subjects as it likes, only ever evicts its own oldest partial message, never another
    peer's. A message larger than the budget could never be completed and is refused at
    its first chunk.
    """

    ttl_s: float = 300.0
    peer_max_bytes: int = DEFAULT_PEER_PENDING
    _parts: dict[tuple[str, str, int], dict[int, Frame]] = field(default_factory=dict)
    _seen: dict[tuple[str, str, int], float] = field(default_factory=dict)
    _bytes: dict[str, int] = field(default_factory=dict)  # peer -> bytes held for it

    def add(self, frame: Frame, now: float | None = None) -> list[Frame] | None:
        """The frames of a whole message once its last chunk arrives, else None.

        WireError if the message cannot fit the sending peer's budget.
        """
        now = time.monotonic() if now is None else now
        self._expire(now)
        if frame.header["chunks"] == 1:
            return [frame]
        peer = frame.header["peer"]
        need = frame.header["sealed"] + frame.header["chunks"] * FRAME_OVERHEAD
        if need > self.peer_max_bytes:
            raise WireError(
                f"message of {frame.header['sealed']} bytes in {frame.header['chunks']} chunks "
                f"from {peer!r} exceeds the {self.peer_max_bytes} bytes a peer may have pending"
            )
        key = frame.key
        parts = self._parts.setdefault(key, {})
        self._seen.setdefault(key, now)
        old = parts.get(frame.index)
        parts[frame.index] = frame
        self._bytes[peer] = self._bytes.get(peer, 0) + _cost(frame) - (_cost(old) if old else 0)
        if len(parts) < frame.header["chunks"]:
            self._bound(peer, key)
            return None
        self._drop(key)
        return list(parts.values())

    @property
    def pending_bytes(self) -> int:
        """Bytes of chunk data held for partial messages, all peers together."""
        return sum(len(f.data) for parts in self._parts.values() for f in parts.values())

    def peer_bytes(self, peer: str) -> int:
        """What `peer`'s partial messages cost (data and per-chunk overhead)."""
        return self._bytes.get(peer, 0)

    def _drop(self, key: tuple[str, str, int]) -> None:
        parts = self._parts.pop(key, {})
        self._seen.pop(key, None)
        peer = key[0]
        left = self._bytes.get(peer, 0) - sum(_cost(f) for f in parts.values())
        if left > 0:
            self._bytes[peer] = left
        else:
            self._bytes.pop(peer, None)

    def _expire(self, now: float) -> None:
        for key, t in list(self._seen.items()):
            if now - t > self.ttl_s:
                self._drop(key)

    def _bound(self, peer: str, keep: tuple[str, str, int]) -> None:
        """Evict `peer`'s oldest partial messages to its budget: `keep` (the one growing)
        last, and only if its chunks hold more than its header announced."""
        while self._bytes.get(peer, 0) > self.peer_max_bytes:
            mine = [k for k in self._seen if k[0] == peer and k != keep]
            self._drop(min(mine, key=self._seen.__getitem__) if mine else keep)


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
