"""Content-addressed model files under the node's data directory.

A model's bytes live in `blobs/<sha256[:2]>/<sha256>`: the name is the digest, so equal
models share one file and a file's name says what it must hash to. A put streams into a
temporary file under `blobs/tmp/` while hashing (`BlobWriter`), is fsynced, and is moved
into place by `place` (an atomic rename, then the directory fsynced) only when the
caller is about to record it; an abandoned or crashed upload leaves only a temporary
file, and every temporary file is removed when the store opens. So a put acknowledged
after `place` and the metadata's commit survives kill -9, and a partial one leaves
nothing behind.

Reading trusts nothing: `verify` hashes the whole file unless this process already saw
the very same file (inode, size, mtime, ctime) hash right — after writing it, or after a
previous verification — so a file damaged or rewritten on disk is refused, and a model
loaded again and again is not re-hashed each time.

The store knows no metadata: which digests are still referenced is the caller's
(`store.modelmeta`), and `remove` is called by it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, cast

READ_CHUNK = 1 << 20
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range, do not wait


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range(fd, offset, nbytes, flags), where there is one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


_sync_file_range = _libc_sync_file_range()
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class BlobWriter:
    """A file being written and hashed (SHA-256); `finish` before `BlobStore.place`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = open(path, "xb")  # noqa: SIM115 - closed by finish/abort
        self._sha = hashlib.sha256()
        self.size = 0
        self.sha256: str | None = None
        self._written_back = 0

    def write(self, chunk: bytes | memoryview) -> None:
        assert self._file is not None, "write after finish or abort"
        self._sha.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    # The two halves of `write` for a block of chunks, for a caller that runs them in two
    # threads (the hash releases the GIL): each must see every chunk, in order, and both
    # must be done with every chunk before `finish`. The hash may trail the writing.
    def hash_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        for part in parts:
            self._sha.update(part)

    def start_writeback(self) -> None:
        """Asks the kernel to start writing what was written so far to the disk, without
        waiting (Linux `sync_file_range`): so `finish`'s fsync finds little left to do,
        and the page cache of a large upload is not one burst of dirty pages at its end.
        A no-op where the call does not exist."""
        if self._file is None or _sync_file_range is None:
            return
        end = self.size
        if end > self._written_back:
            _sync_file_range(self._file.fileno(), self._written_back,
                             end - self._written_back, _SYNC_FILE_RANGE_WRITE)
            self._written_back = end

    def write_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        """The parts written with as few system calls as the kernel allows (`writev`)."""
        assert self._file is not None, "write after finish or abort"
        self._file.flush()
        fd = self._file.fileno()
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        first = 0
        while first < len(views):
            n = os.writev(fd, views[first:first + _IOV_MAX])
            self.size += n
            while first < len(views) and n >= len(views[first]):
                n -= len(views[first])
                first += 1
            if n:  # a short write: the rest of that part next
                views[first] = views[first][n:]

    def finish(self) -> str:
        """Flush and fsync the bytes; their SHA-256 (hex)."""
        assert self._file is not None, "finish after finish or abort"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self.sha256 = self._sha.hexdigest()
        return self.sha256

    def abort(self) -> None:
        """Close and delete the temporary file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class BlobStore:
    """Files named by their SHA-256 under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():  # uploads a crash interrupted
            with contextlib.suppress(OSError):
                stale.unlink()
        self._verified: dict[str, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()

    def writer(self) -> BlobWriter:
        return BlobWriter(self.tmp / f"{uuid.uuid4().hex}.part")

    def path(self, sha256: str) -> Path:
        if not _DIGEST.match(sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def place(self, writer: BlobWriter) -> Path:
        """Move a finished writer's file to its content address (durably); its path.

        An existing file of the same digest is replaced: the new bytes hashed right, the
        old ones might not any more."""
        if writer.sha256 is None:
            raise ValueError("place() of a writer not finished")
        final = self.path(writer.sha256)
        final.parent.mkdir(exist_ok=True)
        os.replace(writer.path, final)
        _fsync_dir(final.parent)
        self._remember(writer.sha256, final)
        return final

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def verify(self, sha256: str, size: int) -> bool:
        """True when the file holds exactly `size` bytes hashing to `sha256`."""
        path = self.path(sha256)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock:
            if self._verified.get(sha256) == key:
                return True
        if st.st_size != size:
            return False
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                sha.update(chunk)
        if sha.hexdigest() != sha256:
            return False
        with self._lock:
            self._verified[sha256] = key
        return True

    def remove(self, sha256: str) -> None:
        with self._lock:
            self._verified.pop(sha256, None)
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def digests(self) -> Iterator[str]:
        """Every digest with a file here (for collecting the unreferenced ones)."""
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for f in sub.iterdir():
                    if _DIGEST.match(f.name):
                        yield f.name

    def _remember(self, sha256: str, path: Path) -> None:
        st = path.stat()
        with self._lock:
            self._verified[sha256] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
