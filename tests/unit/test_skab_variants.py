"""benchmarks.skab_variants: its candidates change only what they say (the harness without a change is the
product's detector, row for row), and the dispersion chart candidates against a slow reference."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from aiotstream.models import streaming as S
from benchmarks import skab_variants as V


def _baseline_reference():
    """The plain-Python reference of the baseline's equations (tests/unit/test_streaming_detectors.py)."""
    path = Path(__file__).with_name("test_streaming_detectors.py")
    spec = importlib.util.spec_from_file_location("_streaming_detector_tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._baseline_reference


def _rows(rows: int, n: int, seed: int) -> np.ndarray:
    """Cross-correlated AR(1) channels with a step fault in channel 0 and a noise burst in channel 1."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n, n)) * 0.5 + np.eye(n)
    e = rng.normal(size=(rows, n)) @ mix.T
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, rows):
        x[t] = 0.8 * x[t - 1] + e[t]
    x[700:800, 0] += 6.0
    x[1000:1100, 1] += rng.normal(size=100) * 8.0
    x[1200, 2] = np.nan  # a missing value: the innovation is missing on this row, not the next
    return x * rng.uniform(0.5, 5.0, n) + rng.uniform(-20.0, 20.0, n)


def _pair(rows: int, seed: int) -> np.ndarray:
    """Two channels, the second a noisy copy of the first (one residual dimension), their relation broken
    for 60 rows: Q's tail is lighter than the exponential SPOT fits, so its chi-squared floor binds."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows).cumsum() * 0.05 + rng.normal(size=rows)
    b = a + 0.3 * rng.normal(size=rows)
    b[700:760] -= 1.5
    return np.c_[a * 3.0 + 10.0, b * 3.0 - 5.0]


@pytest.mark.parametrize("data", ["four", "pair"])
def test_the_harness_without_a_change_is_the_reference_detector(data: str) -> None:
    """``noop``: the harness's own update (Bonferroni over channels, T-squared and Q with their chi-squared
    floors) gives the reference's p and alerts exactly, so a candidate's figures differ by its change only.
    (The harness had no floor on Q: ``pair`` differs by up to 15 % in p there.)"""
    x = _rows(1500, 4, seed=3) if data == "four" else _pair(1500, seed=1)
    n = x.shape[1]
    ref = S.StreamingDetector(n, impl="python").update_block(x)
    got = V.Variant(n, "noop").update_block(x)
    np.testing.assert_array_equal(got.p, ref.p)
    np.testing.assert_array_equal(got.alert, ref.alert)
    assert ref.alert.any()  # the fault is alerted: the comparison covers open alerts (no learning)


@pytest.mark.parametrize("kind", ["disp", "disp-max", "disp-max-2"])
def test_dispersion_chart_matches_a_slow_reference(kind: str) -> None:
    """The dispersion candidates: the baseline's EWMA chart of |x_t - x_(t-1)| per channel (plain-Python
    reference), one-sided except ``disp-max-2``; ``disp`` one SPOT test per channel with the Gaussian floor,
    ``disp-*`` one SPOT test on the largest channel with the floor n * erfc(z / sqrt 2)."""
    n = 3
    x = _rows(1500, n, seed=4)
    det = V.Variant(n, kind)
    got = [det._dispersion(r, learn=True) for r in x]
    prev = np.vstack([np.full((1, n), np.nan), x[:-1]])
    for t in range(2, len(x)):  # the innovation skips a missing row: it is taken from the last valid value
        prev[t] = np.where(np.isnan(prev[t]), prev[t - 1], prev[t])
    inn = np.abs(x - prev)
    z, _, _ = _baseline_reference()(inn, det.cfg)
    z = np.abs(z) if kind == "disp-max-2" else np.maximum(z, 0.0)
    spots = [S.SpotCalibrator(det.cfg) for _ in range(n if kind == "disp" else 1)]
    for t in range(len(x)):
        if kind == "disp":
            want = [max(s.update(float(z[t, j])), math.erfc(z[t, j] / math.sqrt(2.0))) for j, s in enumerate(spots)]
        else:
            zm = float(z[t].max())
            want = [max(spots[0].update(zm), min(1.0, n * math.erfc(zm / math.sqrt(2.0))))]
        np.testing.assert_allclose(got[t], want, rtol=1e-9, atol=1e-300, err_msg=f"row {t}")
    assert min(min(g) for g in got[1000:1100]) < 1e-6  # the noise burst is seen by the dispersion chart


def test_unknown_candidate_is_refused(capsys) -> None:
    assert V.main(["disp-max+nonsense"]) == 2
    assert "unknown variant" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_statistic_is_mann_whitney_with_ties_over_the_autocorrelation_inflation(seed: int) -> None:
    """``rank``: the Mann-Whitney z of the test window against the reference (mid-ranks, tie-corrected
    variance; scipy's asymptotic two-sided p without continuity correction), divided by the square root of
    the AR(1) inflation of a w-row mean's variance, r the reference's lag-1 autocorrelation (clipped at 0)."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    ref = np.round(np.cumsum(rng.normal(size=300)) * 0.2 + rng.normal(size=300))  # quantized, autocorrelated
    test = np.round(ref.mean() - 2.0 + rng.normal(size=10))
    z = V.mann_whitney_z(test, ref)
    p = stats.mannwhitneyu(test, ref, method="asymptotic", use_continuity=False).pvalue
    c = ref - ref.mean()
    r = max(0.0, sum(c[i] * c[i - 1] for i in range(1, len(c))) / sum(v * v for v in c))
    assert r > 0.3  # the case where the inflation matters
    infl = 1.0 + 2.0 * sum((1.0 - k / 10) * r ** k for k in range(1, 10))
    assert z < 0.0  # the test window sits below the reference
    np.testing.assert_allclose(math.erfc(abs(z) * math.sqrt(infl) / math.sqrt(2.0)), p, rtol=1e-9)


def test_rank_candidate_sees_a_one_unit_shift_of_a_quantized_channel() -> None:
    """A white channel read in whole units (32 +/- noise) going down one unit for 200 rows: the rank test's
    |z| is above 3.5 on most of those rows and on under 1 % of the normal ones (a 10-row window with ties
    cannot go much higher: about 4.6 here), and the reference takes no row while the alert is open (the
    shift does not become its own reference)."""
    rng = np.random.default_rng(5)
    x = np.c_[np.round(32.0 + 0.45 * rng.normal(size=900)), rng.normal(size=900), rng.normal(size=900)]
    x[600:800, 0] -= 1.0
    det = V.Variant(3, "rank")
    ref_len = []
    zs = []
    for row in x:
        zs.append(det._rank_z(row, learn=not det.hyst.is_open)[0])
        ref_len.append(int(det.r_fill[0]))
        det.hyst.update(zs[-1] > 3.5)
    zs = np.array(zs)
    assert np.mean(zs[620:800] > 3.5) > 0.8
    assert np.mean(zs[100:600] > 3.5) < 0.01
    assert ref_len[799] - ref_len[620] < 10  # the alert is open: the fault's rows are not learned


def test_rank_candidate_keeps_its_sorted_reference_and_ties_exactly() -> None:
    """The candidate keeps the reference sorted with its tie total, updated row by row (insert, and remove the
    oldest once the ring of spot_window values is full): the z it gives equals the statistic recomputed from
    the reference in arrival order, row for row and to the last bit, through the ring's wrap-around."""
    rng = np.random.default_rng(7)
    x = np.round(rng.normal(size=(3900, 1)) * 2.0)  # whole units: many ties
    det = V.Variant(1, "rank")
    for t, row in enumerate(x):
        got = det._rank_z(row, learn=True)[0]
        fill, pos = int(det.r_fill[0]), int(det.r_pos[0])
        if t % 97 == 0 and fill >= det.cfg.warmup:
            col = det.r_buf[:, 0]
            ref = col[:fill] if fill < det.cfg.spot_window else np.concatenate((col[pos:], col[:pos]))
            test = x[t - det.r_w + 1:t + 1, 0]
            assert got == abs(V.mann_whitney_z(test, ref)), t
    assert det.r_fill[0] == det.cfg.spot_window  # the ring wrapped
    np.testing.assert_array_equal(det.r_sorted[0], np.sort(det.r_buf[:, 0]))
