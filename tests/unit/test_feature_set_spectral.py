"""``FeatureSet.spectral``: one set operation now (it is read several times per closed window), the same answer as
the scan of the column names it replaces, for every set ``__post_init__`` accepts."""
from __future__ import annotations

from itertools import pairwise

from hypothesis import assume, given
from hypothesis import strategies as st

from aiotstream.features.sets import (
    SCALAR,
    SCALAR_FEATURES,
    SPECTRAL_FEATURES,
    TIME_FEATURES,
    WAVEFORM,
    FeatureSet,
    band_name,
)


def scanned(fs: FeatureSet) -> bool:
    return fs.kind == WAVEFORM and any(f in SPECTRAL_FEATURES or f.startswith("band_") for f in fs.per_channel)


@st.composite
def waveform_sets(draw: st.DrawFn) -> FeatureSet:
    edges = draw(st.lists(st.integers(0, 5000), unique=True, max_size=5).map(sorted))
    bands = tuple((float(a), float(b)) for a, b in pairwise(edges))
    names = tuple(band_name(lo, hi) for lo, hi in bands)
    time = draw(st.lists(st.sampled_from(TIME_FEATURES), unique=True, max_size=4))
    spec = draw(st.lists(st.sampled_from(SPECTRAL_FEATURES), unique=True, max_size=3))
    cols = tuple(time) + names + tuple(spec)
    assume(cols)
    return FeatureSet("s", 1, cols, bands=bands)


@given(waveform_sets())
def test_a_waveform_set_is_spectral_exactly_when_a_column_needs_the_spectral_kernel(fs: FeatureSet) -> None:
    assert fs.spectral == scanned(fs)
    assert fs.all_columns[:len(TIME_FEATURES)] == TIME_FEATURES
    assert (len(fs.all_columns) > len(TIME_FEATURES)) == fs.spectral


@given(st.lists(st.sampled_from(SCALAR_FEATURES), unique=True, min_size=1))
def test_a_scalar_set_is_never_spectral(cols: list[str]) -> None:
    fs = FeatureSet("s", 1, tuple(cols), kind=SCALAR)
    assert fs.spectral is False == scanned(fs)
