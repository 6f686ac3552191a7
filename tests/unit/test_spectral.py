"""Spectral kernels vs their numpy twins, Welch windows in the flow, and the bands config.

Tolerances (documented in ``aiotstream.features.reference``): float32 rows are
transformed in float32 by the kernel and in float64 by the twin, so powers
agree within ``1e-5 * total + 1e-5 * |value|`` (float64: ``1e-10``), the
centroid within ``1e-5`` (float64: ``1e-9``) of the Nyquist frequency, and the
dominant frequency exactly unless the twin's power at the kernel's choice is
within the power tolerance of the twin's peak (a near tie).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream import _kernels as kernels
from aiotstream.config import SiteConfig
from aiotstream.errors import ConfigError
from aiotstream.features import (
    frame_partials,
    frame_partials_batch,
    frame_spectra,
    get_feature_set,
    reduce_partials,
    reduce_spectral,
    reference,
    spectral_features,
    spectral_features_from_partials,
    window_features,
)
from aiotstream.features.reference import _power_spectra

FAST = settings(max_examples=40, deadline=None)
BANDS = [[0.0, 200.0], [200.0, 1000.0], [1000.0, 3000.0], [3000.0, 5000.0]]
POWER_COLS = [1, 3, 5, 6]  # total, peak, e1x, e2x (bands follow from column 7)


def _rtol(dtype: type) -> float:
    return 1e-5 if dtype == np.float32 else 1e-10


def assert_partials_close(got: np.ndarray, x: np.ndarray, fs: float, bands: list, rpm, hw: float = 2.0) -> None:
    want = reference.spectral_partials(x, fs, bands, rpm, hw)
    assert got.shape == want.shape
    rtol = _rtol(x.dtype.type)
    np.testing.assert_array_equal(got[..., 0], 1.0)
    nan = np.isnan(want[..., 1])
    np.testing.assert_array_equal(np.isnan(got[..., 1]), nan)
    g, w = got[~nan], want[~nan]
    total = w[:, 1:2]
    cols = POWER_COLS + list(range(7, w.shape[1]))
    diff = np.abs(g[:, cols] - w[:, cols])
    assert np.all(diff <= rtol * total + rtol * np.abs(w[:, cols])), f"power columns off by {diff.max()}"
    nyq = fs / 2
    assert np.all(np.abs(g[:, 2] - w[:, 2]) <= rtol * total[:, 0] * nyq + rtol * np.abs(w[:, 2]))
    _assert_dominant(g[:, 4], w[:, 4], x.reshape(-1, x.shape[-1])[~nan.reshape(-1)], fs, rtol)


def _assert_dominant(got_hz: np.ndarray, want_hz: np.ndarray, rows: np.ndarray, fs: float, rtol: float) -> None:
    differ = got_hz != want_hz
    if not differ.any():
        return
    power, freqs, _ = _power_spectra(rows[differ], fs)
    for p, g in zip(power, got_hz[differ]):
        k = int(np.flatnonzero(freqs == g)[0])
        assert p[k] >= p.max() - rtol * (p.sum() + p.max()), f"dominant {g} Hz is not a near tie"


def make_rows(seed: int, shape: tuple[int, ...], dtype: type, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = shape[-1]
    t = np.arange(n) / 10_000.0
    tone = np.sin(2 * np.pi * rng.uniform(20, 4000, size=shape[:-1] + (1,)) * t)
    x = offset + scale * (tone + 0.3 * rng.standard_normal(shape))
    return np.ascontiguousarray(x.astype(dtype))


# --------------------------------------------------------------------------- kernel vs twin
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 5),
    channels=st.integers(1, 3),
    n=st.one_of(st.sampled_from([1, 2, 3, 4, 8, 16, 32, 64, 100, 128, 256, 512, 1000, 1024, 4096]),
                st.integers(1, 600)),
    dtype=st.sampled_from([np.float32, np.float64]),
    scale_exp=st.integers(-8, 8),
    rpm=st.floats(60.0, 20_000.0),
)
def test_random_matches_twin(seed: int, rows: int, channels: int, n: int, dtype: type, scale_exp: int,
                             rpm: float) -> None:
    x = make_rows(seed, (rows, channels, n), dtype, 10.0**scale_exp, offset=3.0 * 10.0**scale_exp)
    got = frame_spectra(x, 10_000.0, BANDS, rpm=rpm)
    assert got.shape == (rows, channels, 7 + len(BANDS))
    assert_partials_close(got, x, 10_000.0, BANDS, rpm)
    feats = spectral_features(x, 10_000.0, BANDS, rpm=rpm)
    np.testing.assert_array_equal(feats, spectral_features_from_partials(got))
    want = reference.spectral_features(x, 10_000.0, BANDS, rpm=rpm)
    rtol = _rtol(dtype)
    total = reference.spectral_partials(x, 10_000.0, BANDS, rpm)[..., 1:2]
    power = [0, 1, 2, 3, 6, 7]
    assert np.all(np.abs(feats[..., power] - want[..., power]) <= rtol * total + rtol * np.abs(want[..., power]))
    assert np.all(np.abs(feats[..., 4] - want[..., 4]) <= rtol * 5000.0)


def test_per_row_rpm_and_harmonic_bins() -> None:
    fs, n = 1000.0, 1000  # 1 Hz bins
    t = np.arange(n) / fs
    x = np.stack([np.sin(2 * np.pi * 20 * t) + 0.5 * np.sin(2 * np.pi * 40 * t),
                  np.sin(2 * np.pi * 30 * t)])
    rpm = np.array([1200.0, 1800.0])  # 20 Hz and 30 Hz running speed
    f = spectral_features(x, fs, [], rpm=rpm)
    np.testing.assert_allclose(f[:, 2], [0.5, 0.5], rtol=1e-9)  # e1x: the whole 1x tone (A**2 / 2)
    np.testing.assert_allclose(f[:, 3], [0.125, 0.0], atol=1e-12)  # e2x
    np.testing.assert_array_equal(f[:, 1], [20.0, 30.0])  # dominant
    assert_partials_close(frame_spectra(x, fs, [], rpm=rpm), x, fs, [], rpm)
    # no rpm: 1x/2x are NaN, the rest is computed
    none = spectral_features(x, fs, [[0, 100]], rpm=None)
    assert np.isnan(none[:, 3:]).all() and not np.isnan(none[:, :3]).any()
    # a running speed above Nyquist has no bins: zero power
    assert spectral_features(x, fs, [], rpm=60 * 600.0)[:, 2:].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # rpm that does not broadcast
    with pytest.raises(ValueError, match="broadcast"):
        frame_spectra(x, fs, [], rpm=np.ones(3))


def test_band_edges_are_half_open_and_dc_is_dropped() -> None:
    fs, n = 1000.0, 1000
    t = np.arange(n) / fs
    x = np.sin(2 * np.pi * 100 * t)[None] + 5.0  # DC offset is removed, tone on bin 100
    f = spectral_features(x, fs, [[0, 99], [99, 100], [100, 101], [101, 500]], rpm=None)[0]
    # Hann spreads the tone over bins 99, 100, 101 in the ratio 1:4:1 (powers 1/16, 1/4, 1/16 of A**2)
    np.testing.assert_allclose(f[:4], [0.0, 0.5 / 6, 0.5 * 4 / 6, 0.5 / 6], atol=1e-12)
    assert f[4] == pytest.approx(100.0) and f[5] == 100.0


def test_constant_and_tiny_rows() -> None:
    x = np.array([[2.0] * 64, [0.0] * 64, [1e30] * 64])
    f = spectral_features(x, 1000.0, [[0, 500]], rpm=600)
    np.testing.assert_array_equal(f, 0.0)  # no power, centroid and dominant 0 by rule
    for n in (1, 2, 3):
        for dtype in (np.float32, np.float64):
            rows = make_rows(n, (4, n), dtype)
            assert_partials_close(frame_spectra(rows, 1000.0, [[0, 250], [250, 500]], rpm=6000), rows, 1000.0,
                                  [[0, 250], [250, 500]], 6000)
    one = spectral_features(np.array([[1.0], [3.0]]), 100.0, [[0, 50]], rpm=60)
    np.testing.assert_array_equal(one, 0.0)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float32, 1e30), (np.float32, 1e-30), (np.float64, 1e100),
                                              (np.float64, 1e-150)])
def test_huge_and_tiny_magnitudes(dtype: type, scale: float) -> None:
    """The kernel scales each row by a power of two before the FFT: no float32 overflow or underflow."""
    x = make_rows(3, (4, 2, 512), dtype, scale)
    got = frame_spectra(x, 10_000.0, BANDS, rpm=1800)
    assert np.isfinite(got).all()
    assert_partials_close(got, x, 10_000.0, BANDS, 1800)
    # features are invariant to scale, up to the power's scale**2
    unit = frame_spectra(make_rows(3, (4, 2, 512), np.float64, 1.0), 10_000.0, BANDS, rpm=1800)
    np.testing.assert_allclose(got[..., 1] / float(dtype(scale)) ** 2, unit[..., 1], rtol=1e-4)


@FAST
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_rows_are_nan(seed: int, dtype: type, bad: float) -> None:
    rng = np.random.default_rng(seed)
    x = make_rows(seed, (6, 2, 128), dtype)
    clean = frame_spectra(x, 10_000.0, BANDS, rpm=1800)
    hit = rng.random((6, 2)) < 0.4
    r, c = np.nonzero(hit)
    x[r, c, rng.integers(0, 128, size=r.size)] = bad
    got = frame_spectra(x, 10_000.0, BANDS, rpm=1800)
    np.testing.assert_array_equal(got[..., 0], 1.0)
    assert np.isnan(got[hit][:, 1:]).all()
    np.testing.assert_array_equal(got[~hit], clean[~hit])
    np.testing.assert_array_equal(np.isnan(reference.spectral_partials(x, 10_000.0, BANDS, 1800)), np.isnan(got))
    assert np.isnan(spectral_features_from_partials(got)[hit]).all()


def test_kernel_band_validation() -> None:
    x = np.zeros((1, 64))
    for bands, match in (([[10, 5]], "lo < hi"), ([[0, 10], [5, 20]], "overlap"), ([[0, np.nan]], "finite"),
                         ([1, 2, 3], "pairs")):
        with pytest.raises(ValueError, match=match):
            frame_spectra(x, 100.0, bands)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        frame_spectra(x, 0.0, [])
    with pytest.raises(ValueError, match="harmonic_halfwidth_bins"):
        frame_spectra(x, 10.0, [], harmonic_halfwidth_bins=-1)
    assert frame_spectra(np.zeros((0, 3, 64), np.float32), 100.0, [[0, 1]]).shape == (0, 3, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 8, 21])
def test_lane_fft_and_scipy_fft_agree(dtype: type, rows: int) -> None:
    """Power-of-two N: the kernel's own lane FFT (8 rows at a time, padding lanes) == the scipy path."""
    x = make_rows(rows, (rows, 1024), dtype, offset=2.0)
    x[rows // 2] = np.nan
    lanes = frame_spectra(x, 1e4, BANDS, rpm=1800, transform="lanes")
    scipy_ = frame_spectra(x, 1e4, BANDS, rpm=1800, transform="scipy")
    np.testing.assert_array_equal(np.isnan(lanes), np.isnan(scipy_))
    assert_partials_close(lanes, x, 1e4, BANDS, 1800)
    assert_partials_close(scipy_, x, 1e4, BANDS, 1800)
    auto = frame_spectra(x, 1e4, BANDS, rpm=1800)  # auto: the lanes where they are the faster path (AVX2)
    np.testing.assert_array_equal(auto, lanes if kernels.LANE_FFT_DEFAULT else scipy_)
    with pytest.raises(ValueError, match="power-of-two"):
        frame_spectra(x[:, :1000].copy(), 1e4, BANDS, transform="lanes")
    with pytest.raises(ValueError, match="transform"):
        frame_spectra(x, 1e4, BANDS, transform="fftw")


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunking_does_not_change_results(chunk: int) -> None:
    x = make_rows(9, (20, 256), np.float32)
    np.testing.assert_array_equal(frame_spectra(x, 1e4, BANDS, rpm=1800, transform="scipy", chunk_rows=chunk),
                                  frame_spectra(x, 1e4, BANDS, rpm=1800, transform="scipy"))


# --------------------------------------------------------------------------- windows of frames (Welch)
@FAST
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 12), dtype=st.sampled_from([np.float32, np.float64]))
def test_window_of_frames_equals_welch_twin(seed: int, frames: int, dtype: type) -> None:
    x = make_rows(seed, (frames, 3, 256), dtype)
    merged = reduce_spectral(frame_spectra(x, 10_000.0, BANDS, rpm=1800))
    got = spectral_features_from_partials(merged)
    want = reference.window_spectral_features(x, 10_000.0, BANDS, rpm=1800)
    rtol = _rtol(dtype)
    total = want[:, :4].sum(axis=1, keepdims=True)  # the bands cover 0..Nyquist
    power = [0, 1, 2, 3, 6, 7]
    assert np.all(np.abs(got[:, power] - want[:, power]) <= rtol * total + rtol * np.abs(want[:, power]))
    assert np.all(np.abs(got[:, 4] - want[:, 4]) <= rtol * 5000.0)
    differ = got[:, 5] != want[:, 5]
    for ch in np.flatnonzero(differ):  # only near ties may pick another frame/bin
        power_f, freqs, _ = _power_spectra(x[:, ch], 10_000.0)
        k = int(np.flatnonzero(freqs == got[ch, 5])[0])
        assert power_f[:, k].max() >= power_f.max() * (1 - 10 * rtol)


