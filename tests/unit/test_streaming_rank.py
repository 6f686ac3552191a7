"""The streaming detector's rank test (aiotstream.models.streaming.RankTest and its compiled twin) against
scipy and against the statistic recomputed from scratch."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from aiotstream.models import streaming as S


def _feed(ref: np.ndarray, test: np.ndarray) -> tuple[S.RankTest, float]:
    """A one-channel RankTest whose reference is ``ref`` (in this order) and whose test window is ``test``:
    the z of the row that completes it."""
    cfg = S.DetectorConfig(warmup=5, close_after=len(test), spot_window=len(ref))
    rt = S.RankTest(1, cfg)
    z = 0.0
    for v in np.r_[ref, test]:
        z = float(rt.update(np.array([v]), learn=True)[0])
    assert rt.fill[0] == len(ref)
    return rt, z


def _lag1(ref: np.ndarray) -> float:
    c = ref - ref.mean()
    return sum(float(c[i] * c[i - 1]) for i in range(1, len(c))) / float(c @ c)


def _mann_whitney_z(test: np.ndarray, ref: np.ndarray) -> float:
    """From scratch: mid-ranks of the pooled values (scipy's rankdata), the tie-corrected variance, the AR(1)
    inflation of the reference's lag-1 autocorrelation (clipped to [0, 1])."""
    w, big_r = len(test), len(ref)
    pooled = np.r_[test, ref]
    ranks = stats.rankdata(pooled)
    u = float(ranks[:w].sum()) - w * (w + 1) / 2.0
    _, t = np.unique(pooled, return_counts=True)
    n = w + big_r
    var = w * big_r / 12.0 * ((n + 1) - float(np.sum(t ** 3 - t)) / (n * (n - 1)))
    r = min(max(_lag1(ref), 0.0), 1.0) if np.ptp(ref) > 0 else 0.0
    infl = 1.0 + 2.0 * sum((1.0 - k / w) * r ** k for k in range(1, w))
    return (u - w * big_r / 2.0) / math.sqrt(var * infl)


@pytest.mark.parametrize("ties", [False, True])
def test_rank_z_is_scipys_mann_whitney_without_inflation_when_r_is_0(ties: bool) -> None:
    """A reference with negative lag-1 autocorrelation (clipped to r = 0: no inflation): |z| gives scipy's
    asymptotic two-sided p (no continuity correction), with and without ties; the sign says which side."""
    rng = np.random.default_rng(1)
    e = rng.normal(size=401)
    ref = e[1:] - 0.8 * e[:-1]  # MA(1): lag-1 autocorrelation about -0.49
    test = rng.normal(size=10) + 1.5
    if ties:
        ref, test = np.round(ref), np.round(test)
    rt, z = _feed(ref, test)
    assert rt.autocorrelation(0) == 0.0 and _lag1(ref) < -0.3
    p = stats.mannwhitneyu(test, ref, method="asymptotic", use_continuity=False).pvalue
    np.testing.assert_allclose(math.erfc(abs(z) / math.sqrt(2.0)), p, rtol=1e-10)
    assert z > 0.0  # the test window sits above the reference
    if ties:
        assert rt.ties[0] > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_z_is_deflated_by_the_references_autocorrelation(seed: int) -> None:
    """An autocorrelated, quantized reference: z is scipy's Mann-Whitney z over sqrt(1 + 2 sum (1 - k/w) r^k),
    r the reference's lag-1 autocorrelation (here from the kept sums, equal to the direct one to rounding)."""
    rng = np.random.default_rng(seed)
    ref = np.round(np.cumsum(rng.normal(size=300)) * 0.2 + rng.normal(size=300))
    test = np.round(ref.mean() - 2.0 + rng.normal(size=10))
    rt, z = _feed(ref, test)
    r = _lag1(ref)
    assert r > 0.3
    np.testing.assert_allclose(rt.autocorrelation(0), r, rtol=1e-12)
    infl = 1.0 + 2.0 * sum((1.0 - k / 10) * r ** k for k in range(1, 10))
    p = stats.mannwhitneyu(test, ref, method="asymptotic", use_continuity=False).pvalue
    np.testing.assert_allclose(math.erfc(abs(z) * math.sqrt(infl) / math.sqrt(2.0)), p, rtol=1e-9)
    np.testing.assert_allclose(z, _mann_whitney_z(test, ref), rtol=1e-12)
    assert z < 0.0


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_sorted_reference_and_sums_through_the_rings_wrap_around(impl: str) -> None:
    """The sorted copy, the tie total and the autocorrelation's sums, updated value by value (and the ring's
    sums recomputed at each wrap), equal the statistic recomputed from the chronological reference, row for
    row, through many wraps, with ties, a large offset and a level change (both impls: the compiled kernel
    works on the same arrays)."""
    if impl == "compiled" and S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    rng = np.random.default_rng(7)
    rows = 1500
    x = np.c_[np.round(rng.normal(size=rows) * 2.0),  # whole units: many ties
              1e6 + np.cumsum(rng.normal(size=rows)) * 1e-3,  # a large offset, a slow wander
              rng.normal(size=rows)]
    x[800:, 2] += 50.0  # a level change: the old values leave the sums
    cfg = S.DetectorConfig(warmup=5, spot_window=97, close_after=10, accept=10**9)
    det = S.StreamingDetector(3, cfg, use=("channels", "rank"), impl=impl)
    rt = det.rank
    for t in range(rows):
        det.update(x[t])
        for j in range(3):
            f, pos = int(rt.fill[j]), int(rt.pos[j])
            ring = rt.ring[j, :f] if f < rt.size else np.r_[rt.ring[j, pos:], rt.ring[j, :pos]]
            np.testing.assert_array_equal(rt.srt[j, :f], np.sort(ring))
            _, c = np.unique(ring, return_counts=True)
            assert rt.ties[j] == int(np.sum(c ** 3 - c))
            if t % 7 == 0 and f >= 2 and np.ptp(ring) > 0:
                np.testing.assert_allclose(rt.autocorrelation(j), min(max(_lag1(ring), 0.0), 1.0), rtol=1e-6,
                                           atol=1e-9, err_msg=f"row {t} channel {j}")
            if t % 13 == 0 and f >= cfg.warmup and rt.win_fill[j] == rt.w:
                test = x[t - rt.w + 1:t + 1, j]
                np.testing.assert_allclose(S.RankTest._z(rt, j), _mann_whitney_z(test, ring), rtol=1e-6,
                                           atol=1e-12, err_msg=f"row {t} channel {j}")
    assert (rt.fill == rt.size).all()  # the rings wrapped (15 times)


def test_missing_values_are_neither_tested_nor_learned() -> None:
    cfg = S.DetectorConfig(warmup=5, spot_window=50, close_after=4)
    rt = S.RankTest(2, cfg)
    rng = np.random.default_rng(3)
    for _ in range(30):
        rt.update(rng.normal(size=2), learn=True)
    before = {k: getattr(rt, k).copy() for k in ("win", "win_fill", "win_pos", "ring", "fill", "srt", "s1")}
    for bad in (np.nan, np.inf, -np.inf, 1e151):
        z = rt.update(np.array([bad, 0.3]), learn=True)
        assert z[0] == 0.0 and z[1] != 0.0
    for k, v in before.items():  # channel 0 untouched
        np.testing.assert_array_equal(getattr(rt, k)[0], v[0])
    assert rt.fill[1] == before["fill"][1] + 4 and (rt.win[1] == 0.3).all()  # channel 1 went on


def test_rows_that_arrived_during_an_alert_are_not_learned() -> None:
    """The reference takes a value when it leaves the test window only if it arrived while no alert was
    open (the ``learn`` flag of its row)."""
    cfg = S.DetectorConfig(warmup=5, spot_window=100, close_after=3)
    rt = S.RankTest(1, cfg)
    for t in range(20):
        rt.update(np.array([float(t)]), learn=t < 10 or t >= 15)
    # values 0..16 left the window (17, 18, 19 are in it); 10..14 arrived during the alert
    np.testing.assert_array_equal(rt.srt[0, :rt.fill[0]], [*range(10), 15.0, 16.0])


def _quantized_shift(seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.c_[np.round(32.0 + 0.45 * rng.normal(size=1200)), rng.normal(size=1200), rng.normal(size=1200)]
    x[900:1100, 0] -= 1.0
    return x


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_rank_test_leads_the_explanation_when_it_gives_the_smallest_p(impl: str) -> None:
    """A whole-unit channel going down one unit: the rank test gives the rows' smallest p; the explanation
    names that channel first, with the rank test's p (the row's p is the Bonferroni of it)."""
    if impl == "compiled" and S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    x = _quantized_shift()
    det = S.make_pipeline("default", 3, impl=impl)
    b = det.update_block(x)
    led = np.flatnonzero(b.lead >= 0)
    alarm = np.flatnonzero((b.p < det.cfg.risk) & (b.lead >= 0))
    assert alarm.size > 20 and (b.lead[alarm] == 0).all()  # the shifted channel's alarm rows are the rank test's
    assert b.alert[900:1100].any()
    for row in led:
        j = int(b.lead[row])
        name, _, p = b.explain(row, ["flow", "a", "b"])[0]
        assert name == ["flow", "a", "b"][j] and p == b.channel_p[row, j]
        np.testing.assert_allclose(b.p[row], min(1.0, det.tests * p), rtol=1e-15)
    quiet = np.flatnonzero(b.lead < 0)[:50]
    for row in quiet:  # otherwise the chart's order (largest |z| first)
        assert b.explain(row)[0][0] == str(int(np.argmax(np.abs(b.z[row]))))


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_an_alert_the_rank_test_holds_closes_once_the_shift_has_lasted_accept_rows(impl: str) -> None:
    """A whole-unit channel down one unit for good, too small for the chart's change event: the rank test
    holds the alert (its reference learns nothing while the alert is open); once the alert has lasted
    ``accept`` rows the reference learns the new level again and the alert closes. Without that rule
    (``accept`` beyond the run) it would stay open to the end."""
    if impl == "compiled" and S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    rng = np.random.default_rng(5)
    x = np.c_[np.round(32.0 + 0.45 * rng.normal(size=3000)), rng.normal(size=3000), rng.normal(size=3000)]
    x[600:, 0] -= 1.0
    ends = {}
    for accept in (300, 10**9):
        det = S.make_pipeline("default", 3, S.DetectorConfig(accept=accept), impl=impl)
        b = det.update_block(x)
        assert not b.events and b.alert[600:700].any()  # no change event: the chart alone would not re-baseline
        ends[accept] = (bool(b.alert[-1]), int(b.alert.sum()))
        if accept == 300:
            assert det.hyst.open_rows == 0 and det.rank.fill[0] > 2000  # it learned the new level
    assert ends[300][0] is False and ends[300][1] < 300 + 600
    assert ends[10**9][0] is True  # the rule is what closes it


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_a_change_event_and_relevel_restart_the_rank_reference(impl: str) -> None:
    if impl == "compiled" and S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, 2))
    x[300:, 0] += 30.0
    cfg = S.DetectorConfig(warmup=5, accept=40, spot_init=20, spot_refit=5, spot_window=200)
    det = S.make_pipeline("default", 2, cfg, impl=impl)
    b = det.update_block(x[:400])
    ev = [e for e in b.events if e.channel == 0]
    assert ev and not b.alert[-20:].any()  # re-baselined: the alert closed
    assert det.rank.fill[0] < 400 - ev[0].row and det.rank.srt[0, :det.rank.fill[0]].min() > 15.0
    full = int(det.rank.fill[1])
    det.relevel()
    assert det.rank.fill[0] == det.rank.fill[1] == 0 and full > 0


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_a_snapshot_from_before_the_rank_test_restores_with_an_empty_rank_state(impl: str) -> None:
    if impl == "compiled" and S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    x = np.random.default_rng(4).normal(size=(400, 3))
    det = S.make_pipeline("default", 3, impl=impl)
    det.update_block(x[:200])
    old = det.__getstate__()  # as the detector before the rank test pickled itself
    for k in ("rank", "rank_spots", "_l1"):
        old.pop(k, None)
    old["use"] = ("channels", "t2", "q")
    old["tests"] -= 1
    if impl == "python":
        old["spots"] = {k: v for k, v in old["spots"].items() if k != "rank"}
    new = S.StreamingDetector.__new__(S.StreamingDetector)
    new.__setstate__(old)
    new = pickle.loads(pickle.dumps(new))
    assert new.use == S.StreamingDetector.STATS and new.tests == 3 + 3
    assert new.rank.fill.sum() == 0 and new.rank.win_fill.sum() == 0
    b = new.update_block(x[200:])
    assert new.rank.fill.min() == 200 - new.rank.w and np.isfinite(b.p).all()
    # a multivariate-only snapshot stays without it
    mv = S.make_pipeline("multivariate", 3, impl=impl)
    st_ = mv.__getstate__()
    st_.pop("rank")
    st_.pop("rank_spots", None)
    st_.pop("_l1", None)
    back = S.StreamingDetector.__new__(S.StreamingDetector)
    back.__setstate__(st_)
    assert back.rank is None and back.use == ("t2", "q")
    assert 0.0 <= back.update(x[0]).score <= 1.0 and back.update_block(x[:5]).lead.tolist() == [-1] * 5


