"""Tests for the ``frame_moments`` kernel, the 7-column moment algebra, and the feature-set registry.

The fast path (compiled kernel + ``merge_moments`` / ``features_from_moments``) is
checked against the plain-numpy twins in ``aiotstream.features.reference``. The
11-column partials and the 12 time features are in ``test_time_features.py``;
spectral and scalar kernels in ``test_spectral.py`` and ``test_scalar.py``.

Tolerances
----------
The kernel promotes every sample to float64 as it reads it, so for *both* input
dtypes the reference is the numpy twin run on the same data cast to float64
(exact), and the same float64 tolerances apply (they are much tighter than a
float32 ``rtol ~ 1e-6`` would be).  Per row, with ``eps = 2.2e-16``,
``N`` samples, ``A = max|x|`` and ``s = max|x - mean|``:

* ``n``, ``min``, ``max``: exactly equal.
* ``mean``: ``|diff| <= RTOL * A`` with ``RTOL = 1e-9``.
* ``m_k`` (k = 2, 3, 4): ``|diff| <= RTOL * N * s**k + N * ((s + e)**k - s**k)``
  where ``e = 4 * N * eps * A`` bounds the error of a computed mean, so the
  second term is the worst-case effect of that error on every ``d = x - mean``
  (it only matters when the offset dominates the spread).  Using ``s**k``
  rather than ``|m_k|`` keeps near-zero odd sums (m3 of symmetric data)
  comparable.
* Features (merged frame moments vs features computed directly on the
  concatenated samples): ``rtol = 1e-7`` with ``atol = 1e-7 * A`` for the
  features in signal units (mean, std, rms, min, max, p2p) and ``atol = 1e-7``
  for the dimensionless ones (crest, skewness, kurtosis).
* Huge offsets (1e30 in float64, 1e15 in float32 with a spread ~1e-6 of the
  offset): mean within ``4 * N * eps * A``, min/max exact, std within
  ``A * eps * sqrt(N)`` of the exact value (computed from exact residuals
  ``x - offset``); ``eps`` is the float64 one because all arithmetic is
  float64.
"""

from __future__ import annotations

import doctest
import itertools
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiotstream import _kernels as kernels
from aiotstream.features import (
    FEATURE_SETS,
    MOMENT_COLUMNS,
    MOMENT_FEATURES,
    PARTIAL_COLUMNS,
    SPECTRAL_FEATURES,
    TIME_FEATURES,
    FeatureSet,
    band_name,
    empty_moments,
    features_from_moments,
    frame_moments,
    frame_partials,
    get_feature_set,
    merge_moments,
    reduce_moments,
    reduce_partials,
    reference,
    window_features,
)

EPS = float(np.finfo(np.float64).eps)
RTOL = 1e-9
FEAT_RTOL = 1e-7
# features measured in signal units get an atol scaled by max|x|
_UNIT_FEATURES = np.array([f in ("mean", "std", "rms", "min", "max", "p2p") for f in TIME_FEATURES])
_ZCR = TIME_FEATURES.index("zcr")

FAST = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- helpers
def assert_moments_close(got: np.ndarray, x: np.ndarray) -> None:
    """Compare kernel moments ``got`` (..., 7) with the numpy twin on ``x`` (..., N), see module doc."""
    x64 = np.asarray(x, dtype=np.float64)
    want = reference.frame_moments(x64)
    assert got.shape == want.shape
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got[..., 0], want[..., 0])
    np.testing.assert_array_equal(got[..., 5], want[..., 5])
    np.testing.assert_array_equal(got[..., 6], want[..., 6])
    n = x64.shape[-1]
    absmax = np.abs(x64).max(axis=-1)
    spread = np.abs(x64 - want[..., 1:2]).max(axis=-1)
    e = 4.0 * n * EPS * absmax
    mean_diff = np.abs(got[..., 1] - want[..., 1])
    assert np.all(mean_diff <= RTOL * absmax), f"mean off by {mean_diff.max()}"
    for k in (2, 3, 4):
        tol = RTOL * n * spread**k + n * ((spread + e) ** k - spread**k)
        diff = np.abs(got[..., k] - want[..., k])
        assert np.all(diff <= tol), f"m{k}: max excess {np.max(diff - tol)}"