def test_peak_rule_largest_bin_of_any_frame_earliest_on_a_tie() -> None:
    fs, n = 1000.0, 1000
    t = np.arange(n) / fs
    a, b = np.sin(2 * np.pi * 50 * t), 1.01 * np.sin(2 * np.pi * 80 * t)
    for order in ((a, b), (b, a)):
        frames = np.stack(order)[:, None, :]
        got = spectral_features_from_partials(reduce_spectral(frame_spectra(frames, fs, [], rpm=None)))
        twin = reference.window_spectral_features(frames, fs, [], rpm=None)
        assert got[0, 1] == twin[0, 1] == 80.0  # the larger single-frame peak, wherever it is
    # an exact tie keeps the earlier frame's frequency (hand-made partials: count, total, fsum, peak, peak_hz)
    first = np.array([[1.0, 2.0, 100.0, 0.5, 50.0, 0.0, 0.0]])
    second = np.array([[1.0, 2.0, 160.0, 0.5, 80.0, 0.0, 0.0]])
    assert reduce_spectral(np.stack([first, second]))[0, 4] == 50.0
    assert reduce_spectral(np.stack([second, first]))[0, 4] == 80.0
    nan = second.copy()
    nan[0, 3] = np.nan
    assert np.isnan(reduce_spectral(np.stack([first, nan]))[0, 3:5]).all()


