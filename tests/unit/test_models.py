"""Online detectors (z-score, HalfSpaceTrees), make_detector, and drift on the score."""
from __future__ import annotations

import math

import numpy as np
import pytest

from aiotstream.errors import ModelError
from aiotstream.models.detector import Detector
from aiotstream.models.online import DriftWatch, HalfSpaceTreesDetector, ZScoreDetector, make_detector

COLS = ["rms", "kurtosis", "temp"]


def warmed_zscore(warmup: int = 50, seed: int = 0, cols: list[str] = COLS) -> ZScoreDetector:
    d = ZScoreDetector(cols, warmup=warmup)
    rng = np.random.default_rng(seed)
    for row in rng.normal(0.0, 1.0, (warmup, len(cols))):
        assert d.score_learn(row) == 0.0
    return d


# ---------------------------------------------------------------------------------------------
# ZScoreDetector
# ---------------------------------------------------------------------------------------------
def test_zscore_warmup_scores_zero_and_is_not_warm() -> None:
    d = ZScoreDetector(["a", "b"], warmup=5)
    for i in range(5):
        assert not d.warm
        # even an absurd row scores 0 during warm-up
        assert d.score_learn(np.array([float(i), 1e6 * i])) == 0.0
    assert d.warm


def test_zscore_hand_computed_score_and_learning() -> None:
    d = ZScoreDetector(["a"], warmup=3)
    for v in (1.0, 2.0, 3.0):
        d.score_learn(np.array([v]))
    # mean 2, sample variance ((1-2)^2 + 0 + (3-2)^2) / (3-1) = 1 -> std 1
    assert d.mean[0] == pytest.approx(2.0)
    assert d.std()[0] == pytest.approx(1.0)
    # x = 6: z = 4, score = 1 - exp(-4 / z_scale=4) = 1 - e^-1 ~ 0.632 >= learn_below 0.6: not learnt
    assert d.score_learn(np.array([6.0])) == pytest.approx(1 - math.exp(-1.0))
    assert d.mean[0] == pytest.approx(2.0)
    # x = 3: z = 1, score = 1 - exp(-1/4) ~ 0.221: learnt -> mean (1+2+3+3)/4 = 2.25
    assert d.score_learn(np.array([3.0])) == pytest.approx(1 - math.exp(-0.25))
    assert d.mean[0] == pytest.approx(2.25)
    # m2 = 2 + (3-2)*(3-2.25) = 2.75, variance 2.75 / 3
    assert d.std()[0] == pytest.approx(math.sqrt(2.75 / 3))


def test_zscore_constant_feature_uses_relative_floor() -> None:
    d = ZScoreDetector(["a"], warmup=4)
    for _ in range(4):
        d.score_learn(np.array([10.0]))
    # variance 0 -> std floor = rel_floor (1e-3) * |10| + 1e-9 = 0.01 (+1e-9)
    # x = 10.05: z = 0.05 / 0.01 = 5 -> score = 1 - exp(-5/4)
    assert d.score_learn(np.array([10.05])) == pytest.approx(1 - math.exp(-1.25), rel=1e-6)


def test_zscore_typical_row_scores_low_and_outlier_high_with_explanation() -> None:
    d = warmed_zscore()
    assert d.warm
    assert d.score_learn(np.array([0.1, -0.2, 0.0])) < 0.3
    far = np.array([0.0, 40.0, 0.0])
    assert d.score_learn(far) > 0.99
    top = d.explain(far, k=3)
    assert len(top) == 3
    first = top[0]
    assert first["feature"] == "kurtosis"
    assert first["value"] == 40.0
    assert first["z"] > 10
    i = COLS.index("kurtosis")
    assert first["baseline_low"] < d.mean[i] < first["baseline_high"]
    assert first["baseline_high"] < 40.0
    assert {e["feature"] for e in top} == set(COLS)
    assert top[0]["z"] >= top[1]["z"] >= top[2]["z"]
    assert len(d.explain(far, k=1)) == 1


def test_zscore_is_a_detector() -> None:
    assert isinstance(ZScoreDetector(["a"]), Detector)


def test_zscore_gated_learning_anomaly_does_not_move_baseline() -> None:
    d = warmed_zscore()
    mean, m2, counts, n = d.mean.copy(), d.m2.copy(), d.counts.copy(), d.n
    assert d.score_learn(np.array([0.0, 0.0, 50.0])) >= d.learn_below
    np.testing.assert_array_equal(d.mean, mean)
    np.testing.assert_array_equal(d.m2, m2)
    np.testing.assert_array_equal(d.counts, counts)
    assert d.n == n
    # a normal row is learnt
    assert d.score_learn(np.array([0.5, 0.5, 0.5])) < d.learn_below
    assert not np.array_equal(d.mean, mean)
    np.testing.assert_array_equal(d.counts, counts + 1)


def test_zscore_lasting_fault_keeps_scoring_high() -> None:
    d = warmed_zscore()
    scores = [d.score_learn(np.array([0.0, 30.0, 0.0])) for _ in range(50)]
    assert min(scores) > 0.99  # never learnt, so never becomes the new normal


