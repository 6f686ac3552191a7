"""The compiled kernel's selection (``_select``, behind every SPOT re-fit's quantile) against numpy's
quantile, exactly, on windows of every size class it handles differently (short parts sorted by
insertion, partitions, parts made lopsided by ties) and through a kept bracket as the re-fits use it."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
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
