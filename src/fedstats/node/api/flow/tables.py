"""FATE tables on the node's row store: upload from a CSV file on disk, info, delete.

A FATE table `(namespace, table_name)` is one `RowStore` named `flow/<ns>/<name>`, its
files under `<data_dir>/flow/tables/<digest>`; its FATE metadata (header, sid, partition,
origin, the upload job) is a row of `flow_tables` in the node's SQLite, and each upload is
a row of `flow_uploads` (for `data/upload/history`). A CSV is read from disk in blocks by
pyarrow and appended block by block, so memory stays bounded by the block size.
Every column is numeric (FATE's dense tables); a column that is not fails the upload
naming it. A restarted node finds its tables again from the catalog.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ...engine.frame import Batch
from ...store import Database
from ...store.rows import RowStore
from .envelope import ARGUMENT_ERROR, DATA_ERROR, EXCEPTION_ERROR, FlowError

EXISTS = ("The data table already exists.If you still want to continue uploading, "
          "please add the parameter --drop")
BLOCK_BYTES = 4 << 20

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS flow_tables (namespace TEXT NOT NULL, name TEXT NOT NULL, "
    "meta TEXT NOT NULL, PRIMARY KEY (namespace, name))",
    "CREATE TABLE IF NOT EXISTS flow_uploads (job_id TEXT PRIMARY KEY, namespace TEXT NOT "
    "NULL, name TEXT NOT NULL, info TEXT NOT NULL, created REAL NOT NULL)",
)


@dataclass(frozen=True)
class Source:
    """Where an upload's CSV bytes are: a file and the byte range of the CSV in it."""

    path: Path
    start: int = 0
    end: int | None = None


