"""The row store on real files and a real SQLite catalog: round trips, forget, schema, space.

Crash safety (kill -9) and bounded memory run in child processes: `test_rows_processes.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fedstats.node.engine.frame import Batch, parse_frame
from fedstats.node.store.db import Database, open_database
from fedstats.node.store.rows import (
    CorruptStore,
    RowSchema,
    RowSchemaError,
    RowStore,
    RowStoreClosed,
    RowStoreLocked,
    UnmatchedRow,
    stored_names,
    to_batch,
)
from fedstats.node.store.rows.pins import FilePins

NAMES = ["x", "colour", "flag", "tags", "note", "y"]
TYPES = ["C", "T", "B", "L", "X", "C"]


def frame_rows(n: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    colours = ["Red", " blue", "GREEN ", "red"]
    tags = ["|a|b", "|b", "", "|c|a"]
    xs = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    return [
        [repr(float(xs[i])), colours[i % 4], str(i % 2), tags[(i // 3) % 4], "ignored",
         repr(float(rng.random()))]
        for i in range(n)
    ]


def frame(rows: list[list[str]], names: list[str] = NAMES, types: list[str] = TYPES) -> Batch:
    return parse_frame({"attributeNames": names, "attributeTypes": types, "data": rows})


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


def scanned(store: RowStore, batch_rows: int = 1000) -> Batch:
    """Every stored row as one engine batch, with the store's levels."""
    levels = store.levels()
    schema = store.schema()
    assert schema is not None
    parts = [to_batch(rb, schema, levels) for rb in store.scan(batch_rows)]
    values = np.vstack([p.values for p in parts])
    return Batch(parts[0].columns, values, parts[0].types, parts[0].binary, parts[0].parents)


def assert_same_batch(got: Batch, want: Batch) -> None:
    assert got.columns == want.columns
    assert got.types == want.types
    assert got.binary == want.binary
    assert got.parents == want.parents
    assert np.array_equal(bits(got.values), bits(want.values))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_database(tmp_path / "node.db")
    yield d
    d.close()


@pytest.fixture
def open_store(db: Database, tmp_path: Path) -> Iterator[Callable[..., RowStore]]:
    opened: list[RowStore] = []

    def make(name: str = "c1/p1", **options: Any) -> RowStore:
        store = RowStore(db, tmp_path / "rows" / name, name, **options)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


def test_rows_come_back_bit_for_bit_with_the_engine_s_columns(open_store: Callable[..., RowStore]) -> None:
    # small inline appends, a file segment, and inline merges, all in one store
    store = open_store(inline_max_bytes=4096, inline_merge_bytes=16384)
    rows = frame_rows(3000)
    sizes = [1, 7, 40, 1500, 3, 449, 1000]
    start = 0
    for n in sizes:
        assert store.append(frame(rows[start:start + n])) == n
        start += n
    assert store.count() == 3000
    assert_same_batch(scanned(store), frame(rows))
    schema = store.schema()
    assert schema is not None
    assert schema.items == [("x", "C"), ("colour", "T"), ("flag", "B"), ("tags", "L"), ("y", "C")]


def test_negative_zero_and_subnormals_keep_their_bits(open_store: Callable[..., RowStore]) -> None:
    store = open_store()
    values = np.array([[-0.0, 5e-324], [np.nextafter(1.0, 2.0), -1.7976931348623157e308]])
    store.append(Batch.from_array(values, ["a", "b"]))
    (rb,) = list(store.scan(10))
    got = np.column_stack([rb.column("a").to_numpy(), rb.column("b").to_numpy()])
    assert np.array_equal(bits(got), bits(values))