def test_zscore_always_missing_column_does_not_prevent_scoring() -> None:
    cols = ["a", "b", "temp"]
    d = ZScoreDetector(cols, warmup=30)
    rng = np.random.default_rng(1)
    for row in rng.normal(5.0, 1.0, (30, 2)):
        d.score_learn(np.array([row[0], row[1], np.nan]))
    assert d.warm
    assert d.counts.tolist() == [30, 30, 0]  # NaN taught nothing
    assert np.isfinite(d.mean).all() and np.isfinite(d.m2).all()
    assert d.mean[2] == 0.0
    low = d.score_learn(np.array([5.0, 5.0, np.nan]))
    assert np.isfinite(low) and low < 0.3
    high = d.score_learn(np.array([5.0, 60.0, np.nan]))
    assert high > 0.99
    assert d.explain(np.array([5.0, 60.0, np.nan]))[0]["feature"] == "b"


def test_zscore_nan_in_warm_column_is_ignored_not_scored_not_learnt() -> None:
    d = warmed_zscore()
    mean, counts = d.mean.copy(), d.counts.copy()
    # feature 1 missing; the others typical -> low score, and it is learnt for the others only
    s = d.score_learn(np.array([0.2, np.nan, -0.1]))
    assert s < 0.3
    assert d.counts[1] == counts[1] and d.mean[1] == mean[1]
    assert d.counts[0] == counts[0] + 1 and d.counts[2] == counts[2] + 1
    assert np.isfinite(d.mean).all()
    # all features missing: nothing to score
    assert d.score_learn(np.array([np.nan, np.nan, np.nan])) == 0.0
    assert np.isfinite(d.mean).all()


def test_zscore_feature_not_yet_warm_is_not_scored() -> None:
    d = ZScoreDetector(["a", "temp"], warmup=10)
    for i in range(10):
        d.score_learn(np.array([float(i % 3), np.nan if i < 8 else 20.0]))  # temp seen only twice
    assert d.warm
    # temp has 2 observations < warmup 10: a wild temp value is not scored; "a" is typical
    assert d.score_learn(np.array([1.0, 1e6])) < 0.5


def test_zscore_warmup_longer_than_memory_still_warms_up() -> None:
    d = make_detector("zscore", ["a", "b"], warmup=1_200)
    rng = np.random.default_rng(3)
    for row in rng.normal(0.0, 1.0, (1_200, 2)):
        d.score_learn(row)
    assert d.warm
    assert d.score_learn(np.array([0.0, 100.0])) > 0.99


# ---------------------------------------------------------------------------------------------
# HalfSpaceTreesDetector
# ---------------------------------------------------------------------------------------------
def test_hst_outlier_scores_above_normal_median() -> None:
    d = make_detector("hst", ["a", "b"], warmup=60, n_trees=15, height=6, window_size=20, seed=3)
    assert isinstance(d, HalfSpaceTreesDetector)
    assert isinstance(d, Detector)
    rng = np.random.default_rng(7)
    # warm-up: 60 rows fix the scaling, then 60 more teach the raw-score baseline (trees' window is 20)
    for row in rng.normal(0.0, 1.0, (120, 2)):
        assert not d.warm
        assert d.score_learn(row) == 0.0
    assert d.warm
    normal = [d.score_learn(row) for row in rng.normal(0.0, 1.0, (60, 2))]
    assert all(0.0 <= s <= 1.0 for s in normal)
    outlier = d.score_learn(np.array([25.0, -25.0]))
    assert 0.0 <= outlier <= 1.0
    assert outlier > float(np.median(normal))
    assert d.explain(np.array([25.0, -25.0]), k=1)[0]["feature"] in ("a", "b")


# ---------------------------------------------------------------------------------------------
# make_detector
# ---------------------------------------------------------------------------------------------
def test_make_detector_kinds() -> None:
    z = make_detector("zscore", ["a"], warmup=7)
    assert isinstance(z, ZScoreDetector) and z.warmup == 7 and z.name == "zscore"
    h = make_detector("hst", ["a"], warmup=9)
    assert isinstance(h, HalfSpaceTreesDetector) and h.warmup == 9 and h.name == "hst"


@pytest.mark.parametrize("kind", ["lstm", "", "ZSCORE", "none"])
def test_make_detector_unknown_kind(kind: str) -> None:
    with pytest.raises(ModelError, match="unknown detector kind"):
        make_detector(kind, ["a"])


# ---------------------------------------------------------------------------------------------
# DriftWatch
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["adwin", "page_hinkley"])
def test_drift_detects_mean_shift(kind: str) -> None:
    w = DriftWatch(kind, delta=0.002)
    before = [w.update(0.1) for _ in range(300)]
    after = [w.update(0.8) for _ in range(300)]
    assert not any(before)
    assert any(after)
    assert after.index(True) < 150  # detected well within the shifted segment


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley"])
def test_drift_quiet_on_stationary_stream(kind: str) -> None:
    w = DriftWatch(kind, delta=0.002)
    rng = np.random.default_rng(11)
    flags = [w.update(float(v)) for v in np.clip(rng.normal(0.3, 0.05, 2_000), 0.0, 1.0)]
    assert not any(flags)


@pytest.mark.parametrize("kind", ["none", "cusum", ""])
def test_drift_unknown_kind(kind: str) -> None:
    with pytest.raises(ModelError, match="unknown drift detector"):
        DriftWatch(kind)
