"""The accumulator and its moments: learn, merge and forget against statistics of pooled rows."""

from __future__ import annotations

import numpy as np
import pytest

from fedstats.node.engine.accumulator import Accumulator
from fedstats.node.engine.errors import SchemaMismatch
from fedstats.node.engine.frame import parse_frame
from fedstats.node.engine.moments import Moments, combine, combine_into, remove

COLS = ["a", "b", "c", "d"]


def pooled(x: np.ndarray) -> dict[str, np.ndarray]:
    """Reference statistics computed directly on all rows at once."""
    mean = x.mean(axis=0)
    xc = x - mean
    return {
        "mean": mean,
        "m2": xc.T @ xc,
        "m3": (xc**3).sum(axis=0),
        "m4": (xc**4).sum(axis=0),
        "lo": x.min(axis=0),
        "hi": x.max(axis=0),
    }


def assert_moments(m: Moments, x: np.ndarray, rtol: float = 1e-10) -> None:
    ref = pooled(x)
    assert m.n == x.shape[0]
    scale = max(1.0, float(np.abs(ref["m2"]).max()))
    for key in ("mean", "m2", "m3", "m4"):
        got = getattr(m, key)
        atol = rtol * max(1.0, float(np.abs(ref[key]).max()), scale)
        np.testing.assert_allclose(got, ref[key], rtol=rtol, atol=atol, err_msg=key)


@pytest.fixture
def rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 4)) @ rng.normal(size=(4, 4)) + [3.0, -2.0, 0.5, 10.0]
    x[:, 3] = rng.integers(0, 2, size=600)  # a binary column
    return x


def learned(x: np.ndarray, batches: int = 1, **kw: object) -> Accumulator:
    acc = Accumulator(**kw)  # type: ignore[arg-type]
    for part in np.array_split(x, batches):
        acc.learn_array(part, COLS, binary=["d"])
    return acc


# ---------------------------------------------------------------------- moments
def test_moments_of_rows_match_direct_formulas(rows: np.ndarray) -> None:
    assert_moments(Moments.of_rows(rows), rows)


def test_moments_of_rows_has_symmetric_co_moments(rows: np.ndarray) -> None:
    m = Moments.of_rows(rows)
    assert np.array_equal(m.m2, m.m2.T)


@pytest.mark.parametrize("split", [1, 37, 300, 599], ids=lambda s: f"split-at-{s}")
def test_combine_of_two_parts_equals_moments_of_all_rows(rows: np.ndarray, split: int) -> None:
    m = combine(Moments.of_rows(rows[:split]), Moments.of_rows(rows[split:]))
    assert_moments(m, rows)


def test_combine_with_empty_is_identity_and_keeps_bounds(rows: np.ndarray) -> None:
    m = Moments.of_rows(rows)
    for out in (combine(m, Moments.empty(4)), combine(Moments.empty(4), m)):
        assert out.n == m.n and out is not m
        for key in ("mean", "m2", "m3", "m4"):
            assert np.array_equal(getattr(out, key), getattr(m, key))
        assert np.array_equal(out.lo, rows.min(axis=0))
        assert np.array_equal(out.hi, rows.max(axis=0))


def test_combine_into_updates_in_place(rows: np.ndarray) -> None:
    a = Moments.of_rows(rows[:100])
    combine_into(a, Moments.of_rows(rows[100:]))
    assert_moments(a, rows)


def test_remove_is_the_inverse_of_combine(rows: np.ndarray) -> None:
    whole = Moments.of_rows(rows)
    assert_moments(remove(whole, Moments.of_rows(rows[450:])), rows[:450])


def test_remove_all_rows_leaves_empty_moments_with_seen_bounds(rows: np.ndarray) -> None:
    out = remove(Moments.of_rows(rows), Moments.of_rows(rows))
    assert out.n == 0
    assert not out.mean.any() and not out.m2.any()
    assert np.array_equal(out.hi, rows.max(axis=0))


def test_remove_more_rows_than_known_is_refused(rows: np.ndarray) -> None:
    with pytest.raises(ValueError, match="only 10 are known"):
        remove(Moments.of_rows(rows[:10]), Moments.of_rows(rows[:11]))


def test_combine_refuses_different_widths(rows: np.ndarray) -> None:
    with pytest.raises(ValueError, match="4 and 3 columns"):
        combine(Moments.of_rows(rows), Moments.of_rows(rows[:, :3]))


