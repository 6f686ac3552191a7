"""``_kernels.frame_partials_each`` and ``ingest.attach_partials``: every frame's time partials read where the
frame lies instead of from a stack of the poll's frames.

The reference is what it replaces: ``frame_partials(np.stack(frames))``, to the bit (the floats reach the
flow's features, scores and golden files). Frames are decoded views at any byte (``np.frombuffer`` at an
offset, as ``take_frames`` makes them), aligned or not, or views made by hand that are not contiguous.
"""
from __future__ import annotations

import numpy as np
import pytest
from aiotstream._kernels import frame_partials, frame_partials_each
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiotstream.features import frame_partials_batch, get_feature_set
from aiotstream.pdm.ingest import attach_partials
from aiotstream.records import Frame, Position


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint64)


def placed(x: np.ndarray, offset: int, how: str) -> np.ndarray:
    """``x`` (C-contiguous) as a frame's samples: a read-only view at ``offset`` bytes into a bytes object,
    or a view with a stride (``how == "strided"``), or ``x`` itself."""
    if how == "bytes":
        raw = b"\x7f" * offset + x.tobytes()
        return np.frombuffer(raw, dtype=x.dtype, offset=offset).reshape(x.shape)
    if how == "strided":
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


@st.composite
def frame_lists(draw: st.DrawFn) -> list[np.ndarray]:
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(0, 4)), draw(st.integers(1, 70)))
    # mostly ordinary samples, sometimes NaN / +-Inf / constant rows
    elements = st.floats(width=32 if dtype is np.float32 else 64, allow_nan=True, allow_infinity=True) \
        if draw(st.booleans()) else st.floats(-1e3, 1e3, width=32 if dtype is np.float32 else 64)
    xs = draw(st.lists(hnp.arrays(dtype, shape, elements=elements), min_size=1, max_size=6))
    how = st.sampled_from(["bytes", "strided", "self"])
    return [placed(x, draw(st.integers(0, 15)), draw(how)) for x in xs]


@settings(max_examples=400, deadline=None)
@given(frame_lists())
def test_the_partials_are_the_stacks_to_the_bit(frames: list[np.ndarray]) -> None:
    got = frame_partials_each(frames)
    want = frame_partials(np.stack(frames))
    assert got.shape == want.shape == (len(frames),) + frames[0].shape[:1] + (11,)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(bits(got), bits(want))


def test_a_frame_at_every_byte_offset_gives_the_same_floats() -> None:
    x = (np.random.default_rng(3).normal(size=(3, 1024)) * 7 + 2).astype(np.float32)
    want = bits(frame_partials(x[None]))
    for offset in range(16):
        v = placed(x, offset, "bytes")
        np.testing.assert_array_equal(bits(frame_partials_each([v, x])), np.concatenate([want, want]))


@pytest.mark.parametrize(("frames", "error", "says"), [
    ([], ValueError, "at least one array"),
    ([[1.0, 2.0]], TypeError, "item 0 is list"),
    ([np.zeros((1, 4), np.float32), "x"], TypeError, "item 1 is str"),
    ([np.zeros((1, 4), np.int16)], TypeError, "float32 or float64"),
    ([np.zeros((1, 4), ">f8" if np.little_endian else "<f8")], TypeError, "native order"),
    ([np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float64)], TypeError, "item 1 is '<f8'"),
    ([np.zeros(4, np.float32)], ValueError, "item 0 has shape (4,)"),
    ([np.zeros((1, 0), np.float32)], ValueError, "N >= 1"),
    ([np.zeros((2, 4)), np.zeros((1, 4))], ValueError, "item 1 has (1, 4)"),
    ([np.zeros((2, 4)), np.zeros((2, 4, 1))], ValueError, "item 1 has (2, 4, 1)"),
])
def test_what_it_refuses(frames: list, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says.replace("(", r"\(").replace(")", r"\)")):
        frame_partials_each(frames)


def _frames(samples: list[np.ndarray], rate: float = 10_000.0) -> list[Frame]:
    return [Frame(f"a-{i % 3}", i, 1_700_000_000_000_000_000 + i, rate, x, Position("t", 0, i))
            for i, x in enumerate(samples)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("set_name", ["vibration-basic", "vibration-spectral"])
def test_attach_partials_gives_every_frame_the_stacks_partials(dtype: type, set_name: str) -> None:
    """Frames of two shapes and two rates, decoded at odd offsets: each frame's partials (and spectral
    partials) are those of its group's stack, the samples are dropped."""
    rng = np.random.default_rng(7)
    shapes = [(3, 256), (3, 256), (2, 128), (3, 256), (2, 128)]
    xs = [(rng.normal(size=s) * 100).astype(dtype) for s in shapes]
    frames = _frames([placed(x, 1 + i, "bytes") for i, x in enumerate(xs)])
    frames[4] = Frame(frames[4].asset, 4, frames[4].t0_ns, 5_000.0, frames[4].samples, frames[4].pos)
    fs = get_feature_set(set_name)
    attach_partials(frames, fs, {"a-0": 1800.0})
    for group, rate in (([0, 1, 3], 10_000.0), ([2], 10_000.0), ([4], 5_000.0)):
        stack = np.stack([xs[i] for i in group]).astype(np.float64 if dtype is np.float64 else np.float32)
        speeds = np.array([1800.0 if frames[i].asset == "a-0" else np.nan for i in group])
        want_t, want_s = frame_partials_batch(stack, rate, speeds, fs)
        for k, i in enumerate(group):
            assert frames[i].samples is None
            np.testing.assert_array_equal(bits(frames[i].partials), bits(want_t[k]))
            if want_s is None:
                assert frames[i].spectral is None
            else:
                np.testing.assert_array_equal(bits(frames[i].spectral), bits(want_s[k]))
