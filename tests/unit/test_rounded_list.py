"""``_kernels.rounded_list``: a row of values rounded as Python's ``round`` rounds them, bit for bit.

The reference is the list comprehension it replaces in the score record (``None`` for NaN, else
``round(v, ndigits)``). Floats are compared by their hex form, so -0.0 and 0.0 differ, as they do in the JSON.
The values that matter most are the ones next to a half: there the kernel must hand over to Python's
``round``, whose decimal digits decide.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from aiotstream._kernels import rounded_list
from hypothesis import example, given, settings
from hypothesis import strategies as st


def reference(values: list[float], ndigits: int) -> list[float | None]:
    return [None if math.isnan(v) else round(v, ndigits) for v in values]


def exact(values: list[float | None]) -> list[str | None]:
    return [None if v is None else float(v).hex() for v in values]


def check(values: list[float], ndigits: int) -> None:
    got = rounded_list(np.array(values, dtype=np.float64), ndigits)
    assert type(got) is list and all(v is None or type(v) is float for v in got)
    assert exact(got) == exact(reference(values, ndigits)), (values, ndigits)


@settings(max_examples=400)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True), max_size=40),
       st.integers(0, 15))
@example([0.5, 1.5, 2.5, -0.5, -2.5, 0.125, 0.375], 0)  # ties to even, in binary
@example([2.5e-6, 1.5e-6, -3.5e-6, 0.0000125, 5e-7, -5e-7], 6)
@example([-4e-7, -0.0, 0.0, 4e-7, 5e-324, -5e-324], 6)  # rounded to zero keeps its sign
@example([4503599627370495.5, 4503599627370496.0, 1e300, -1e300, math.inf, -math.inf], 6)
def test_any_floats_round_as_python_rounds_them(values: list[float], ndigits: int) -> None:
    check(values, ndigits)


@settings(max_examples=400)
@given(st.integers(-10**12, 10**12), st.integers(0, 15), st.integers(-6, 6))
def test_values_a_few_ulps_from_a_half_round_as_python_rounds_them(k: int, ndigits: int, ulps: int) -> None:
    """(k + 1/2) / 10**ndigits is a decimal half; the nearest doubles and their neighbours fall on either side of
    it, and the product with 10**ndigits may round onto it. Only Python's digits know which side is right."""
    v = (k + 0.5) / 10**ndigits
    for _ in range(abs(ulps)):
        v = math.nextafter(v, math.copysign(math.inf, ulps))
    check([v, -v], ndigits)


@settings(max_examples=300)
@given(st.lists(st.floats(min_value=2.0**22, max_value=2.0**80) | st.floats(min_value=-2.0**80, max_value=-2.0**22),
                min_size=1, max_size=40), st.integers(0, 15))
def test_large_values_round_as_python_rounds_them(values: list[float], ndigits: int) -> None:
    """Where ``v * 10**ndigits`` passes 2**52 the product can round across a half (and its quotient back need
    not be ``v``): only Python's ``round`` is right there."""
    check(values, ndigits)


@settings(max_examples=200)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=40), st.integers(0, 15))
def test_float32_rows_round_as_their_python_floats(values: list[float], ndigits: int) -> None:
    x = np.array(values, dtype=np.float32)
    assert exact(rounded_list(x, ndigits)) == exact(reference(x.tolist(), ndigits))


def test_every_near_half_of_six_digits_in_a_range_rounds_as_python_rounds_it() -> None:
    """Exhaustive over a stretch: every decimal half m + 0.5 (in units of 1e-6) for m < 200,000 and its two
    neighbouring doubles on each side -- where y = v * 1e6 lands within an ulp of a half most often."""
    m = np.arange(-200_000, 200_000, dtype=np.float64)
    v = (m + 0.5) / 1e6
    rows = [v, np.nextafter(v, np.inf), np.nextafter(v, -np.inf),
            np.nextafter(np.nextafter(v, np.inf), np.inf), np.nextafter(np.nextafter(v, -np.inf), -np.inf)]
    for x in rows:
        assert exact(rounded_list(x, 6)) == exact(reference(x.tolist(), 6))


def test_nan_is_none_and_the_row_keeps_its_length() -> None:
    assert rounded_list(np.array([math.nan, 1.0000004, math.nan]), 6) == [None, 1.0, None]
    assert rounded_list(np.array([], dtype=np.float64), 6) == []


@pytest.mark.parametrize("ndigits", [-1, 16, 300])
def test_ndigits_beyond_the_exact_powers_of_ten_is_refused(ndigits: int) -> None:
    with pytest.raises(ValueError, match="ndigits must be 0..15"):
        rounded_list(np.array([1.0]), ndigits)
