"""Algebraic properties of the accumulator, over rows hypothesis makes up.

Merging is what lets peers combine in any order, forgetting what lets a node retract rows,
and the snapshot what travels between them: each must hold for any rows, not just the
friendly ones in the example tests.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.codec import decode_snapshot, encode_snapshot

# The CI machine is slow and shared: no per-example deadline, a bounded number of examples.
PROPERTY = settings(max_examples=60, deadline=None)
NAMES = ["a", "b", "c", "d", "e"]


@st.composite
def row_sets(draw: st.DrawFn, parts: int) -> tuple[list[str], list[str], list[np.ndarray]]:
    """`parts` blocks of rows over the same columns, the last column binary when asked."""
    d = draw(st.integers(1, 4))
    with_binary = draw(st.booleans())
    values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    offset = draw(st.sampled_from([0.0, 1e6]))
    blocks = []
    for _ in range(parts):
        x = draw(hnp.arrays(np.float64, (draw(st.integers(1, 12)), d), elements=values)) + offset
        if with_binary:
            flags = draw(hnp.arrays(np.float64, x.shape[0], elements=st.sampled_from([0.0, 1.0])))
            x = np.c_[x, flags]
        blocks.append(x)
    columns = NAMES[: blocks[0].shape[1]]
    return columns, [columns[-1]] if with_binary else [], blocks


def learned(columns: list[str], binary: list[str], *blocks: np.ndarray) -> Accumulator:
    acc = Accumulator()
    for x in blocks:
        acc.learn_array(x, columns, binary=binary)
    return acc


def assert_close(a: Accumulator, b: Accumulator, scale_of: Accumulator | None = None) -> None:
    """Equal up to rounding, measured against the spread and offset of the rows.

    Centering loses the digits of the offset: a k-th co-moment of n rows with spread s
    around mean m is known to about eps·n·s^(k-1)·(s + |m|). A fixed tolerance would be
    wrong both ways (rows near 1e6 with s≈1, or rows near 1e3 whose co-moments are 1e7).
    `scale_of` (default `a`) holds the rows the rounding came from, e.g. before a forget.
    """
    ref = scale_of or a
    assert set(a.columns) == set(b.columns) and a.binary == b.binary
    assert set(a.cond) == set(b.cond)
    for key in ["total", *a.cond]:
        ma, mb = (a.total, b.total) if key == "total" else (a.cond[key], b.cond[key])
        ms = ref.total if key == "total" else ref.cond[key]
        assert ma.n == mb.n
        mb = mb.take(np.asarray(b.indices(a.columns)))
        n = max(ms.n, 1)
        spread = float(np.sqrt(np.diagonal(ms.m2).max(initial=0.0) / n)) + 1.0
        offset = float(np.abs(ms.mean).max(initial=0.0))
        for k, name in enumerate(("mean", "m2", "m3", "m4"), start=1):
            scale = (spread + offset) * spread ** (k - 1) * (1 if k == 1 else n)
            np.testing.assert_allclose(
                getattr(ma, name),
                getattr(mb, name),
                rtol=0,
                atol=1e-11 * scale,
                err_msg=f"{key}.{name}",
            )


@PROPERTY
@given(row_sets(parts=2))
def test_merge_is_commutative(rows: tuple[list[str], list[str], list[np.ndarray]]) -> None:
    columns, binary, (x, y) = rows
    a, b = learned(columns, binary, x), learned(columns, binary, y)
    assert_close(Accumulator.merged([a, b]), Accumulator.merged([b, a]))


@PROPERTY
@given(row_sets(parts=3))
def test_merge_is_associative(rows: tuple[list[str], list[str], list[np.ndarray]]) -> None:
    columns, binary, (x, y, z) = rows
    a, b, c = (learned(columns, binary, v) for v in (x, y, z))
    left = Accumulator.merged([Accumulator.merged([a, b]), c])
    right = Accumulator.merged([a, Accumulator.merged([b, c])])
    assert_close(left, right)
    assert_close(left, learned(columns, binary, np.vstack([x, y, z])))


@PROPERTY
@given(row_sets(parts=2))
def test_learn_then_forget_is_the_identity(
    rows: tuple[list[str], list[str], list[np.ndarray]],
) -> None:
    columns, binary, (keep, drop) = rows
    acc = learned(columns, binary, keep, drop)
    before = acc.copy()
    acc.forget_array(drop, columns, binary=binary)
    # what remains is known to rounding relative to what was there before the forget
    assert_close(acc, learned(columns, binary, keep), scale_of=before)


@PROPERTY
@given(row_sets(parts=3), st.booleans())
def test_snapshot_round_trips_bit_for_bit(
    rows: tuple[list[str], list[str], list[np.ndarray]], forget: bool
) -> None:
    columns, binary, blocks = rows
    acc = Accumulator.merged([learned(columns, binary, b) for b in blocks])
    if forget:
        acc.forget_array(blocks[0], columns, binary=binary)
    data = encode_snapshot(acc)
    back = decode_snapshot(data)
    assert encode_snapshot(back) == data
    for ma, mb in [(acc.total, back.total), *((acc.cond[k], back.cond[k]) for k in acc.cond)]:
        assert ma.n == mb.n
        for name in ("mean", "m3", "m4", "lo", "hi"):
            assert np.array_equal(getattr(ma, name), getattr(mb, name))
        assert np.array_equal(np.triu(ma.m2), np.triu(mb.m2))
