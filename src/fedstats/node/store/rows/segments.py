"""Segment files and inline segments: Arrow IPC written so that a crash leaves no half file.

A segment file is written under a temporary name, fsynced, renamed to its final name and
the directory fsynced: after a crash it is either whole or absent (and, until the catalog
commits it, garbage that the store removes when it opens). Files are read through plain
file reads, never memory maps, so that a scan's resident memory is the chunk it holds and
not the pages of every file it has touched. Small appends become inline segments: the
same IPC bytes (stream format) kept in the catalog row itself, durable with its commit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

SUFFIX = ".arrow"
TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(
    directory: Path, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> int:
    """Write `batches` to `directory/name` durably; answers the rows written."""
    tmp = directory / f"{TMP_PREFIX}{name}"
    rows = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for b in batches:
                if b.num_rows:
                    writer.write_batch(b)
                    rows += b.num_rows
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return rows


def chunks(table: pa.Table, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The table as record batches of at most `chunk_rows` rows (a file's unit of reading)."""
    yield from table.combine_chunks().to_batches(max_chunksize=chunk_rows)


def inline_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def read_inline(body: bytes, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    if columns is not None:
        table = table.select(list(columns))
    yield from table.combine_chunks().to_batches()


def read_file(path: Path, columns: Sequence[str] | None, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The record batches of a segment file, one at a time, only the `columns` asked for."""
    options = None
    if columns is not None:
        options = pa.ipc.IpcReadOptions(included_fields=[names.index(c) for c in columns])
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source, options=options)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def pack_mask(mask: np.ndarray) -> bytes:
    return np.packbits(mask, bitorder="little").tobytes()


def unpack_mask(blob: bytes | None, rows: int) -> np.ndarray:
    if blob is None:
        return np.zeros(rows, dtype=bool)
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=rows, bitorder="little")
    return bits.astype(bool)