class Tables:
    """The node's FATE tables: one per (namespace, name), each a RowStore."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.root = Path(data_dir) / "flow" / "tables"
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        with db.transaction() as c:
            for statement in _SCHEMA:
                c.execute(statement)

    @contextmanager
    def _store(self, namespace: str, name: str) -> Iterator[RowStore]:
        """The table's RowStore, open only while used (one user of a table at a time), so
        no file lock outlives a request and a stopped node leaves none behind."""
        key = f"flow/{namespace}/{name}"
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            digest = hashlib.sha256(key.encode()).hexdigest()[:24]
            store = RowStore(self.db, self.root / digest, key)
            try:
                yield store
            finally:
                store.close()

    def meta(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute("SELECT meta FROM flow_tables WHERE namespace=? AND name=?",
                            (namespace, name)).fetchone()
        return json.loads(row[0]) if row else None

    def exists(self, namespace: str, name: str) -> bool:
        return self.meta(namespace, name) is not None

    def read(self, namespace: str, name: str) -> tuple[list[str], np.ndarray] | None:
        """The whole table as (columns, float64 matrix), sid first; None if unknown.
        A job's party holds its table in memory for the job's life (FATE's standalone
        computing does the same); the row store is read in 64 k-row batches."""
        meta = self.meta(namespace, name)
        if meta is None:
            return None
        columns: list[str] = meta["columns"]
        parts = []
        with self._store(namespace, name) as store:
            for batch in store.scan(65536, columns):
                parts.append(np.column_stack([c.to_numpy(zero_copy_only=False).astype(np.float64)
                                              for c in batch.columns]))
        values = np.vstack(parts) if parts else np.zeros((0, len(columns)))
        return columns, values

    def info(self, namespace: str, name: str) -> dict[str, Any]:
        """`table/table_info`'s data: `exist` 0 for an unknown table (FATE's retcode 0)."""
        meta = self.meta(namespace, name)
        if meta is None:
            return {"table_name": name, "namespace": namespace, "exist": 0}
        with self._store(namespace, name) as store:
            count = store.count()
        return {"table_name": name, "namespace": namespace, "exist": 1, "count": count,
                "partition": meta["partition"], "schema": meta["schema"], "enable": True,
                "origin": meta["origin"], "extend_sid": False,
                "address": {"name": name, "namespace": namespace, "storage_type": "ROWSTORE"}}

    def delete(self, namespace: str, name: str) -> dict[str, str]:
        if self.meta(namespace, name) is None:
            raise FlowError(ARGUMENT_ERROR, "no find table")
        self._drop(namespace, name)
        return {"table_name": name, "namespace": namespace}

    def _drop(self, namespace: str, name: str) -> None:
        with self._store(namespace, name) as store:
            store.drop()
        with self.db.transaction() as c:
            c.execute("DELETE FROM flow_tables WHERE namespace=? AND name=?", (namespace, name))

    def upload(self, job_id: str, conf: dict[str, Any], source: Source,
               origin: str = "upload") -> int:
        """Store the CSV as table (namespace, table_name); answers the rows stored."""
        head = _int(conf, "head", 1)
        delimiter = str(conf.get("id_delimiter") or ",")
        if len(delimiter) != 1:
            raise FlowError(ARGUMENT_ERROR, f"id_delimiter must be one character, got {delimiter!r}")
        return self.store_blocks(job_id, conf, lambda: _blocks(source, head, delimiter), origin)

    def store_blocks(self, job_id: str, conf: dict[str, Any],
                     blocks: Callable[[], Iterable[tuple[list[str], np.ndarray]]],
                     origin: str) -> int:
        """Store (header, float64 block) pairs as table (namespace, table_name), sid first."""
        namespace, name = str(conf["namespace"]), str(conf["table_name"])
        partition = _int(conf, "partition", 1)
        drop = _int(conf, "drop", 0) > 0
        delimiter = str(conf.get("id_delimiter") or ",")
        if self.meta(namespace, name) is not None:
            if not drop:
                raise FlowError(EXCEPTION_ERROR, EXISTS)
            self._drop(namespace, name)
        header: list[str] | None = None
        rows = 0
        try:
            with self._store(namespace, name) as store:
                for header, block in blocks():
                    rows += store.append(Batch.from_array(block, header))
        except FlowError:
            self._abandon(namespace, name)
            raise
        except (pa.ArrowException, ValueError) as e:
            self._abandon(namespace, name)
            raise FlowError(DATA_ERROR, f"upload of {namespace}.{name} failed: {e}") from None
        if header is None:
            self._abandon(namespace, name)
            raise FlowError(DATA_ERROR, "the uploaded file holds no header and no rows")
        schema = {"header": delimiter.join(header[1:]), "sid": header[0]}
        meta = {"partition": partition, "schema": schema, "origin": origin,
                "columns": header, "job_id": job_id}
        info = {"upload_info": {"table_name": name, "namespace": namespace,
                                "partition": partition, "upload_count": rows},
                "notes": "", "schema": schema}
        with self.db.transaction() as c:
            c.execute("INSERT INTO flow_tables VALUES (?, ?, ?)",
                      (namespace, name, json.dumps(meta)))
            c.execute("INSERT INTO flow_uploads VALUES (?, ?, ?, ?, ?)",
                      (job_id, namespace, name, json.dumps(info), time.time()))
        return rows

    def download(self, namespace: str, name: str, path: Path) -> int:
        """Write the table as CSV (header first) to a server path; answers the rows."""
        meta = self.meta(namespace, name)
        if meta is None:
            raise FlowError(ARGUMENT_ERROR, f"no find table {namespace}.{name}")
        rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._store(namespace, name) as store:
            schema = pa.schema([(c, pa.float64()) for c in meta["columns"]])
            with pacsv.CSVWriter(str(path), schema) as writer:
                for batch in store.scan(65536):
                    writer.write_batch(pa.RecordBatch.from_arrays(
                        [c.cast(pa.float64()) for c in batch.columns], schema=schema))
                    rows += batch.num_rows
        return rows

    def _abandon(self, namespace: str, name: str) -> None:
        with self._store(namespace, name) as store:
            store.drop()

    def history(self, limit: int = 10, job_id: str | None = None) -> list[dict[str, Any]]:
        """Uploads newest first, only those whose table still exists (as FATE lists them)."""
        sql = ("SELECT u.job_id, u.info FROM flow_uploads u JOIN flow_tables t "
               "ON t.namespace=u.namespace AND t.name=u.name "
               "AND json_extract(t.meta, '$.job_id')=u.job_id")
        args: list[Any] = []
        if job_id:
            sql += " WHERE u.job_id=?"
            args.append(job_id)
        sql += " ORDER BY u.created DESC LIMIT ?"
        args.append(max(int(limit), 0))
        with self.db.read() as c:
            return [{jid: json.loads(info)} for jid, info in c.execute(sql, args)]


def _int(conf: dict[str, Any], key: str, default: int) -> int:
    value = conf.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FlowError(ARGUMENT_ERROR, f"{key} must be an integer, got {value!r}") from None


def _blocks(source: Source, head: int, delimiter: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """(header, float64 block) pairs read from the source in BLOCK_BYTES steps."""
    mm = pa.memory_map(str(source.path))
    try:
        buf = mm.read_buffer()
        end = buf.size if source.end is None else source.end
        reader = pacsv.open_csv(
            pa.BufferReader(buf.slice(source.start, end - source.start)),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, autogenerate_column_names=not head),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
        )
        for batch in reader:
            header = [str(n).strip() for n in batch.schema.names]
            if not head:
                header = ["id"] + [f"x{j}" for j in range(len(header) - 1)]
            cols = []
            for n, col in zip(header, batch.columns, strict=True):
                if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
                        or pa.types.is_null(col.type)):
                    raise FlowError(DATA_ERROR, f"column {n!r} is not numeric ({col.type}): "
                                    "FATE dense tables hold numbers only")
                cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
            if cols and len(cols[0]):
                yield header, np.column_stack(cols)
        del reader
    finally:
        mm.close()
