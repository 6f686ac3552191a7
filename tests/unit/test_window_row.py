"""A window's feature row in one kernel pass (``_kernels.window_row``) is the general path's to the bit.

Every window of every asset builds its feature row when windows close, all assets in the same burst: the
frames' partials merged in order, each channel's features, the set's columns, the asset's last temperatures.
``window_row`` does that in one call; whatever the frames (any count, channels, lengths; NaN, infinities,
constants, zeros, empty frames) and whichever time-domain set, its row must be the one that
``np.concatenate([window_features(reduce_partials(np.array(parts)), fs), temps])`` gives, and it must hand
anything else back to that path (None) rather than guess.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.features import (
    TIME_FEATURES,
    FeatureSet,
    frame_partials,
    get_feature_set,
    reduce_partials,
    time_columns_kept,
    window_features,
    window_row,
)

SETS = (get_feature_set("vibration-basic"), FeatureSet("demo", 1, ("max", "mean")),
        FeatureSet("one", 1, ("kurtosis",)), FeatureSet("all-reversed", 1, tuple(reversed(TIME_FEATURES))))
ODD = st.sampled_from((0.0, -0.0, math.nan, math.inf, -math.inf, 1e-300, 3e38, -1.0, 7.0))


def _general(parts: list[np.ndarray] | tuple[np.ndarray, ...], fs: FeatureSet, temps: tuple[float, float]) -> np.ndarray:
    return np.concatenate([window_features(reduce_partials(np.array(parts)), fs, None), np.asarray(temps)])


@st.composite
def _window(draw: st.DrawFn) -> tuple[list[np.ndarray] | tuple[np.ndarray, ...], FeatureSet, tuple[float, float]]:
    channels, frames = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from((np.float32, np.float64)))
    parts = []
    for _ in range(frames):
        n = draw(st.sampled_from((1, 2, 17, 1024)))
        x = (rng.standard_normal((channels, n)) * draw(st.sampled_from((1.0, 1e-6, 1e6)))).astype(dtype)
        if draw(st.booleans()):
            for _ in range(draw(st.integers(1, 3))):
                x[draw(st.integers(0, channels - 1)), draw(st.integers(0, n - 1))] = draw(ODD)
        if draw(st.booleans()):
            x[draw(st.integers(0, channels - 1))] = draw(ODD)  # a constant (or dead) channel
        parts.append(frame_partials(x))
    if draw(st.booleans()):  # an empty accumulator among the frames (n == 0): the identity of the merge
        parts.insert(draw(st.integers(0, len(parts))), reduce_partials(np.zeros((0, channels, 11))))
    temps = (draw(st.sampled_from((math.nan, 50.25, -0.0))), draw(st.sampled_from((math.nan, 51.0, 1e300))))
    return (tuple(parts) if draw(st.booleans()) else parts), draw(st.sampled_from(SETS)), temps  # (windows hold either)


@settings(max_examples=300, deadline=None)
@given(_window())
def test_the_row_is_the_general_paths_to_the_bit(case: tuple[list | tuple, FeatureSet, tuple]) -> None:
    parts, fs, temps = case
    row = window_row(parts, time_columns_kept(fs), *temps)
    want = _general(parts, fs, temps)
    assert row is not None
    assert row.dtype == want.dtype and row.shape == want.shape
    assert row.tobytes() == want.tobytes()


def test_the_columns_kept() -> None:
    assert time_columns_kept(SETS[0]) is None
    assert time_columns_kept(SETS[1]).tolist() == [TIME_FEATURES.index("max"), TIME_FEATURES.index("mean")]
    assert time_columns_kept(SETS[3]).tolist() == list(range(11, -1, -1))


def _parts(channels: int = 3, frames: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [frame_partials(rng.standard_normal((channels, 64))) for _ in range(frames)]


@pytest.mark.parametrize("bad", [
    [],
    _parts()[:1] + [_parts(channels=2)[0]],  # channels differ between frames
    [p.astype(np.float32) for p in _parts()],
    [np.asfortranarray(np.tile(p, (1, 1))) if i == 1 else p for i, p in enumerate(_parts(channels=3))],
    [p[:, :10].copy() for p in _parts()],  # not the 11 partial columns
    [p.reshape(-1) for p in _parts()],
    [np.zeros((0, 11))],
    [p.tolist() for p in _parts()],
])
def test_anything_else_goes_back_to_the_general_path(bad: list) -> None:
    assert window_row(bad, None, 1.0, 2.0) is None


def test_a_feature_index_out_of_range_goes_back_too() -> None:
    assert window_row(_parts(), np.array([0, 12], dtype=np.intp), 1.0, 2.0) is None
    assert window_row(_parts(), np.array([-1], dtype=np.intp), 1.0, 2.0) is None