def test_skewness_and_kurtosis_from_m3_m4_match_scipy(rows: np.ndarray) -> None:
    from scipy import stats

    m = learned(rows, batches=5).total
    var = m.variance()
    np.testing.assert_allclose(m.m3 / m.n / var**1.5, stats.skew(rows), rtol=1e-9)
    np.testing.assert_allclose(m.m4 / m.n / var**2 - 3.0, stats.kurtosis(rows), rtol=1e-9)


# ---------------------------------------------------------------------- learn / merge / forget
@pytest.mark.parametrize("batches", [1, 2, 7, 60], ids=lambda b: f"{b}-batches")
def test_learning_in_batches_equals_pooled_moments(rows: np.ndarray, batches: int) -> None:
    acc = learned(rows, batches)
    assert_moments(acc.total, rows)
    assert_moments(acc.given("d"), rows[rows[:, 3] == 1])
    assert acc.version == batches


def test_class_conditional_moments_for_value_zero_are_derived(rows: np.ndarray) -> None:
    acc = learned(rows, 3)
    assert_moments(acc.given("d", 0), rows[rows[:, 3] == 0], rtol=1e-9)


@pytest.mark.parametrize("parts", [2, 3, 8], ids=lambda p: f"{p}-sites")
def test_merge_of_parts_equals_accumulator_of_all_rows(rows: np.ndarray, parts: int) -> None:
    sites = [learned(p) for p in np.array_split(rows, parts)]
    whole = learned(rows)
    assert Accumulator.merged(sites).allclose(whole)
    assert Accumulator.merged(reversed(sites)).allclose(whole)


def test_merge_aligns_columns_by_name_not_position(rows: np.ndarray) -> None:
    site_a = learned(rows[:300])
    site_b = Accumulator()
    perm = [2, 0, 3, 1]
    site_b.learn_array(rows[300:, perm], [COLS[i] for i in perm], binary=["d"])
    merged = Accumulator.merged([site_a, site_b])
    assert merged.columns == COLS
    assert_moments(merged.total, rows)


def test_merge_with_columns_only_one_site_has_counts_zeros_elsewhere(rows: np.ndarray) -> None:
    site_a = Accumulator()
    site_a.learn_array(rows[:200, :2], ["a", "b"])
    site_b = Accumulator()
    site_b.learn_array(rows[200:, 1:3], ["b", "c"])
    merged = Accumulator.merged([site_a, site_b])
    full = np.zeros((600, 3))
    full[:200, :2] = rows[:200, :2]
    full[200:, 1:3] = rows[200:, 1:3]
    assert_moments(merged.moments(["a", "b", "c"]), full)


def test_merge_refuses_missing_conditional_statistics_and_changes_nothing(
    rows: np.ndarray,
) -> None:
    acc = learned(rows[:300])
    before = acc.copy()
    with pytest.raises(SchemaMismatch, match="without conditional statistics"):
        acc.merge(learned(rows[300:], conditional=False))
    assert acc.allclose(before, rtol=0, atol=0)
    assert acc.version == before.version


def test_forget_is_the_exact_inverse_of_learn(rows: np.ndarray) -> None:
    acc = learned(rows[:400], 4)
    acc.learn_array(rows[400:], COLS, binary=["d"])
    acc.forget_array(rows[400:], COLS, binary=["d"])
    assert acc.allclose(learned(rows[:400]), rtol=1e-9, atol=1e-9)
    assert_moments(acc.given("d"), rows[:400][rows[:400, 3] == 1], rtol=1e-9)


def test_forget_down_to_a_few_rows_keeps_their_exact_moments(rows: np.ndarray) -> None:
    acc = learned(rows, 6)
    keep = [0, 300, 599]
    gone = np.delete(rows, keep, axis=0)
    for part in np.array_split(gone, 9):
        acc.forget_array(part, COLS, binary=["d"])
    assert_moments(acc.total, rows[keep], rtol=1e-7)


def test_forget_of_every_row_leaves_an_empty_accumulator(rows: np.ndarray) -> None:
    acc = learned(rows, 3)
    acc.forget_array(rows, COLS, binary=["d"])
    assert acc.n == 0 and acc.given("d").n == 0
    assert not acc.total.m2.any()