def test_reduce_spectral_edges() -> None:
    s = frame_spectra(make_rows(1, (3, 2, 64), np.float64), 1000.0, [[0, 100]], rpm=600)
    empty = reduce_spectral(np.empty((0, 2, 8)))
    assert empty.shape == (2, 8) and np.isnan(spectral_features_from_partials(empty)).all()
    np.testing.assert_array_equal(reduce_spectral(np.stack([np.zeros_like(s[0]), s[0]])), s[0])
    merged = reduce_spectral(s)
    np.testing.assert_array_equal(merged[:, 0], 3.0)
    np.testing.assert_allclose(merged[:, 1], s[..., 1].sum(axis=0))
    with pytest.raises(ValueError, match="7"):
        reduce_spectral(np.zeros((2, 6)))


def test_spectral_set_in_the_window_path() -> None:
    """frame_partials_batch + merge + window_features == twins on the same frames, column by column."""
    fset = get_feature_set("vibration-spectral")
    x = make_rows(5, (6, 3, 512), np.float32)
    rpm = np.full(6, 1800.0)
    tpart, spart = frame_partials_batch(x, 10_000.0, rpm, fset)
    assert tpart.shape == (6, 3, 11) and spart.shape == (6, 3, 7 + len(fset.bands))
    row = window_features(reduce_partials(tpart), fset, reduce_spectral(spart))
    cols = fset.columns(["x", "y", "z"])
    assert len(row) == len(cols) == 3 * 20
    values = dict(zip(cols, row))
    whole = np.ascontiguousarray(np.moveaxis(x, 1, 0).reshape(3, -1))
    t_want = reference.time_features(whole)
    s_want = reference.window_spectral_features(x, 10_000.0, fset.bands, rpm=1800.0)
    for ci, ch in enumerate("xyz"):
        assert values[f"{ch}.rms"] == pytest.approx(t_want[ci, 2], rel=1e-9)
        assert values[f"{ch}.zcr"] == t_want[ci, 9]
        assert values[f"{ch}.band_3000_5000"] == pytest.approx(s_want[ci, 3], rel=1e-4, abs=1e-6)
        assert values[f"{ch}.e1x"] == pytest.approx(s_want[ci, 6], rel=1e-4, abs=1e-6)
    assert frame_partials_batch(x, 10_000.0, rpm, get_feature_set("vibration-basic"))[1] is None
    np.testing.assert_array_equal(tpart, frame_partials(x))