@pytest.mark.parametrize("batch_rows", [1, 7, 1000, 5000], ids=lambda n: f"batch{n}")
def test_scan_answers_batches_of_the_size_asked_across_segments(
    open_store: Callable[..., RowStore], batch_rows: int
) -> None:
    store = open_store(inline_max_bytes=2048, chunk_bytes=8 * 5 * 100)
    for k in range(5):
        store.append(Batch.from_array(np.full((300 + k, 2), float(k)), ["a", "b"]))
    sizes = [rb.num_rows for rb in store.scan(batch_rows)]
    assert sum(sizes) == store.count() == 1510
    assert all(s == batch_rows for s in sizes[:-1]) and 0 < sizes[-1] <= batch_rows
    loose = list(store.scan(batch_rows, exact=False))
    assert all(0 < rb.num_rows <= batch_rows for rb in loose)
    assert pa.Table.from_batches(loose).equals(pa.Table.from_batches(list(store.scan(batch_rows))))


def test_scan_of_chosen_columns_in_the_order_asked(open_store: Callable[..., RowStore]) -> None:
    store = open_store(inline_max_bytes=0)
    store.append(frame(frame_rows(50)))
    (rb,) = list(store.scan(100, ["y", "colour"]))
    assert rb.schema.names == ["y", "colour"]
    assert rb.column("colour").to_pylist()[:4] == ["red", "blue", "green", "red"]
    with pytest.raises(RowSchemaError, match="unknown: 'nope'"):
        list(store.scan(10, ["x", "nope"]))


def test_engine_batches_share_the_columns_of_every_level(open_store: Callable[..., RowStore]) -> None:
    store = open_store()
    store.append(frame([["1", "a", "0", "|p", "", "0"], ["2", "b", "1", "|q", "", "1"]]))
    snap = store.snapshot()
    with snap:
        first, second = snap.batches(1)
    assert first.columns == second.columns == ["x", "colour$a", "colour$b", "flag", "tags$p", "tags$q", "y"]
    assert first.values.tolist() == [[1, 1, 0, 0, 1, 0, 0]]
    assert second.values.tolist() == [[2, 0, 1, 1, 0, 1, 1]]
    with store.snapshot() as snap:
        (f_order,) = snap.batches(2, exact=False, order="F")
    assert f_order.values.flags.f_contiguous and f_order.columns == first.columns
    assert f_order.values.tolist() == [*first.values.tolist(), *second.values.tolist()]
    with pytest.raises(RowSchemaError, match="not one of the given levels"):
        to_batch(next(store.scan(2)), store.schema(), {"colour": ["a"]})  # type: ignore[arg-type]


def test_forgetting_one_of_two_equal_rows_leaves_the_other(open_store: Callable[..., RowStore]) -> None:
    store = open_store()
    rows = frame_rows(10)
    store.append(frame([*rows, rows[3]]))
    assert store.delete_matching(frame([rows[3]])) == 1
    assert store.count() == 10
    assert_same_batch(scanned(store), frame(rows[:3] + rows[4:] + [rows[3]]))
    assert store.delete_matching(frame([rows[3]])) == 1
    assert_same_batch(scanned(store), frame(rows[:3] + rows[4:]))


def test_forgetting_a_row_never_learned_changes_nothing_and_names_it(
    open_store: Callable[..., RowStore],
) -> None:
    store = open_store()
    rows = frame_rows(20)
    store.append(frame(rows))
    unknown = [*rows[5][:5], "0.125"]  # y differs from every stored row
    with pytest.raises(UnmatchedRow, match=r"row 2 of the batch \(x=.*y=0.125\) matches no stored row") as e:
        store.delete_matching(frame([rows[0], rows[1], unknown, rows[2]]))
    assert e.value.index == 2
    assert store.count() == 20
    assert_same_batch(scanned(store), frame(rows))


def test_forgetting_more_copies_than_stored_is_refused_whole(open_store: Callable[..., RowStore]) -> None:
    store = open_store()
    rows = frame_rows(6)
    store.append(frame([*rows, rows[1]]))
    with pytest.raises(UnmatchedRow, match=r"row 3 of the batch .* given 3 times but the store holds 2"):
        store.delete_matching(frame([rows[1], rows[0], rows[1], rows[1]]))
    assert store.count() == 7
    assert store.delete_matching(frame([rows[1], rows[0], rows[1]])) == 3
    assert store.count() == 4