# ---------------------------------------------------------------------- large offsets
def test_huge_offsets_keep_the_variance_where_naive_sums_lose_it() -> None:
    rng = np.random.default_rng(3)
    x = 1e9 + rng.normal(size=(20_000, 1))
    exact = np.var(x - 1e9)  # subtracting the offset is exact in float64

    n, s, ss = x.shape[0], x.sum(), (x * x).sum()
    naive = (ss - s * s / n) / n  # Σx² - (Σx)²/n: cancels away every digit of the variance
    assert abs(naive - exact) / exact > 1.0

    acc = Accumulator()
    for part in np.array_split(x, 13):
        acc.learn_array(part, ["x"])
    assert acc.total.variance()[0] == pytest.approx(exact, rel=1e-6)

    site = Accumulator()
    site.learn_array(x[:5000], ["x"])
    rest = Accumulator()
    rest.learn_array(x[5000:], ["x"])
    assert Accumulator.merged([site, rest]).total.variance()[0] == pytest.approx(exact, rel=1e-6)

    acc.forget_array(x[:15_000], ["x"])
    remaining = np.var(x[15_000:] - 1e9)
    assert acc.total.variance()[0] == pytest.approx(remaining, rel=1e-6)
    assert acc.total.mean[0] == pytest.approx(x[15_000:].mean(), rel=1e-15)


def test_merges_and_forgets_at_huge_offsets_are_exact_to_rounding() -> None:
    # The means carry their rounding error (a double-double): without it, a float64 mean
    # near 1e9 is only good to ~1e-7 and every merge's mean difference spoils the
    # co-moments by ~1e-6 relative.
    rng = np.random.default_rng(4)
    x = 1e9 + rng.normal(size=(30_000, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.3], [0, 0, 1.0]])
    centred = x - 1e9  # exact in float64
    exact = (centred - centred.mean(0)).T @ (centred - centred.mean(0))
    parts = []
    for piece in np.array_split(x, 7):
        site = Accumulator()
        site.learn_array(piece, ["a", "b", "c"])
        parts.append(site)
    merged = Accumulator.merged(parts)
    np.testing.assert_allclose(merged.total.m2, exact, rtol=1e-12, atol=1e-12 * exact.max())

    merged.forget_array(x[10:], ["a", "b", "c"])
    few = centred[:10] - centred[:10].mean(0)
    np.testing.assert_allclose(merged.total.m2, few.T @ few, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------- growing schemas
def test_columns_first_seen_in_a_later_batch_were_zero_before(rows: np.ndarray) -> None:
    acc = Accumulator()
    acc.learn_array(rows[:250, :2], ["a", "b"])
    acc.learn_array(rows[250:, :3], ["a", "b", "c"])
    full = rows[:, :3].copy()
    full[:250, 2] = 0.0
    assert acc.columns == ["a", "b", "c"]
    assert_moments(acc.total, full)


def test_new_category_value_adds_an_indicator_column_with_its_conditionals() -> None:
    def frame(values: list[list[str]]) -> dict:
        return {"attributeNames": ["x", "color"], "attributeTypes": ["C", "T"], "data": values}

    acc = Accumulator()
    acc.learn(parse_frame(frame([["1", "red"], ["2", "blue"], ["3", "red"]])))
    acc.learn(parse_frame(frame([["4", "green"], ["5", "red"]])))
    assert acc.columns == ["x", "color$blue", "color$red", "color$green"]
    assert acc.attribute_columns("color") == ["color$blue", "color$red", "color$green"]
    assert acc.given("color$green").n == 1
    assert acc.given("color$red").mean[0] == pytest.approx(3.0)
    green = acc.moments(["color$green"])
    assert green.mean[0] == pytest.approx(0.2)


# ---------------------------------------------------------------------- schema mismatches
def test_type_change_of_an_attribute_is_a_schema_mismatch() -> None:
    acc = Accumulator()
    acc.learn(parse_frame({"attributeNames": ["k"], "attributeTypes": ["C"], "data": [["1"]]}))
    with pytest.raises(SchemaMismatch, match="'k' has type 'T' here but 'C'"):
        acc.learn(parse_frame({"attributeNames": ["k"], "attributeTypes": ["T"], "data": [["a"]]}))


def test_binary_column_learned_as_continuous_is_a_schema_mismatch(rows: np.ndarray) -> None:
    acc = learned(rows)
    with pytest.raises(SchemaMismatch, match="'d' has type 'C' here but 'B'"):
        acc.learn_array(np.c_[rows, rows[:, 0]], [*COLS, "e"])
    assert acc.columns == COLS  # refused before the new column 'e' was adopted


def test_forgetting_columns_never_learned_is_a_schema_mismatch(rows: np.ndarray) -> None:
    acc = learned(rows)
    with pytest.raises(SchemaMismatch, match="never learned: 'e'"):
        acc.forget_array(np.zeros((1, 5)), [*COLS, "e"], binary=["d"])
    assert acc.columns == COLS


def test_forgetting_more_rows_than_learned_is_a_schema_mismatch(rows: np.ndarray) -> None:
    acc = learned(rows[:5])
    with pytest.raises(SchemaMismatch, match="cannot forget 6 rows: the project has 5"):
        acc.forget_array(rows[:6], COLS, binary=["d"])


def test_forgetting_more_positive_rows_than_learned_is_a_schema_mismatch() -> None:
    acc = Accumulator()
    acc.learn_array([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]], ["x", "y"], binary=["y"])
    with pytest.raises(SchemaMismatch, match="2 rows with 'y' = 1: the project has 1"):
        acc.forget_array([[1.0, 1.0], [2.0, 1.0]], ["x", "y"], binary=["y"])
    assert acc.n == 3 and acc.version == 1


