"""``_kernels.sample_range`` and ``ingest.extremes``: a frame's non-finite count, min and max in one pass.

The references are what they replace: ``np.count_nonzero(~np.isfinite(x))`` in the frame decoder, and
``x.min()``/``x.max()`` compared with ``inputs.max_abs_value`` in the ingest's range check -- numpy scalars of
the frame's dtype, so a float32 sample is compared as numpy compares it (NEP 50: the limit is cast to float32)
and a NaN anywhere makes both NaN.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from aiotstream._kernels import sample_range
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiotstream.pdm.ingest import extremes

DTYPES = st.sampled_from([np.float32, np.float64, np.int16])
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40)


def frames(dtype: type, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    if dtype is np.int16:
        return hnp.arrays(dtype, shape)
    # mostly ordinary samples, sometimes NaN / +-Inf / extremes anywhere (first sample included)
    elements = st.floats(width=32 if dtype is np.float32 else 64, allow_nan=True, allow_infinity=True)
    return hnp.arrays(dtype, shape, elements=elements)


def same(a: object, b: object) -> bool:
    """Equal values of one type, NaN equal to NaN."""
    return type(a) is type(b) and (a == b or bool(np.isnan(a) and np.isnan(b)))  # type: ignore[call-overload]


@settings(max_examples=400)
@given(st.data(), DTYPES, SHAPES)
def test_the_count_min_and_max_are_numpys(data: st.DataObject, dtype: type, shape: tuple[int, ...]) -> None:
    x = data.draw(frames(dtype, shape))
    bad, lo, hi = sample_range(x)
    nonfinite = 0 if dtype is np.int16 else int(np.count_nonzero(~np.isfinite(x)))
    assert bad == nonfinite
    assert type(lo) is float and type(hi) is float
    assert same(lo, float(x.min())) and same(hi, float(x.max()))


@settings(max_examples=300)
@given(st.data(), DTYPES, SHAPES, st.floats(1e3, 1e100) | st.sampled_from([1000.1, 32767.0, 32768.0, 3.4e38]))
def test_extremes_judge_the_range_as_numpys_min_and_max_did(data: st.DataObject, dtype: type,
                                                            shape: tuple[int, ...], lim: float) -> None:
    """The ingest's check, before and after: the same verdict for every frame and limit (a float32 sample just
    past a limit that float32 cannot hold; NaN samples, which pass it, as they did)."""
    x = data.draw(frames(dtype, shape))
    with np.errstate(over="ignore"):  # (a limit past float32's range is inf as a float32, before and after)
        if dtype is not np.int16 and data.draw(st.booleans()):  # samples at the limit's float32 neighbours
            near = np.array([lim], dtype=dtype)
            x.flat[data.draw(st.integers(0, x.size - 1))] = np.nextafter(near, np.array(np.inf, dtype))[0]
        lo, hi = extremes(x)
        assert same(lo, x.min()) and same(hi, x.max())
        assert bool(hi > lim or lo < -lim) == bool(x.max() > lim or x.min() < -lim)


@given(st.data(), DTYPES)
def test_extremes_of_a_strided_or_other_frame_fall_back_to_numpy(data: st.DataObject, dtype: type) -> None:
    x = data.draw(frames(dtype, (4, 6)))[:, ::2]  # not C-contiguous: the kernel refuses it
    with pytest.raises(ValueError, match="C-contiguous"):
        sample_range(x)
    assert all(same(a, b) for a, b in zip(extremes(x), (x.min(), x.max())))
    u = np.arange(5, dtype=np.uint8)
    with pytest.raises(TypeError, match="float32, float64 or int16"):
        sample_range(u)
    assert extremes(u) == (0, 4)


def test_a_nan_anywhere_makes_both_nan_and_the_infinities_count() -> None:
    x = np.array([[1.0, 2.0, np.nan], [-np.inf, 5.0, 0.0]], np.float32)
    bad, lo, hi = sample_range(x)
    assert bad == 2 and math.isnan(lo) and math.isnan(hi)
    assert sample_range(np.array([np.nan, 1.0]))[1:] != sample_range(np.array([np.nan, 1.0]))[1:]  # NaN, NaN
    assert sample_range(np.array([3.0, -np.inf, np.inf])) == (2, -math.inf, math.inf)
    assert sample_range(np.array([-32768, 7], np.int16)) == (0, -32768.0, 7.0)
    with pytest.raises(ValueError):
        sample_range(np.zeros((3, 0), np.float32))


@settings(max_examples=200)
@given(st.data(), DTYPES, st.integers(1, 7), st.integers(1, 300))
def test_samples_at_any_byte_offset_are_read_right(data: st.DataObject, dtype: type, offset: int, n: int) -> None:
    """A decoded frame's samples start right after its 38-byte header and its asset id: at any byte, not
    aligned for their dtype (the kernel reads each with memcpy)."""
    x = data.draw(frames(dtype, (n,)))
    view = np.frombuffer(b"\0" * offset + x.tobytes(), dtype=dtype, offset=offset)
    assert not view.flags.aligned or offset % np.dtype(dtype).itemsize == 0
    bad, lo, hi = sample_range(view)
    assert bad == (0 if dtype is np.int16 else int(np.count_nonzero(~np.isfinite(x))))
    assert same(lo, float(x.min())) and same(hi, float(x.max()))