def assert_features_close(got: np.ndarray, samples: np.ndarray) -> None:
    """Compare features ``got`` (..., 9 or 12) with the twin's features of ``samples`` (..., N)."""
    k = got.shape[-1]
    want = reference.time_features(samples)[..., :k]
    if k > _ZCR:  # zero-crossing rates are ratios of exact counts
        np.testing.assert_array_equal(got[..., _ZCR], want[..., _ZCR])
    absmax = np.abs(np.asarray(samples, dtype=np.float64)).max(axis=-1, keepdims=True)
    atol = FEAT_RTOL * np.where(_UNIT_FEATURES[:k], absmax, 1.0)
    diff = np.abs(got - want)
    tol = atol + FEAT_RTOL * np.abs(want)
    bad = ~(diff <= tol)
    assert not bad.any(), (
        f"features differ at {np.argwhere(bad)[:5].tolist()}: got {got[bad]}, want {want[bad]}"
    )


def make_data(seed: int, shape: tuple[int, ...], dtype: type, offset_exp: int, scale_exp: int) -> np.ndarray:
    """Normal data ``offset + scale * z`` with a random per-row offset sign/size, cast to ``dtype``."""
    rng = np.random.default_rng(seed)
    scale = 10.0**scale_exp
    offset = rng.uniform(-1, 1, size=shape[:-1] + (1,)) * 10.0 ** (scale_exp + offset_exp)
    x = offset + scale * rng.standard_normal(shape)
    return np.ascontiguousarray(x.astype(dtype))


shapes = st.one_of(
    st.tuples(st.integers(0, 6), st.integers(1, 300)),
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(1, 300)),
)


# --------------------------------------------------------------------------- kernel vs twin
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=shapes,
    dtype=st.sampled_from([np.float32, np.float64]),
    offset_exp=st.integers(-3, 3),
    scale_exp=st.integers(-6, 6),
)
def test_random_matches_reference(
    seed: int, shape: tuple[int, ...], dtype: type, offset_exp: int, scale_exp: int
) -> None:
    x = make_data(seed, shape, dtype, offset_exp, scale_exp)
    got = frame_moments(x)
    assert got.shape == shape[:-1] + (7,)
    assert_moments_close(got, x)


@settings(max_examples=80, deadline=None)
@given(
    x=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_adversarial_values_match_reference(x: np.ndarray) -> None:
    """Hypothesis-chosen values: duplicates, zeros, subnormals, tiny rows."""
    assert_moments_close(frame_moments(x), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 1), (5, 2), (3, 2, 1), (3, 2, 2)])
def test_tiny_rows(dtype: type, shape: tuple[int, ...]) -> None:
    x = make_data(7, shape, dtype, 1, 0)
    got = frame_moments(x)
    assert_moments_close(got, x)
    if shape[-1] == 1:
        np.testing.assert_array_equal(got[..., 1], x[..., 0])
        np.testing.assert_array_equal(got[..., 2:5], 0.0)
    else:  # two samples: mean is the midpoint, m2 = (b-a)^2/2, m3 = 0, m4 = (b-a)^4/8
        a, b = x[..., 0].astype(np.float64), x[..., 1].astype(np.float64)
        np.testing.assert_allclose(got[..., 1], (a + b) / 2, rtol=1e-15)
        np.testing.assert_allclose(got[..., 2], (b - a) ** 2 / 2, rtol=1e-12)
        np.testing.assert_allclose(got[..., 4], (b - a) ** 4 / 8, rtol=1e-12)
        assert np.all(np.abs(got[..., 3]) <= 1e-12 * np.abs(b - a) ** 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.0, 0.1, -3.7e5, 1e30, 5e-324])
def test_constant_rows_are_exact(dtype: type, value: float) -> None:
    x = np.full((4, 3, 1000), value, dtype=dtype)
    got = frame_moments(x)
    v = float(dtype(value))
    np.testing.assert_array_equal(got[..., 0], 1000.0)
    np.testing.assert_array_equal(got[..., 1], v)
    np.testing.assert_array_equal(got[..., 2:5], 0.0)
    np.testing.assert_array_equal(got[..., 5:7], v)
    feats = features_from_moments(got)
    np.testing.assert_array_equal(feats[..., TIME_FEATURES.index("skewness")], 0.0)
    np.testing.assert_array_equal(feats[..., TIME_FEATURES.index("kurtosis")], 0.0)
    np.testing.assert_array_equal(feats[..., TIME_FEATURES.index("std")], 0.0)


def test_empty_batches() -> None:
    assert frame_moments(np.empty((0, 16), np.float32)).shape == (0, 7)
    assert frame_moments(np.empty((3, 0, 16))).shape == (3, 0, 7)