def test_a_batch_lacking_a_known_attribute_is_refused_without_changing_the_schema(
    rows: np.ndarray,
) -> None:
    acc = learned(rows)
    before = list(acc.columns)
    with pytest.raises(SchemaMismatch, match="lack attribute"):
        acc.learn_array(rows[:, :2], ["a", "new"])
    assert acc.columns == before


def test_unknown_and_non_binary_columns_are_refused_by_given(rows: np.ndarray) -> None:
    acc = learned(rows)
    with pytest.raises(SchemaMismatch, match="not binary"):
        acc.given("a")
    with pytest.raises(SchemaMismatch, match="no conditional statistics"):
        acc.given("zzz")
    with pytest.raises(SchemaMismatch, match="unknown attribute"):
        acc.moments(["a", "zzz"])


def test_copy_is_independent_of_the_original(rows: np.ndarray) -> None:
    acc = learned(rows[:300])
    twin = acc.copy()
    acc.learn_array(rows[300:], COLS, binary=["d"])
    assert twin.n == 300
    assert twin.allclose(learned(rows[:300]), rtol=0, atol=0)


def test_unmerge_is_the_exact_inverse_of_merge_and_refuses_what_was_never_merged(
        rows: np.ndarray) -> None:
    site_a, site_b = learned(rows[:60], 2), learned(rows[60:], 2)
    whole = Accumulator.merged([site_a, site_b])
    whole.unmerge(site_b)
    assert whole.allclose(site_a)
    with pytest.raises(SchemaMismatch, match="cannot forget 600 rows: the project has 60"):
        whole.unmerge(learned(rows, 1))  # more rows than it holds
    stranger = Accumulator()
    stranger.learn_array(rows[:5, :1], ["never"])
    with pytest.raises(SchemaMismatch, match="never learned"):
        whole.unmerge(stranger)


@pytest.mark.parametrize("offset", [0.0, 1e9], ids=["centred", "offset-1e9"])
def test_the_compiled_pass_and_the_numpy_pass_agree(offset: float,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from fedstats.node.engine import fused

    if not fused.AVAILABLE:
        pytest.skip("numba is not installed: only the numpy pass exists here")
    x = offset + np.random.default_rng(11).normal(size=(70_000, 9))  # several blocks
    compiled = Moments.of_rows(x)
    monkeypatch.setattr(fused, "AVAILABLE", False)
    plain = Moments.of_rows(x)
    for name in ("mean", "m2", "m3", "m4"):
        np.testing.assert_allclose(getattr(compiled, name), getattr(plain, name),
                                   rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(compiled.lo, plain.lo)
    np.testing.assert_array_equal(compiled.hi, plain.hi)


def test_touched_counts_every_row_learned_or_forgotten_and_survives_a_snapshot(
        rows: np.ndarray) -> None:
    from fedstats.node.engine.codec import decode_snapshot, encode_snapshot

    acc = learned(rows[:100], 2)
    acc.forget_array(rows[:10], COLS, binary=["d"])
    acc.learn_array(rows[200:210], COLS, binary=["d"])
    # n is back to 100, yet 120 rows went through: what an increment floor must see
    assert (acc.n, acc.touched) == (100, 120)
    assert decode_snapshot(encode_snapshot(acc)).touched == 120
    whole = Accumulator.merged([acc, learned(rows[300:330])])
    assert whole.touched == 150
