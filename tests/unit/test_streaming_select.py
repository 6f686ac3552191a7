"""The compiled kernel's selection (``_select``, behind every SPOT re-fit's quantile) against numpy's
quantile, exactly, on windows of every size class it handles differently (short parts sorted by
insertion, partitions, parts made lopsided by ties) and through a kept bracket as the re-fits use it."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

C = pytest.importorskip("aiotstream._streaming")


@st.composite
def windows(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "ties", "few", "constant", "sorted", "reversed", "zeros_tail"]))
    n = draw(st.sampled_from([1, 2, 3, 15, 16, 17, 40, 100, 511, 512, 700, 3600]))
    if kind == "ties":
        a = rng.integers(0, 6, n).astype(float)
    elif kind == "few":
        a = rng.choice([-1.0, 0.0, 2.5], n)
    elif kind == "constant":
        a = np.full(n, 3.0)
    elif kind == "sorted":
        a = np.sort(rng.normal(size=n))
    elif kind == "reversed":
        a = np.sort(rng.normal(size=n))[::-1].copy()
    elif kind == "zeros_tail":  # many equal values with a few larger ones (a statistic that is mostly 0)
        a = np.where(rng.random(n) < 0.8, 0.0, rng.exponential(size=n))
    else:
        a = rng.normal(size=n)
    return a, draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.98, 0.999, 1.0]))


@settings(max_examples=400, deadline=None)
@given(w=windows())
def test_compiled_quantile_is_numpys_exactly(w) -> None:
    a, q = w
    # one window (no bracket kept), then the same window through the bracket its fit kept
    assert C.quantiles_hinted([a, a], q) == [np.quantile(a, q)] * 2


@st.composite
def filter_inputs(draw):
    """A window's values and the bounds a re-fit's passes compare them with, drawn from one small pool (so
    values equal the bounds often) or as any floats: NaN, infinities, signed zeros, subnormals; lengths
    on both sides of the vector widths (4, 8) and their tails; a bracket upside down too."""
    special = [0.0, -0.0, 1.0, -1.0, 2.5, 5e-324, float("inf"), float("-inf"), float("nan")]
    if draw(st.booleans()):
        pool = draw(st.lists(st.sampled_from(special) | st.floats(-10, 10), min_size=1, max_size=5))
        value = st.sampled_from(pool)
    else:
        value = st.floats(allow_nan=True, allow_infinity=True)
    n = draw(st.integers(0, 70))  # (a list strategy's sizes run short: most would miss the vector loops)
    a = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
    lo, hi = draw(value), draw(value)
    return a, lo, hi


@pytest.mark.parametrize("level", [0, 1, 2])
@settings(max_examples=300, deadline=None)
@given(w=filter_inputs())
def test_compiled_refit_passes_keep_the_same_values_on_every_simd_path(level: int, w) -> None:
    """The bracket and excess passes (scalar, AVX2 with its permutation table, AVX-512 compress) keep
    exactly the values the plain loops kept, in their order, bit for bit (NaN payloads and zero signs
    included), and count the values below the bracket."""
    if C.set_simd_level(level) != level:
        C.set_simd_level(C.SIMD_LEVEL)
        pytest.skip(f"SIMD path {level} not available on this CPU/build (best: {C.SIMD_LEVEL})")
    a, lo, hi = w
    try:
        below, kept = C.bracket_filter(a, lo, hi)
        excess = C.excess_filter(a, lo)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)
    vals = a.tolist()
    assert below == sum(v < lo for v in vals)
    want = np.array([v for v in vals if not v < lo and not v > hi], dtype=np.float64)
    assert kept.tobytes() == want.tobytes(), (kept, want)
    want = np.array([v - lo for v in vals if v > lo], dtype=np.float64)
    assert excess.tobytes() == want.tobytes(), (excess, want)


@pytest.mark.parametrize("level", [0, 1, 2])
@settings(max_examples=100, deadline=None)
@given(w=windows())
def test_compiled_quantile_is_numpys_exactly_on_every_simd_path(level: int, w) -> None:
    """Through a kept bracket (the bracket pass) on each SIMD path the CPU has."""
    if C.set_simd_level(level) != level:
        C.set_simd_level(C.SIMD_LEVEL)
        pytest.skip(f"SIMD path {level} not available on this CPU/build (best: {C.SIMD_LEVEL})")
    a, q = w
    try:
        got = C.quantiles_hinted([a, a, a[::-1].copy()], q)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)
    assert got == [np.quantile(a, q)] * 3


@pytest.mark.parametrize("level", [0, 1, 2])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_compiled_kth_through_any_bracket_is_the_sorted_pair(level: int, data) -> None:
    """Ranks k and k + 1 through a bracket of the window's own values: where rank k lies in it, the
    sorted pair, the upper one also when it lies above the bracket (rank k the bracket's top); where
    it does not, None."""
    if C.set_simd_level(level) != level:
        C.set_simd_level(C.SIMD_LEVEL)
        pytest.skip(f"SIMD path {level} not available on this CPU/build (best: {C.SIMD_LEVEL})")
    vals = data.draw(st.lists(st.integers(-5, 5).map(float) | st.floats(-1e6, 1e6), min_size=2, max_size=60))
    srt = sorted(vals)
    i, j = sorted(data.draw(st.lists(st.integers(0, len(vals) - 1), min_size=2, max_size=2)))
    lo, hi = srt[i], srt[j]
    k = data.draw(st.sampled_from(sorted({max(0, min(len(vals) - 2, r)) for r in (i - 1, i, j - 1, j, j + 1)})))
    try:
        got = C.kth_between(vals, k, lo, hi)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)
    below = sum(v < lo for v in vals)
    inside = sum(lo <= v <= hi for v in vals)
    if below <= k < below + inside:
        assert got == (srt[k], srt[k + 1])
    else:
        assert got is None


@pytest.mark.parametrize("level", [0, 1, 2])
@settings(max_examples=300, deadline=None)
@given(w=filter_inputs(), stride=st.sampled_from([1, 1, 2, 3]))
def test_compiled_refit_min_max_is_the_plain_loops_on_every_simd_path(level: int, w, stride: int) -> None:
    """A re-fit's min and max of its window (vector lanes, four scalar lanes, a strided column copied):
    what `if v < lo: lo = v elif v > hi: hi = v` from the first value finds, a first NaN kept and a later
    one passed over; only a zero's sign may differ (nothing reads it)."""
    a = w[0]
    assume(a.size)
    if C.set_simd_level(level) != level:
        C.set_simd_level(C.SIMD_LEVEL)
        pytest.skip(f"SIMD path {level} not available on this CPU/build (best: {C.SIMD_LEVEL})")
    try:
        lo, hi, copy = C.min_max(a, stride)
    finally:
        C.set_simd_level(C.SIMD_LEVEL)
    vals = a[::stride].tolist()
    want_lo = want_hi = vals[0]
    for v in vals[1:]:
        if v < want_lo:
            want_lo = v
        elif v > want_hi:
            want_hi = v
    for got, want in ((lo, want_lo), (hi, want_hi)):
        assert got == want or (math.isnan(got) and math.isnan(want)), (got, want)
    if stride == 1:
        assert copy is None
    else:
        assert copy.tobytes() == a[::stride].tobytes()