def test_readonly_input_is_accepted() -> None:
    x = make_data(3, (4, 64), np.float32, 0, 0)
    x.flags.writeable = False
    assert_moments_close(frame_moments(x), x)


# --------------------------------------------------------------------------- huge magnitudes
def _exact_residual_stats(x: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """True mean and std per row, from residuals ``x - offset`` that are exact in float64."""
    r = x.astype(np.float64) - offset  # exact: same binade as offset (Sterbenz)
    return offset + r.mean(axis=-1), r.std(axis=-1)


@pytest.mark.parametrize(
    ("dtype", "offset", "spread"),
    [(np.float64, 1e30, 1e16), (np.float64, -1e30, 1e24), (np.float32, 1e15, 1e9), (np.float32, -1e15, 3e8)],
)
def test_huge_offset_small_spread(dtype: type, offset: float, spread: float) -> None:
    rng = np.random.default_rng(11)
    n = 1024
    x = (offset + spread * rng.standard_normal((8, n))).astype(dtype)
    assert np.ptp(x, axis=-1).min() > 0, "test data must not be constant"
    got = frame_moments(x)
    true_mean, true_std = _exact_residual_stats(x, float(dtype(offset)))
    magnitude = np.abs(x.astype(np.float64)).max(axis=-1)
    np.testing.assert_array_equal(got[:, 5], x.min(axis=-1).astype(np.float64))
    np.testing.assert_array_equal(got[:, 6], x.max(axis=-1).astype(np.float64))
    assert np.all(np.abs(got[:, 1] - true_mean) <= 4 * n * EPS * magnitude)
    std = features_from_moments(got)[:, TIME_FEATURES.index("std")]
    assert np.all(np.abs(std - true_std) <= magnitude * EPS * np.sqrt(n))
    # The corrected two-pass re-centring makes the kernel far better than that
    # bound (the plain two-pass numpy twin is off by ~1e-4 relative for 1e30/1e16).
    np.testing.assert_allclose(std, true_std, rtol=1e-12)


def test_huge_values_match_reference() -> None:
    x = make_data(5, (6, 2, 500), np.float64, 0, 30)
    assert_moments_close(frame_moments(x), x)
    x32 = make_data(6, (6, 2, 500), np.float32, 1, 15)
    assert_moments_close(frame_moments(x32), x32)


# --------------------------------------------------------------------------- NaN / Inf
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 200)),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_nan_rows_only(seed: int, shape: tuple[int, int, int], dtype: type) -> None:
    rng = np.random.default_rng(seed)
    x = make_data(seed, shape, dtype, 1, 0)
    clean = frame_moments(x)
    hit = rng.random(shape[:-1]) < 0.4
    rows, cols = np.nonzero(hit)
    x[rows, cols, rng.integers(0, shape[-1], size=rows.size)] = np.nan
    got = frame_moments(x)
    np.testing.assert_array_equal(got[..., 0], shape[-1])
    assert np.isnan(got[hit][:, 1:]).all()
    np.testing.assert_array_equal(got[~hit], clean[~hit])
    np.testing.assert_array_equal(np.isnan(reference.frame_moments(x)), np.isnan(got))
    feats = features_from_moments(got)
    assert np.isnan(feats[hit]).all() and not np.isnan(feats[~hit]).any()