def test_hann_window() -> None:
    w = kernels.hann(8)
    assert w[0] == 0.0 and w[4] == 1.0 and not w.flags.writeable
    assert kernels.hann(8) is w
    with pytest.raises(ValueError):
        kernels.hann(0)


# --------------------------------------------------------------------------- config
def _site(features: dict, rates: tuple[float, ...] = (10_000.0,)) -> SiteConfig:
    return SiteConfig.from_dict({"site": {"id": "p"}, "features": features,
                                 "assets": [{"id": f"a{i}", "sample_rate_hz": r} for i, r in enumerate(rates)]})


def test_config_bands_ok_and_defaults() -> None:
    cfg = _site({"set": "vibration-spectral", "bands": [[0, 100], [100, 2500]]}, (10_000.0, 5_000.0))
    assert cfg.features.bands == [(0.0, 100.0), (100.0, 2500.0)]
    assert _site({"set": "vibration-spectral"}).features.bands is None
    assert _site({}).features.set == "vibration-basic"
    # different bands give a different config hash, so lineage tells the runs apart
    assert _site({"set": "vibration-spectral", "bands": [[0, 10]]}).config_hash != \
        _site({"set": "vibration-spectral", "bands": [[0, 20]]}).config_hash


@pytest.mark.parametrize(
    ("features", "rates", "path", "match"),
    [
        ({"set": "vibration-spectral", "bands": [[0, 100], [50, 200]]}, (10_000.0,), "features.bands[1]", "overlap"),
        ({"set": "vibration-spectral", "bands": [[0, 100], [200, 100]]}, (10_000.0,), "features.bands[1]",
         "lo < hi"),
        ({"set": "vibration-spectral", "bands": [[0, 100], [100, 200], [200, 3000]]}, (10_000.0, 4_000.0),
         "features.bands[2]", "Nyquist frequency of asset a1"),
        ({"set": "vibration-spectral", "bands": []}, (10_000.0,), "features.bands", "at least one"),
        ({"set": "vibration-spectral", "bands": [[-1, 10]]}, (10_000.0,), "features.bands[0]", "lo < hi"),
        ({"set": "vibration-spectral"}, (10_000.0, 8_000.0), "features.bands (the default of vibration-spectral/1)[3]",
         "Nyquist"),
        ({"set": "vibration-basic", "bands": [[0, 10]]}, (10_000.0,), "features.bands", "no spectral columns"),
        ({"set": "vibration-spectrl"}, (10_000.0,), "features.set", "did you mean 'vibration-spectral'"),
        ({"set": "scalar-basic"}, (10_000.0,), "features.set", "waveform set"),
        ({"set": "vibration-spectral", "bands": [[0, 10, 20]]}, (10_000.0,), "features.bands[0]", "at most 2"),
    ],
)
def test_config_bands_errors_name_the_field(features: dict, rates: tuple[float, ...], path: str,
                                            match: str) -> None:
    with pytest.raises(ConfigError) as info:
        _site(features, rates)
    problems = dict(info.value.problems)
    assert path in problems, problems
    assert match in problems[path]
