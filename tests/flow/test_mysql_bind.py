"""`table/bind` engine MYSQL against a real MariaDB server (Debian's `mariadb-server`),
through fate-client's `flow table bind`: the rows are read into the node's table exactly;
a server outside FEDSTATS_FLOW_SQL_HOSTS, a wrong password, a hostile table name and a
text column are refused naming what is wrong. Skipped, saying why, where the server or
PyMySQL is not installed (`apt-get install mariadb-server`, `pip install pymysql`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedstats.node.security.keys import new_secret_key
from fedstats_harness.fateflow import flow_cli, scoped_env, serve_job_node
from fedstats_harness.inprocess import Node
from fedstats_harness.ports import free_port
from fedstats_harness.process import ChildProcess

MARIADBD = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/libexec")
pymysql = pytest.importorskip("pymysql", reason="PyMySQL is not installed (pip install pymysql)")


@pytest.fixture(scope="module")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A private MariaDB server: (its port, its socket); user fate/fate, database experiment."""
    if MARIADBD is None or shutil.which("mariadb-install-db") is None:
        pytest.skip("no MariaDB server here (apt-get install mariadb-server)")
    d = tmp_path_factory.mktemp("mariadb")
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={d / 'data'}",
                    "--user=root", "--auth-root-authentication-method=normal",
                    "--skip-test-db"], check=True, capture_output=True, timeout=120)
    port = free_port()
    server = ChildProcess([MARIADBD, "--no-defaults", f"--datadir={d / 'data'}",
                           f"--socket={d / 's.sock'}", f"--port={port}", "--user=root",
                           "--bind-address=127.0.0.1", "--skip-name-resolve"],
                          d / "server.log", name="mariadbd").start()
    try:
        server.wait_for_output("ready for connections", timeout=60)
        conn = pymysql.connect(unix_socket=str(d / "s.sock"), user="root")
        with conn.cursor() as c:
            c.execute("CREATE DATABASE experiment")
            c.execute("CREATE USER 'fate'@'127.0.0.1' IDENTIFIED BY 'fate'")
            c.execute("GRANT SELECT ON experiment.* TO 'fate'@'127.0.0.1'")
        conn.close()
        yield port, d / "s.sock"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mariadb(mariadb_server: tuple[int, Path]) -> int:
    return mariadb_server[0]


@pytest.fixture(scope="module")
def sql_node(mariadb: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    d = tmp_path_factory.mktemp("sqlnode")
    (d / "root").mkdir()
    (d / "data").mkdir()
    with scoped_env(FEDSTATS_FLOW_SQL_HOSTS=f"127.0.0.1:{mariadb}"):
        yield from serve_job_node(d / "data", d / "root", {"c1": new_secret_key()})


def _bind(flow_bin: Path, work: Path, address: dict[str, Any], name: str,
          **extra: Any) -> dict[str, Any]:
    conf = work / f"bind_{name}.json"
    conf.write_text(json.dumps({"engine": "MYSQL", "address": address, "namespace": "sql",
                                "name": name, "head": 1, "partitions": 1, **extra}))
    return flow_cli(flow_bin, "table", "bind", "-c", str(conf), cwd=work)


@pytest.fixture(scope="module")
def tables(mariadb_server: tuple[int, Path]) -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = np.column_stack([np.arange(70_000), rng.integers(0, 2, 70_000),
                            rng.normal(size=(70_000, 4)) * 1e6])
    conn = pymysql.connect(unix_socket=str(mariadb_server[1]), user="root", database="experiment")
    with conn.cursor() as c:
        c.execute("CREATE TABLE breast (y INT, id BIGINT PRIMARY KEY, x0 DOUBLE, x1 DOUBLE, "
                  "x2 DOUBLE, x3 DOUBLE)")
        c.executemany("INSERT INTO breast VALUES (%s, %s, %s, %s, %s, %s)",
                      [(int(r[1]), int(r[0]), *map(float, r[2:])) for r in rows])
        c.execute("CREATE TABLE texty (id INT, x0 VARCHAR(10))")
        c.execute("INSERT INTO texty VALUES (1, 'abc')")
    conn.commit()
    conn.close()
    return rows


def test_mysql_bind_reads_the_rows_exactly(flow_bin: Path, sql_node: Node, mariadb: int,
                                           tables: np.ndarray, tmp_path: Path) -> None:
    port = sql_node.url.rsplit(":", 1)[1]
    flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
          "--secret-key", sql_node.keys["c1"], cwd=tmp_path)
    address = {"user": "fate", "passwd": "fate", "host": "127.0.0.1", "port": mariadb,
               "db": "experiment", "name": "breast"}
    out = _bind(flow_bin, tmp_path, address, "breast", id_name="id")
    assert out["retcode"] == 0, out
    info = flow_cli(flow_bin, "table", "info", "-n", "sql", "-t", "breast", cwd=tmp_path)["data"]
    assert (info["count"], info["origin"]) == (len(tables), "table_bind")
    assert info["schema"] == {"sid": "id", "header": "y,x0,x1,x2,x3"}
    read = sql_node.app.state.flow.tables.read("sql", "breast")
    assert read is not None
    got = read[1][np.argsort(read[1][:, 0])]
    np.testing.assert_array_equal(got, tables)
    again = _bind(flow_bin, tmp_path, address, "breast")
    assert again["retcode"] == 100 and "already exists" in again["retmsg"]


@pytest.mark.parametrize(("edit", "words"), [
    pytest.param({"port": 1}, "is not in this node's FEDSTATS_FLOW_SQL_HOSTS", id="host-not-allowed"),
    pytest.param({"passwd": "wrong"}, "cannot connect to MySQL", id="wrong-password"),
    pytest.param({"name": "breast`; DROP TABLE breast; --"}, "not a plain SQL identifier",
                 id="hostile-name"),
    pytest.param({"name": "texty"}, "column 'x0' is not numeric", id="text-column"),
    pytest.param({"name": "missing"}, "cannot read", id="no-such-table"),
])
def test_mysql_bind_refusals_are_named(flow_bin: Path, sql_node: Node, mariadb: int,
                                       tables: np.ndarray, tmp_path: Path,
                                       edit: dict[str, Any], words: str) -> None:
    port = sql_node.url.rsplit(":", 1)[1]
    flow_cli(flow_bin, "init", "--ip", "127.0.0.1", "--port", port, "--app-key", "c1",
          "--secret-key", sql_node.keys["c1"], cwd=tmp_path)
    address = {"user": "fate", "passwd": "fate", "host": "127.0.0.1", "port": mariadb,
               "db": "experiment", "name": "breast", **edit}
    out = _bind(flow_bin, tmp_path, address, "refused")
    assert out["retcode"] != 0 and words in out["retmsg"], out
    assert "wrong" not in out["retmsg"]  # the password is never echoed
    info = flow_cli(flow_bin, "table", "info", "-n", "sql", "-t", "refused", cwd=tmp_path)["data"]
    assert info["exist"] == 0