def _compiled_state_equal(ref: S.StreamingDetector, got: S.StreamingDetector) -> None:
    a, b = ref.rank, got.rank
    for k in ("win", "win_learn", "win_pos", "win_fill", "ring", "pos", "fill", "ties", "shift", "s1", "s2",
              "lag"):
        np.testing.assert_array_equal(getattr(b, k), getattr(a, k), err_msg=k)
    for j in range(a.n):
        np.testing.assert_array_equal(b.srt[j, :b.fill[j]], a.srt[j, :a.fill[j]])
    spot = ref.spots["rank"]
    assert b is not None and got.rank_spots.fill[0] == len(spot.window)
    assert (got.rank_spots.t[0], got.rank_spots.rate[0]) == (spot.t, spot.rate)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 400), n=st.integers(1, 4), quantum=st.sampled_from(
    [0.0, 1.0, 0.5]), holes=st.booleans())
def test_compiled_rank_state_equals_the_python_reference(seed: int, rows: int, n: int, quantum: float,
                                                         holes: bool) -> None:
    if S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n)).cumsum(0) * 0.3 + rng.normal(size=(rows, n)) * rng.uniform(0.1, 5, n)
    x[rows // 2:, 0] += 4.0
    if quantum:
        x = np.round(x / quantum) * quantum
    if holes:
        x[rng.random(x.shape) < 0.05] = np.nan
    cfg = S.DetectorConfig(warmup=5, halflife=30.0, accept=25, spot_init=20, spot_refit=5, spot_window=60,
                           refresh=3, open_after=2, close_after=3)
    ref = S.make_pipeline("default", n, cfg, impl="python")
    got = S.make_pipeline("default", n, cfg, impl="compiled")
    a, b = ref.update_block(x), got.update_block(x)
    np.testing.assert_array_equal(b.alert, a.alert)
    np.testing.assert_array_equal(b.lead, a.lead)
    np.testing.assert_allclose(b.p, a.p, rtol=1e-12, atol=1e-15)
    _compiled_state_equal(ref, got)


extreme = st.one_of(st.floats(-1e150, 1e150, allow_nan=False), st.sampled_from([0.0, -0.0, 1e-300, 1e150, -1e150]))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.lists(extreme, min_size=2, max_size=2), min_size=1, max_size=120),
       impl=st.sampled_from(["python", "compiled"]))