def test_forget_matches_a_category_by_its_normalised_value_and_zero_by_value(
    open_store: Callable[..., RowStore],
) -> None:
    store = open_store()
    store.append(frame([["-0.0", "Red", "1", "|a", "", "1"]]))
    assert store.delete_matching(frame([["0", " red ", "1", "|a", "", "1"]])) == 1
    assert store.count() == 0


def test_forget_on_an_empty_store_is_refused(open_store: Callable[..., RowStore]) -> None:
    store = open_store()
    with pytest.raises(UnmatchedRow, match="row 0"):
        store.delete_matching(frame(frame_rows(1)))


def test_forget_across_segments_and_merges(open_store: Callable[..., RowStore]) -> None:
    store = open_store(inline_max_bytes=4096, inline_merge_bytes=8192)
    rows = frame_rows(2000, seed=3)
    for k in range(0, 2000, 100):
        store.append(frame(rows[k:k + 100]))
    gone = list(range(0, 2000, 7))
    store.delete_matching(frame([rows[i] for i in reversed(gone)]))
    keep = [r for i, r in enumerate(rows) if i not in set(gone)]
    assert_same_batch(scanned(store), frame(keep))


@pytest.mark.parametrize(
    ("names", "types", "message"),
    [
        (["x", "colour", "flag", "tags", "y", "z"], ["C", "T", "B", "L", "C", "C"], "not in the store: 'z'"),
        (["x", "colour", "flag", "tags"], ["C", "T", "B", "L"], "missing 'y'"),
        (["x", "colour", "flag", "tags", "y"], ["C", "T", "C", "L", "C"], "'flag' is C here but B in the store"),
    ],
    ids=["added", "missing", "retyped"],
)
def test_a_batch_of_another_schema_is_refused(
    open_store: Callable[..., RowStore], names: list[str], types: list[str], message: str
) -> None:
    store = open_store()
    store.append(frame(frame_rows(5)))
    other = [["1", "red", "1", "|a", "2", "3"][: len(names)]]
    with pytest.raises(RowSchemaError, match=message):
        store.append(frame(other, names, types))
    with pytest.raises(RowSchemaError, match=message):
        store.delete_matching(frame(other, names, types))
    assert store.count() == 5


def test_attributes_in_another_order_and_new_categories_are_the_same_schema(
    open_store: Callable[..., RowStore],
) -> None:
    store = open_store()
    store.append(frame(frame_rows(4)))
    store.append(frame([["1.5", "violet", "0", "|zz", "", "7"]]))
    reordered = frame([["7", "0", "violet", "|zz", "1.5"]], ["y", "flag", "colour", "tags", "x"],
                      ["C", "B", "T", "L", "C"])
    store.append(reordered)
    assert store.count() == 6
    last = list(store.scan(10))[-1].slice(4).to_pylist()
    assert last == [{"x": 1.5, "colour": "violet", "flag": 0.0, "tags": "zz", "y": 7.0}] * 2
    assert store.levels()["colour"] == ["blue", "green", "red", "violet"]
    assert store.delete_matching(reordered) == 1


def test_the_schema_and_rows_survive_reopening(db: Database, tmp_path: Path) -> None:
    rows = frame_rows(500)
    with RowStore(db, tmp_path / "r", "s", inline_max_bytes=1024) as store:
        store.append(frame(rows[:5]))
        store.append(frame(rows[5:]))
        store.delete_matching(frame(rows[100:110]))
    with RowStore(db, tmp_path / "r", "s") as store:
        assert store.schema() == RowSchema.of_batch(frame(rows))
        assert_same_batch(scanned(store), frame(rows[:100] + rows[110:]))


def test_a_catalog_in_its_own_sqlite_file(tmp_path: Path) -> None:
    own = open_database(tmp_path / "catalog.db")
    try:
        with RowStore(own, tmp_path / "t", "table/ns/name") as store:
            store.append(frame(frame_rows(3)))
            assert store.count() == 3
    finally:
        own.close()


