"""The 11-column time-domain partials and the 12 time features: kernel vs numpy twin.

Tolerances are those documented in ``aiotstream.features.reference`` (module
docstring); the moment columns reuse the checks of ``test_kernels.py``.
Covered: random data over many offsets/scales, Hypothesis-chosen values
(duplicates, zeros, subnormals), constant rows, tiny rows (1-2 samples), huge
magnitudes, NaN- and Inf-bearing rows, and windows merged from frames in time
order (equal to the twin on the concatenated samples).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiotstream import _kernels as kernels
from aiotstream.features import (
    TIME_FEATURES,
    features_from_partials,
    frame_partials,
    reduce_partials,
    reference,
    time_features,
)
from tests.unit.test_kernels import assert_features_close, assert_moments_close, make_data

FAST = settings(max_examples=60, deadline=None)
COL = {name: i for i, name in enumerate(TIME_FEATURES)}


def assert_partials_close(got: np.ndarray, x: np.ndarray) -> None:
    """Kernel partials vs the twin: moments as in test_kernels, the rest exact (abs_sum within 1e-12 N A)."""
    want = reference.frame_partials(x)
    assert got.shape == want.shape and got.dtype == np.float64
    assert_moments_close(got[..., :7], x)
    np.testing.assert_array_equal(got[..., 8:], want[..., 8:])  # crossings, first, last
    x64 = np.asarray(x, dtype=np.float64)
    tol = 1e-12 * x64.shape[-1] * np.abs(x64).max(axis=-1)
    assert np.all(np.abs(got[..., 7] - want[..., 7]) <= tol)


shapes = st.one_of(
    st.tuples(st.integers(0, 6), st.integers(1, 300)),
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(1, 300)),
)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=shapes,
    dtype=st.sampled_from([np.float32, np.float64]),
    offset_exp=st.integers(-3, 3),
    scale_exp=st.integers(-6, 6),
)
def test_random_matches_twin(seed: int, shape: tuple[int, ...], dtype: type, offset_exp: int,
                             scale_exp: int) -> None:
    x = make_data(seed, shape, dtype, offset_exp, scale_exp)
    part = frame_partials(x)
    assert part.shape == shape[:-1] + (11,)
    assert_partials_close(part, x)
    feats = time_features(x)
    assert feats.shape == shape[:-1] + (12,)
    assert_features_close(feats, x)
    # the direct kernel and the partials path are the same code: bit for bit
    np.testing.assert_array_equal(feats, features_from_partials(part))


@settings(max_examples=80, deadline=None)
@given(
    x=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_adversarial_values_match_twin(x: np.ndarray) -> None:
    """Hypothesis-chosen values: duplicates, zeros (+0 and -0), subnormals, tiny rows."""
    assert_partials_close(frame_partials(x), x)
    assert_features_close(time_features(x), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_rows(dtype: type) -> None:
    one = np.array([[3.0], [-2.0], [0.0]], dtype=dtype)
    f = time_features(one)
    assert_features_close(f, one)
    np.testing.assert_array_equal(f[:, COL["zcr"]], 0.0)  # no adjacent pair
    np.testing.assert_array_equal(f[:, COL["std"]], 0.0)
    np.testing.assert_array_equal(f[:, COL["impulse"]], [1.0, 1.0, 0.0])
    two = np.array([[1.0, -1.0], [2.0, 4.0], [-0.0, 0.0], [0.0, -1e-30]], dtype=dtype)
    f = time_features(two)
    assert_features_close(f, two)
    assert f[:, COL["zcr"]].tolist() == [1.0, 0.0, 0.0, 1.0]  # -0.0 counts as non-negative
    np.testing.assert_allclose(f[1, [COL["mean"], COL["std"], COL["shape"]]], [3.0, 1.0, np.sqrt(10) / 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.0, 0.1, -3.7e5, 1e30, 5e-324])
def test_constant_rows(dtype: type, value: float) -> None:
    x = np.full((4, 3, 1000), value, dtype=dtype)
    v = float(dtype(value))
    f = time_features(x)
    np.testing.assert_array_equal(f[..., COL["mean"]], v)
    for name in ("std", "skewness", "kurtosis", "p2p", "zcr"):
        np.testing.assert_array_equal(f[..., COL[name]], 0.0)
    np.testing.assert_array_equal(f[..., COL["crest"]], 1.0 if v != 0 else 0.0)
    np.testing.assert_allclose(f[..., COL["impulse"]], 1.0 if v != 0 else 0.0, rtol=1e-12)  # sum|x| rounds
    assert_features_close(f, x)


@pytest.mark.parametrize(
    ("dtype", "offset", "spread"),
    [(np.float64, 1e30, 1e16), (np.float64, -1e30, 1e24), (np.float32, 1e15, 1e9), (np.float32, -1e15, 3e8)],
)
def test_huge_magnitude(dtype: type, offset: float, spread: float) -> None:
    rng = np.random.default_rng(5)
    x = (offset + spread * rng.standard_normal((6, 2, 1024))).astype(dtype)
    part = frame_partials(x)
    assert_partials_close(part, x)
    f = time_features(x)
    # std from exact residuals: the kernel's re-centred sums keep 12 digits where the twin loses ~4
    r = x.astype(np.float64) - float(dtype(offset))
    np.testing.assert_allclose(f[..., COL["std"]], r.std(axis=-1), rtol=1e-12)
    np.testing.assert_array_equal(f[..., COL["zcr"]], 0.0)  # never changes sign
    np.testing.assert_allclose(f[..., COL["shape"]], 1.0, rtol=1e-6)  # rms ~ mean|x| ~ |offset|


def test_huge_values_match_twin() -> None:
    for dtype, scale_exp in ((np.float64, 30), (np.float32, 15)):
        x = make_data(5, (6, 2, 500), dtype, 0, scale_exp)
        assert_partials_close(frame_partials(x), x)
        assert_features_close(time_features(x), x)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 200)),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_nan_rows_are_nan_and_others_untouched(seed: int, shape: tuple[int, int, int], dtype: type) -> None:
    rng = np.random.default_rng(seed)
    x = make_data(seed, shape, dtype, 1, 0)
    clean_p, clean_f = frame_partials(x), time_features(x)
    hit = rng.random(shape[:-1]) < 0.4
    rows, cols = np.nonzero(hit)
    x[rows, cols, rng.integers(0, shape[-1], size=rows.size)] = np.nan
    part, feats = frame_partials(x), time_features(x)
    np.testing.assert_array_equal(part[..., 0], shape[-1])
    assert np.isnan(part[hit][:, 1:]).all() and np.isnan(feats[hit]).all()
    np.testing.assert_array_equal(part[~hit], clean_p[~hit])
    np.testing.assert_array_equal(feats[~hit], clean_f[~hit])
    np.testing.assert_array_equal(np.isnan(reference.time_features(x)), np.isnan(feats))
    np.testing.assert_array_equal(np.isnan(reference.frame_partials(x)), np.isnan(part))
    # a NaN frame makes its window NaN
    merged = reduce_partials(part)
    assert np.isnan(features_from_partials(merged)[hit.any(axis=0)]).all()


def test_inf_rows() -> None:
    """Partials keep what is exact (n, min, max, crossings, first, last); features are all NaN."""
    x = np.array([[1.0, np.inf, -2.0, 3.0], [1.0, np.inf, -np.inf, 2.0], [np.inf] * 4, [1.0, 2.0, 3.0, 4.0]])
    f, want = time_features(x), reference.time_features(x)
    np.testing.assert_array_equal(np.isnan(f), np.isnan(want))
    assert np.isnan(f[:3]).all() and not np.isnan(f[3]).any()
    part = frame_partials(x)
    assert np.isnan(part[:3, 2:5]).all()
    assert part[0, 5:].tolist() == [-2.0, np.inf, np.inf, 2.0, 1.0, 3.0]
    assert part[1, 5] == -np.inf and part[2, 8] == 0.0
    merged = reduce_partials(part[:, None, :])  # frames 0..3 as one window
    assert np.isnan(features_from_partials(merged)).all()


# --------------------------------------------------------------------------- windows of frames
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    channels=st.integers(1, 3),
    length=st.integers(1, 400),
    n_cuts=st.integers(0, 8),
    dtype=st.sampled_from([np.float32, np.float64]),
    offset_exp=st.integers(-2, 1),
    data=st.data(),
)
def test_window_of_frames_equals_twin_on_concatenation(seed: int, channels: int, length: int, n_cuts: int,
                                                       dtype: type, offset_exp: int,
                                                       data: st.DataObject) -> None:
    """Merged frame partials (in time order) == twin on the concatenated samples, incl. crossings at cuts."""
    x = make_data(seed, (1, channels, length), dtype, offset_exp, 0)
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, length - 1)), min_size=n_cuts, max_size=n_cuts)))
    bounds = [0, *[c for c in cuts if 0 < c < length], length]
    parts = [frame_partials(np.ascontiguousarray(x[0, :, a:b])) for a, b in itertools.pairwise(bounds) if b > a]
    merged = reduce_partials(np.stack(parts))
    assert_partials_close(merged[None], x)
    assert_features_close(features_from_partials(merged), x[0])


def test_frame_stack_merge_matches_twin() -> None:
    """(F, C, N) frames: one kernel call, one merge per channel == twin on the (C, F*N) signals."""
    rng = np.random.default_rng(4)
    x = (0.2 + rng.standard_normal((10, 3, 256))).astype(np.float32)
    merged = reduce_partials(frame_partials(x))
    whole = np.ascontiguousarray(np.moveaxis(x, 1, 0).reshape(3, -1))
    assert_features_close(features_from_partials(merged), whole)
    # out of order, the boundary crossings (and only they) change
    shuffled = reduce_partials(frame_partials(x[::-1].copy()))
    np.testing.assert_allclose(shuffled[:, :8], merged[:, :8], rtol=1e-9, atol=1e-9)


def test_reduce_partials_edges() -> None:
    empty = reduce_partials(np.empty((0, 2, 11)))
    assert empty.shape == (2, 11) and (empty[:, 0] == 0).all() and np.isnan(features_from_partials(empty)).all()
    x = np.arange(6.0).reshape(1, 6)
    p = frame_partials(x)
    with_empty = reduce_partials(np.stack([np.zeros_like(p), p, np.zeros_like(p)]))
    np.testing.assert_array_equal(with_empty, p)
    with pytest.raises(ValueError, match=r"\(F, \.\.\., 11\)"):
        reduce_partials(np.zeros(11))
    with pytest.raises(TypeError, match="float64"):
        reduce_partials(np.zeros((2, 11), np.float32))
    with pytest.raises(ValueError, match="11"):
        features_from_partials(np.zeros((2, 7)))


def test_known_values() -> None:
    x = np.array([[1.0, -2.0, 3.0, 6.0]])
    f = dict(zip(TIME_FEATURES, time_features(x)[0]))
    assert f["mean"] == 2.0 and f["p2p"] == 8.0
    assert f["zcr"] == pytest.approx(2 / 3)
    assert f["rms"] == pytest.approx(np.sqrt(50 / 4))
    assert f["impulse"] == pytest.approx(6 / 3)
    assert f["shape"] == pytest.approx(np.sqrt(50 / 4) / 3)
    assert f["kurtosis"] == pytest.approx(4 * 514 / 34**2)


def test_normal_noise_statistics() -> None:
    x = np.random.default_rng(2).standard_normal((1, 400_000)).astype(np.float32)
    f = dict(zip(TIME_FEATURES, time_features(x)[0]))
    assert f["kurtosis"] == pytest.approx(3.0, abs=0.05)
    assert f["zcr"] == pytest.approx(0.5, abs=0.01)  # independent samples: P(sign change) = 1/2
    assert f["shape"] == pytest.approx(np.sqrt(np.pi / 2), rel=0.01)  # rms / mean|x| of a normal
    assert kernels.TIME_FEATURES == TIME_FEATURES