def test_any_finite_input_gives_finite_rank_state_and_scores_in_0_1(rows: list[list[float]], impl: str) -> None:
    if impl == "compiled" and S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    cfg = S.DetectorConfig(warmup=3, spot_init=20, spot_refit=5, spot_window=40, close_after=4)
    det = S.StreamingDetector(2, cfg, impl=impl)
    b = det.update_block(np.array(rows, dtype=np.float64))
    assert np.all((b.score >= 0.0) & (b.score <= 1.0)) and np.all(np.isfinite(b.channel_p))
    rt = det.rank
    for k in ("s1", "s2", "lag", "shift"):
        assert np.all(np.isfinite(getattr(rt, k))), k
    for j in range(2):
        assert np.isfinite(S.RankTest._z(rt, j)) if rt.fill[j] >= 1 and rt.win_fill[j] == rt.w else True


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantum", [0.0, 0.5])
def test_compiled_rank_counts_kept_across_calls_and_relevel_equal_counts_from_scratch(seed: int,
                                                                                      quantum: float) -> None:
    """The kernel keeps each channel's counts (reference values below / equal to each test value, equal test
    values) from row to row and call to call; they are no state: a detector pickled after every call (a new
    kernel, the counts rebuilt from scratch) gives bit-equal p, also when relevel() empties the references
    between calls (outside the kernel), and both follow the Python reference."""
    if S._compiled is None:
        pytest.skip("aiotstream._streaming is not built")
    rng = np.random.default_rng(seed)
    rows, n = 900, 3
    x = rng.normal(size=(rows, n)).cumsum(0) * 0.2 + rng.normal(size=(rows, n))
    x[500:, 1] += 3.0
    if quantum:
        x = np.round(x / quantum) * quantum
    cfg = S.DetectorConfig(warmup=5, halflife=30.0, accept=25, spot_init=20, spot_refit=5, spot_window=80,
                           refresh=3, open_after=2, close_after=6)
    ref = S.make_pipeline("default", n, cfg, impl="python")
    kept = S.make_pipeline("default", n, cfg, impl="compiled")
    fresh = S.make_pipeline("default", n, cfg, impl="compiled")
    cuts = np.sort(rng.choice(np.arange(1, rows), 12, replace=False))
    ps: dict[str, list[np.ndarray]] = {"ref": [], "kept": [], "fresh": []}
    for i, (a, b) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, rows])):
        for name, det in (("ref", ref), ("kept", kept), ("fresh", fresh)):
            r = det.update_block(x[a:b])
            ps[name].append(r.p)
            if i in (4, 8):
                det.relevel()
        fresh = pickle.loads(pickle.dumps(fresh))
    np.testing.assert_array_equal(np.concatenate(ps["kept"]), np.concatenate(ps["fresh"]))
    np.testing.assert_allclose(np.concatenate(ps["kept"]), np.concatenate(ps["ref"]), rtol=1e-12, atol=1e-15)
    _compiled_state_equal(ref, kept)
    assert ref.rank.fill.min() > 0