def test_files_the_catalog_does_not_name_are_removed_at_open(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "r"
    with RowStore(db, d, "s", inline_max_bytes=0) as store:
        store.append(frame(frame_rows(50)))
    kept = {p.name for p in d.iterdir()}
    (d / ".tmp-0123.arrow").write_bytes(b"half a segment")
    (d / "feedface.arrow").write_bytes(b"written, never committed")
    with RowStore(db, d, "s") as store:
        assert {p.name for p in d.iterdir()} == kept
        assert store.count() == 50


def test_a_missing_segment_file_is_reported(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "r"
    with RowStore(db, d, "s", inline_max_bytes=0) as store:
        store.append(frame(frame_rows(50)))
    next(p for p in d.iterdir() if p.suffix == ".arrow").unlink()
    with pytest.raises(CorruptStore, match="segment files missing"):
        RowStore(db, d, "s")


def test_a_directory_opens_once_and_for_one_store(db: Database, tmp_path: Path) -> None:
    with RowStore(db, tmp_path / "r", "s"), pytest.raises(RowStoreLocked, match="already open"):
        RowStore(db, tmp_path / "r", "s")
    with pytest.raises(CorruptStore, match="belongs to store 's'"):
        RowStore(db, tmp_path / "r", "other")


def test_a_scan_sees_the_rows_as_of_its_start(open_store: Callable[..., RowStore]) -> None:
    store = open_store(inline_max_bytes=0, chunk_bytes=8 * 5 * 64)
    rows = frame_rows(1000)
    store.append(frame(rows))
    scan = store.scan(100)
    first = next(scan)
    # forget most of the segment (it is compacted: its file replaced), then append
    store.delete_matching(frame(rows[:900]))
    store.append(frame(frame_rows(10, seed=9)))
    assert store.count() == 110
    rest = list(scan)
    total = pa.Table.from_batches([first, *rest])
    assert total.num_rows == 1000
    assert total.column("y").to_pylist() == [float(r[5]) for r in rows]
    assert_same_batch(scanned(store), frame(rows[900:] + frame_rows(10, seed=9)))


def test_a_mostly_forgotten_segment_is_rewritten_and_its_space_returned(
    open_store: Callable[..., RowStore],
) -> None:
    store = open_store(inline_max_bytes=0)
    before_rows = frame_rows(4000)
    store.append(frame(before_rows[:2000]))
    store.append(frame(before_rows[2000:]))
    d = store.directory
    files = sorted(p.name for p in d.glob("*.arrow"))
    big = sum(p.stat().st_size for p in d.glob("*.arrow"))
    store.delete_matching(frame(before_rows[:1500]))  # 75% of the first segment
    after = sorted(p.name for p in d.glob("*.arrow"))
    assert len(after) == 2 and len(set(after) & set(files)) == 1  # one file rewritten
    assert sum(p.stat().st_size for p in d.glob("*.arrow")) < big * 0.7
    assert_same_batch(scanned(store), frame(before_rows[1500:]))


def test_forgetting_every_row_of_a_segment_removes_its_file(open_store: Callable[..., RowStore]) -> None:
    store = open_store(inline_max_bytes=0)
    rows = frame_rows(300)
    store.append(frame(rows[:100]))
    store.append(frame(rows[100:]))
    store.delete_matching(frame(rows[:100]))
    assert len(list(store.directory.glob("*.arrow"))) == 1
    assert_same_batch(scanned(store), frame(rows[100:]))


def test_many_small_appends_merge_into_one_file_in_order(open_store: Callable[..., RowStore]) -> None:
    store = open_store(inline_merge_count=10)
    rows = frame_rows(95)
    for i in range(0, 95, 5):
        store.append(frame(rows[i:i + 5]))
    assert len(list(store.directory.glob("*.arrow"))) == 1
    assert_same_batch(scanned(store), frame(rows))


def du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def test_drop_returns_the_space(db: Database, tmp_path: Path) -> None:
    store = RowStore(db, tmp_path / "rows" / "s", "s")
    for k in range(4):
        store.append(Batch.from_array(np.random.default_rng(k).random((50_000, 8)), list("abcdefgh")))
    assert du(tmp_path / "rows") > 4 * 50_000 * 8 * 8 * 0.9
    store.drop()
    assert not (tmp_path / "rows" / "s").exists()
    assert du(tmp_path / "rows") == 0
    with pytest.raises(RowStoreClosed, match="is dropped"):
        store.count()
    with RowStore(db, tmp_path / "rows" / "s", "s") as again:
        assert again.count() == 0 and again.schema() is None


def test_drop_waits_for_an_open_snapshot(db: Database, tmp_path: Path) -> None:
    store = RowStore(db, tmp_path / "r", "s", inline_max_bytes=0)
    store.append(Batch.from_array(np.arange(20.0).reshape(10, 2), ["a", "b"]))
    snap = store.snapshot()
    store.drop()
    assert sum(rb.num_rows for rb in snap.scan(3)) == 10
    snap.close()
    assert not (tmp_path / "r").exists()


def test_an_empty_batch_fixes_the_schema(open_store: Callable[..., RowStore]) -> None:
    store = open_store()
    assert store.append(frame([])) == 0
    assert store.count() == 0 and list(store.scan(5)) == []
    with pytest.raises(RowSchemaError):
        store.append(Batch.from_array(np.zeros((1, 1)), ["x"]))


def test_scans_during_concurrent_appends_and_forgets_see_whole_changes(
    open_store: Callable[..., RowStore],
) -> None:
    store = open_store(inline_max_bytes=4096, inline_merge_bytes=16384, chunk_bytes=1024)
    size = {k: 100 if k % 2 else 1000 for k in range(60)}  # inline and file segments

    def rows_of(k: int) -> Batch:
        return Batch.from_array(np.column_stack([np.full(size[k], float(k)), np.arange(size[k])]),
                                ["k", "i"])

    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for k in range(60):
                store.append(rows_of(k))
                if k % 3 == 2:
                    store.delete_matching(rows_of(k - 1))
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    scans = 0
    while thread.is_alive() or scans == 0:
        with store.snapshot() as snap:
            if snap.schema is None:  # before the first append
                assert snap.count == 0 and list(snap.scan(333)) == []
                continue
            table = pa.Table.from_batches(list(snap.scan(333)), schema=snap.schema.arrow())
            assert table.num_rows == snap.count
        ks, counts = np.unique(table.column("k").to_numpy(), return_counts=True)
        for k, c in zip(ks.astype(int).tolist(), counts.tolist(), strict=True):
            assert c == size[k], f"batch {k}: {c} of {size[k]} rows in one scan"
        scans += 1
    thread.join()
    assert not failures
    assert store.count() == sum(size.values()) - sum(size[k - 1] for k in range(2, 60, 3))


def test_a_release_that_would_wait_is_deferred_not_lost(tmp_path: Path) -> None:
    (tmp_path / "seg.arrow").write_bytes(b"rows")
    idle: list[bool] = []
    pins = FilePins(tmp_path, lambda: idle.append(True))
    _, files = pins.pin(lambda: (None, ["seg.arrow"]))
    pins.retire(["seg.arrow"])
    assert (tmp_path / "seg.arrow").exists()  # pinned: kept
    with pins._lock:  # as if another thread were pinning when the collector runs
        pins.release(files, blocking=False)
    assert (tmp_path / "seg.arrow").exists() and not idle
    pins.when_idle()  # the next call takes up the deferred release
    assert not (tmp_path / "seg.arrow").exists() and idle


def test_stored_names_lists_the_stores_of_a_prefix(db: Database, tmp_path: Path) -> None:
    assert stored_names(db) == []
    for name in ["project/c1/p1", "project/c1/p2", "table/ns/t"]:
        RowStore(db, tmp_path / name, name).close()
    assert stored_names(db, "project/c1/") == ["project/c1/p1", "project/c1/p2"]
    store = RowStore(db, tmp_path / "table/ns/t", "table/ns/t")
    store.drop()
    assert stored_names(db) == ["project/c1/p1", "project/c1/p2"]