def test_nan_in_otherwise_constant_row() -> None:
    x = np.array([[1.0, np.nan, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    got = frame_moments(x)
    assert np.isnan(got[0, 1:]).all()
    assert got[1].tolist() == [4.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def test_inf_follows_ieee() -> None:
    x = np.array([[1.0, np.inf, 2.0], [1.0, np.inf, -np.inf], [np.inf, np.inf, np.inf]])
    got = frame_moments(x)
    assert got[0, 1] == np.inf and got[0, 5] == 1.0 and got[0, 6] == np.inf
    assert np.isnan(got[1, 1]) and got[1, 5] == -np.inf and got[1, 6] == np.inf
    assert got[2, 1] == np.inf
    assert np.isnan(got[:, 2:5]).all()


# --------------------------------------------------------------------------- merging
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    channels=st.integers(1, 3),
    length=st.integers(1, 400),
    n_cuts=st.integers(0, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
    offset_exp=st.integers(-2, 3),
    scale_exp=st.integers(-4, 4),
    data=st.data(),
)
def test_merge_of_split_equals_concatenation(
    seed: int,
    channels: int,
    length: int,
    n_cuts: int,
    dtype: type,
    offset_exp: int,
    scale_exp: int,
    data: st.DataObject,
) -> None:
    x = make_data(seed, (1, channels, length), dtype, offset_exp, scale_exp)
    cuts = sorted(data.draw(st.lists(st.integers(0, length), min_size=n_cuts, max_size=n_cuts)))
    bounds = [0, *cuts, length]  # repeated cuts -> empty parts
    parts = [
        frame_moments(np.ascontiguousarray(x[:, :, a:b]))[0] if b > a else empty_moments(channels)
        for a, b in itertools.pairwise(bounds)
    ]
    stacked = np.stack(parts)  # (P, C, 7)
    merged = reduce_moments(stacked, axis=0)
    assert merged.shape == (channels, 7)
    assert_moments_close(merged[None], x)

    folded = empty_moments(channels)
    for part in parts:
        folded = merge_moments(folded, part)
    assert_moments_close(folded[None], x)

    assert_features_close(features_from_moments(merged), x[0])

    # the same cuts through the 11-column partials: all 12 features of the concatenation
    pparts = [
        frame_partials(np.ascontiguousarray(x[:, :, a:b]))[0] if b > a else np.zeros((channels, 11))
        for a, b in itertools.pairwise(bounds)
    ]
    pmerged = reduce_partials(np.stack(pparts))
    np.testing.assert_array_equal(pmerged[:, 8], reference.frame_partials(x)[0, :, 8])  # crossings incl. cuts
    assert_features_close(window_features(pmerged).reshape(channels, -1), x[0])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 40), dtype=st.sampled_from([np.float32, np.float64])
)
def test_reduce_frames_axis(seed: int, frames: int, dtype: type) -> None:
    """(F, C, N) frames merged along F == moments/features of the C concatenated signals."""
    x = make_data(seed, (frames, 3, 64), dtype, 1, 0)
    merged = reduce_moments(frame_moments(x), axis=0)
    whole = np.ascontiguousarray(np.moveaxis(x, 1, 0).reshape(1, 3, frames * 64))  # (1, C, F*N)
    assert_moments_close(merged[None], whole)
    assert_features_close(features_from_moments(merged), whole[0])
    # reducing a middle axis, given as a negative axis: two copies of each frame
    m = frame_moments(x)
    doubled = reduce_moments(np.stack([m, m], axis=1), axis=-3)  # (F, 2, C, 7) -> (F, C, 7)
    assert doubled.shape == m.shape
    np.testing.assert_array_equal(doubled[..., 0], 2 * 64)
    np.testing.assert_array_equal(doubled[..., 1], m[..., 1])
    np.testing.assert_array_equal(doubled[..., 2:5], 2 * m[..., 2:5])
    np.testing.assert_array_equal(doubled[..., 5:], m[..., 5:])


def test_merge_empty_sides() -> None:
    m = frame_moments(make_data(1, (4, 2, 10), np.float64, 0, 0))
    e = empty_moments((4, 2))
    np.testing.assert_array_equal(merge_moments(e, m), m)
    np.testing.assert_array_equal(merge_moments(m, e), m)
    np.testing.assert_array_equal(merge_moments(e, e), e)
    np.testing.assert_array_equal(reduce_moments(np.empty((0, 3, 7)), axis=0), empty_moments(3))
    mixed = m.copy()
    mixed[1] = e[1]  # empty on one side only in some rows
    out = merge_moments(mixed, m)
    np.testing.assert_array_equal(out[1], m[1])
    np.testing.assert_array_equal(out[0, :, 0], 20.0)


def test_merge_constant_parts_stays_exact() -> None:
    x = np.full((7, 2, 33), 0.1)
    merged = reduce_moments(frame_moments(x), axis=0)
    np.testing.assert_array_equal(merged[:, 1], 0.1)
    np.testing.assert_array_equal(merged[:, 2:5], 0.0)


def test_merge_and_reduce_errors() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        merge_moments(empty_moments(2), empty_moments(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 7\)"):
        merge_moments(np.zeros((2, 6)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="moment axis"):
        reduce_moments(empty_moments((2, 3)), axis=-1)
    with pytest.raises(ValueError, match="out of range"):
        reduce_moments(empty_moments((2, 3)), axis=3)


# --------------------------------------------------------------------------- features
def test_features_degenerate_cases_no_warnings() -> None:
    x = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [1.0, -1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = features_from_moments(frame_moments(x))
        f_empty = features_from_moments(empty_moments(2))
        f_nan = features_from_moments(frame_moments(np.array([[np.nan, 1.0]])))
    col = {name: i for i, name in enumerate(MOMENT_FEATURES)}
    assert f[0].tolist() == [0.0] * 9  # all-zero row: crest 0, skew 0, kurt 0
    assert f[1, col["crest"]] == 1.0 and f[1, col["skewness"]] == 0.0 and f[1, col["kurtosis"]] == 0.0
    assert np.isnan(f_empty).all()
    assert np.isnan(f_nan).all()
    assert_features_close(f, x)


def test_features_known_values() -> None:
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    f = dict(zip(MOMENT_FEATURES, features_from_moments(frame_moments(x))[0]))
    assert f["mean"] == 3.0
    assert f["std"] == pytest.approx(np.sqrt(3.5))
    assert f["rms"] == pytest.approx(np.sqrt(50 / 4))
    assert f["p2p"] == 5.0
    assert f["crest"] == pytest.approx(6 / np.sqrt(12.5))
    assert f["skewness"] == pytest.approx(np.sqrt(4) * 18 / 14**1.5)
    assert f["kurtosis"] == pytest.approx(4 * 98 / 14**2)


def test_normal_kurtosis_is_pearson() -> None:
    x = np.random.default_rng(2).standard_normal((1, 200_000))
    f = features_from_moments(frame_moments(x))[0]
    assert f[MOMENT_FEATURES.index("kurtosis")] == pytest.approx(3.0, abs=0.05)
    assert f[MOMENT_FEATURES.index("skewness")] == pytest.approx(0.0, abs=0.05)


def test_features_of_single_moment_row() -> None:
    assert features_from_moments(frame_moments(np.array([[1.0, 3.0]]))[0]).shape == (9,)
    assert np.isnan(features_from_moments(empty_moments())).all()


# --------------------------------------------------------------------------- feature sets
# The column layout of every registered (name, version). A set's columns are part of its
# version: if this test fails because columns changed, bump the set's version and add the
# new layout here (models and lineage records refer to sets by name/version).
_BANDS_DEFAULT = ["band_0_200", "band_200_1000", "band_1000_3000", "band_3000_5000"]
_TIME_V2 = ["mean", "std", "rms", "min", "max", "p2p", "crest", "skewness", "kurtosis", "zcr", "impulse", "shape"]
KNOWN_LAYOUTS = {
    ("vibration-basic", 2): _TIME_V2,
    ("vibration-spectral", 1): _TIME_V2 + _BANDS_DEFAULT + ["centroid", "dominant", "e1x", "e2x"],
    ("scalar-basic", 1): ["ewma", "mean", "std", "min", "max", "roc"],
}


def test_registered_layouts_are_pinned_to_versions() -> None:
    assert {(fs.name, fs.version): list(fs.per_channel) for fs in FEATURE_SETS.values()} == KNOWN_LAYOUTS
    assert tuple(_TIME_V2) == TIME_FEATURES == kernels.TIME_FEATURES
    assert SPECTRAL_FEATURES == kernels.SPECTRAL_FEATURES


def test_feature_set_registry_and_columns() -> None:
    fs = get_feature_set("vibration-basic")
    assert fs is FEATURE_SETS["vibration-basic"]
    assert (fs.name, fs.version, fs.ref) == ("vibration-basic", 2, "vibration-basic/2")
    assert fs.lineage() == {"set": "vibration-basic", "version": 2} and not fs.spectral
    cols = fs.columns(["ax", "ay"])
    assert cols[:2] == ["ax.mean", "ax.std"] and cols[12] == "ay.mean" and len(cols) == 24
    with pytest.raises(KeyError, match="vibration-basic"):
        get_feature_set("nope")
    with pytest.raises(TypeError):
        fs.columns("ax")
    with pytest.raises(ValueError, match="duplicate"):
        fs.columns(["ax", "ax"])
    with pytest.raises(AttributeError):
        fs.version = 3  # type: ignore[misc]
    assert not hasattr(fs, "__dict__")
    with pytest.raises(ValueError, match="unknown features"):
        FeatureSet("x", 1, ("mean", "median"))
    with pytest.raises(ValueError, match="no bands"):
        fs.with_bands([[0, 10]])
    with pytest.raises(ValueError, match="unknown features"):
        FeatureSet("x", 1, ("zcr",), kind="scalar")


def test_spectral_set_bands_go_into_columns_and_lineage() -> None:
    fs = get_feature_set("vibration-spectral", [[0, 50.5], [50.5, 400]])
    assert fs.spectral and fs.version == FEATURE_SETS["vibration-spectral"].version
    assert fs.per_channel[12:] == ("band_0_50p5", "band_50p5_400", "centroid", "dominant", "e1x", "e2x")
    assert fs.lineage() == {"set": "vibration-spectral", "version": 1, "bands": [[0.0, 50.5], [50.5, 400.0]]}
    assert FEATURE_SETS["vibration-spectral"].lineage()["bands"] == [[0.0, 200.0], [200.0, 1000.0],
                                                                      [1000.0, 3000.0], [3000.0, 5000.0]]
    assert band_name(1e-3, 2e5) == "band_0p001_200000"
    with pytest.raises(ValueError, match="overlap"):
        get_feature_set("vibration-spectral", [[0, 100], [90, 200]])
    with pytest.raises(ValueError, match="do not match"):
        FeatureSet("x", 1, ("mean", "band_0_10"), bands=((0.0, 20.0),))
    # a subset that keeps only spectral columns
    sub = FeatureSet("sub", 1, ("centroid", "band_0_10", "rms"), bands=((0.0, 10.0),))
    assert sub.spectral and sub.indices() == (13, 12, 2)


def test_window_features_follows_column_order() -> None:
    x = make_data(9, (5, 3, 50), np.float64, 1, 0)
    merged = reduce_partials(frame_partials(x))
    fs = get_feature_set("vibration-basic")
    channels = ["a", "b", "c"]
    row = dict(zip(fs.columns(channels), window_features(merged)))
    per_channel = kernels.features_from_partials(merged)
    for ci, ch in enumerate(channels):
        for fi, feat in enumerate(TIME_FEATURES):
            assert row[f"{ch}.{feat}"] == per_channel[ci, fi]
    subset = FeatureSet("sub", 1, ("max", "rms", "zcr"))
    row_sub = dict(zip(subset.columns(channels), window_features(merged, subset)))
    assert row_sub == {k: v for k, v in row.items() if k in row_sub}
    with pytest.raises(ValueError, match=r"\(C, 11\)"):
        window_features(frame_partials(x))
    with pytest.raises(ValueError, match="spectral partials"):
        window_features(merged, get_feature_set("vibration-spectral"))
    with pytest.raises(ValueError, match="not a waveform set"):
        window_features(merged, get_feature_set("scalar-basic"))


# --------------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        (np.zeros((3, 4), np.int32), TypeError, "float32 or float64"),
        (np.zeros((3, 4), np.float16), TypeError, "float32 or float64"),
        (np.zeros((3, 4), ">f8"), TypeError, "float32 or float64"),
        ([[1.0, 2.0]], TypeError, "numpy.ndarray"),
        (np.zeros(8), ValueError, "2-D"),
        (np.zeros((2, 2, 2, 2)), ValueError, "3-D"),
        (np.zeros((3, 0)), ValueError, "N >= 1"),
        (np.zeros((3, 8))[:, ::2], ValueError, "C-contiguous"),
        (np.zeros((8, 3), np.float32).T, ValueError, "C-contiguous"),
    ],
)
@pytest.mark.parametrize(
    "kernel",
    [frame_moments, frame_partials, kernels.time_features, lambda x: kernels.frame_spectra(x, 1000.0, [])],
    ids=["frame_moments", "frame_partials", "time_features", "frame_spectra"],
)
def test_invalid_input(bad: object, exc: type[Exception], match: str, kernel: Callable) -> None:
    with pytest.raises(exc, match=match):
        kernel(bad)


def test_kernel_module_surface_and_doctests() -> None:
    assert set(kernels.__all__) >= {"frame_moments", "MOMENT_COLUMNS", "frame_partials", "time_features",
                                    "frame_spectra", "spectral_features", "scalar_update", "reduce_partials"}
    assert MOMENT_COLUMNS == ("n", "mean", "m2", "m3", "m4", "min", "max")
    assert PARTIAL_COLUMNS == MOMENT_COLUMNS + ("abs_sum", "zero_crossings", "first", "last")
    assert kernels.__doc__
    result = doctest.testmod(kernels)
    assert result.attempted > 0 and result.failed == 0
