"""A MySQL/MariaDB table read as dense float64 blocks (FATE's `table/bind` engine MYSQL).

The rows are streamed with a server-side cursor (`SSCursor`), `BLOCK_ROWS` at a time, so
memory stays bounded by the block whatever the table's size. The identifiers come from
a client: they are checked (letters, digits, `_`, `$`) and quoted, never interpolated
raw. The sid column is `id_name` (or `id_column`), else the first one; every value must
be a number (FATE's dense tables): a NULL or a text value fails naming its column.
PyMySQL is imported when a bind asks for it, so a node without it says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

BLOCK_ROWS = 65536
_IDENT = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


class SqlSourceError(ValueError):
    """The database cannot be read as a dense numeric table; the message says why."""


def _ident(value: Any, what: str) -> str:
    text = str(value)
    if not _IDENT.match(text):
        raise SqlSourceError(f"{what} {text!r} is not a plain SQL identifier (letters, digits, _)")
    return f"`{text}`"


def mysql_blocks(address: Mapping[str, Any], id_name: str | None = None,
                 connect_timeout: float = 10.0) -> Iterator[tuple[list[str], np.ndarray]]:
    """(header, block) pairs of `address.db`.`address.name`, the sid column first."""
    try:
        import pymysql
        import pymysql.cursors
    except ImportError:
        raise SqlSourceError("engine MYSQL needs the PyMySQL package on this node") from None
    table = f"{_ident(address.get('db'), 'db')}.{_ident(address.get('name'), 'table name')}"
    try:
        conn = pymysql.connect(host=str(address.get("host", "127.0.0.1")),
                               port=int(address.get("port", 3306)),
                               user=str(address.get("user", "")),
                               password=str(address.get("passwd", address.get("password", ""))),
                               connect_timeout=connect_timeout,
                               cursorclass=pymysql.cursors.SSCursor)
    except (pymysql.Error, ValueError, TypeError) as e:
        raise SqlSourceError(f"cannot connect to MySQL at {address.get('host')}:"
                             f"{address.get('port', 3306)}: {e}") from None
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(f"SELECT * FROM {table}")
            except pymysql.Error as e:
                raise SqlSourceError(f"cannot read {table}: {e}") from None
            names = [d[0] for d in cur.description]
            order = list(range(len(names)))
            if id_name:
                if id_name not in names:
                    raise SqlSourceError(f"id column {id_name!r} is not a column of {table}: "
                                         f"{names}")
                j = names.index(id_name)
                order = [j, *[k for k in order if k != j]]
            header = [names[k] for k in order]
            while True:
                rows = cur.fetchmany(BLOCK_ROWS)
                if not rows:
                    return
                yield header, _numeric(rows, order, header)
    finally:
        conn.close()


def _numeric(rows: list[tuple[Any, ...]], order: list[int], header: list[str]) -> np.ndarray:
    out = np.empty((len(rows), len(order)))
    for k, j in enumerate(order):
        try:
            out[:, k] = [float(r[j]) for r in rows]
        except (TypeError, ValueError):
            bad = next(r[j] for r in rows if not isinstance(r[j], (int, float)) and
                       not _is_number(r[j]))
            raise SqlSourceError(f"column {header[k]!r} is not numeric (value {bad!r}): FATE "
                                 "dense tables hold numbers only") from None
    return out


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
