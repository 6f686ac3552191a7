"""Snapshots without what a detector's state implies (aiotstream.models.packed): a ring's unfilled tail and
the rank test's sorted copy of its reference are left out of a pickle and rebuilt on load, bit for bit."""
from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aiotstream.models import streaming as S
from aiotstream.models.online import ShiftDrift
from aiotstream.models.packed import Packed, pack, unpack

IMPLS = ["python"] + (["compiled"] if S._compiled is not None else [])
SMALL = S.DetectorConfig(warmup=4, halflife=20.0, accept=15, spot_init=10, spot_refit=4, spot_window=30,
                         refresh=3, open_after=2, close_after=3)


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _same_state(a: object, b: object, path: str = "") -> None:
    """Every value of two objects' states equal, arrays and floats by their bits (the kernel aside: it is
    bound to the state arrays again on load)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and _bits_equal(a, b), path
    elif isinstance(a, float):
        assert isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same_state(x, y, f"{path}[{i}]")
    elif hasattr(a, "__dict__") and type(a).__module__.startswith("aiotstream"):
        assert type(a) is type(b), path
        da = {k: v for k, v in vars(a).items() if k != "_kernel"}
        db = {k: v for k, v in vars(b).items() if k != "_kernel"}
        _same_state(da, db, path)
    else:
        assert a == b or (a is None and b is None), path


# ---------------------------------------------------------------------------------------------------
# pack / unpack

@st.composite
def ring_arrays(draw):
    """A 2-d float array with a tail of its fill along one axis and any bits before it."""
    axis = draw(st.sampled_from([0, 1]))
    fill = draw(st.sampled_from([0.0, np.nan, -0.0, 1.5]))
    rows, cols = draw(st.integers(0, 12)), draw(st.integers(0, 5))
    a = np.full((rows, cols), fill)
    body = draw(arrays(np.float64, (rows, cols), elements=st.sampled_from(
        [0.0, -0.0, np.nan, 1.5, -2.25, np.inf, 5e-324]) | st.floats(allow_nan=True, width=64)))
    used = draw(st.integers(0, a.shape[axis]))
    if axis == 0:
        a[:used] = body[:used]
    else:
        a[:, :used] = body[:, :used]
    if draw(st.booleans()) and a.size:  # a NaN whose payload is not the fill's
        a.view(np.uint64)[draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))] = 0x7FF8000000000001
    return a, fill, axis


@settings(max_examples=300, deadline=None)
@given(ring_arrays())
def test_unpack_gives_back_the_packed_array_bit_for_bit(case) -> None:
    a, fill, axis = case
    before = a.copy()
    packed = pack(a, fill, axis)
    p = pickle.loads(pickle.dumps(packed))
    b = unpack(p)
    assert _bits_equal(b, a) and _bits_equal(a, before)  # (and pack left its input alone)
    assert b.flags.c_contiguous and b.flags.writeable and b is not a
    if isinstance(p, Packed):  # what was cut held the fill's bits throughout
        k = p.head.shape[axis]
        assert k < a.shape[axis]
        tail = a[k:] if axis == 0 else a[:, k:]
        assert _bits_equal(tail, np.full(tail.shape, fill))
        if k:
            edge = a[k - 1] if axis == 0 else a[:, k - 1]
            assert not _bits_equal(edge, np.full(edge.shape, fill))
    else:  # nothing to cut: the last row or column holds something else (or there is none)
        assert packed is a
        if a.shape[axis] and a.shape[1 - axis]:
            last = a[-1] if axis == 0 else a[:, -1]
            assert not _bits_equal(last, np.full(last.shape, fill))


def test_a_full_ring_is_pickled_as_it_is() -> None:
    a = np.arange(12.0).reshape(6, 2)
    assert pack(a, 0.0) is a and unpack(a) is a
    assert isinstance(pack(np.zeros((3, 2)), 0.0), Packed) and pack(np.zeros((3, 2)), 0.0).head.shape == (0, 2)


# ---------------------------------------------------------------------------------------------------
# the detectors

@st.composite
def streams(draw):
    """Rows with ties (a quantum), exact zeros of both signs, holes, shifts; relevel() at some rows."""
    seed = draw(st.integers(0, 2**32 - 1))
    rows, n = draw(st.integers(1, 140)), draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n)) * rng.uniform(0.1, 3.0, n)
    if draw(st.booleans()):
        x = np.round(x / 0.5) * 0.5  # ties, and zeros
    if draw(st.booleans()):
        x[rng.random((rows, n)) < 0.1] = -0.0
    if draw(st.booleans()):
        x[rng.random((rows, n)) < 0.05] = np.nan
    if rows > 10 and draw(st.booleans()):
        x[rows // 2:, 0] += 8.0
    relevels = draw(st.sets(st.integers(1, max(rows - 1, 1)), max_size=2))
    return x, sorted(relevels), draw(st.integers(0, rows))


def _run(det: S.StreamingDetector, x: np.ndarray, relevels: list[int], a: int, b: int) -> list[np.ndarray]:
    out, cuts = [], [c for c in relevels if a < c < b]
    for lo, hi in zip([a, *cuts], [*cuts, b]):
        r = det.update_block(x[lo:hi])
        out += [r.p, r.alert, r.z]
        if hi in relevels:
            det.relevel()
    return out


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=60, deadline=None)
@given(case=streams())
def test_a_detector_pickled_anywhere_comes_back_with_the_same_state_and_goes_on_the_same(impl: str,
                                                                                         case) -> None:
    x, relevels, cut = case
    n = x.shape[1]
    whole = S.make_pipeline("default", n, SMALL, impl=impl)
    det = S.make_pipeline("default", n, SMALL, impl=impl)
    first = _run(det, x, relevels, 0, cut)
    back = pickle.loads(pickle.dumps(det))
    _same_state(det, back)
    rest = _run(back, x, relevels, cut, len(x))
    want = _run(whole, x, relevels, 0, len(x))
    got = first + rest
    for f in range(3):
        w = np.concatenate(want[f::3]) if want else np.zeros(0)
        g = np.concatenate(got[f::3]) if got else np.zeros(0)
        assert _bits_equal(g, w)
    _same_state(whole, back)


def _reference(rank: S.RankTest, rows: int, rng: np.random.Generator, values: np.ndarray | None = None) -> None:
    for v in (values if values is not None else rng.normal(size=rows)):
        rank._learn(0, float(v))


def test_the_rank_tests_sorted_copy_is_left_out_and_rebuilt() -> None:
    rng = np.random.default_rng(1)
    for rows in (0, 7, SMALL.spot_window, 3 * SMALL.spot_window + 5):  # empty, young, just full, wrapped
        rank = S.RankTest(1, SMALL)
        _reference(rank, rows, rng, np.round(rng.normal(size=rows), 1))  # (ties)
        state = rank.__getstate__()
        assert state["srt"] is None
        back = pickle.loads(pickle.dumps(rank))
        _same_state(vars(rank), vars(back))


def test_a_reference_holding_minus_zero_keeps_its_sorted_copy() -> None:
    """0.0 and -0.0 are equal and a sort may order them otherwise than the insertions did: the copy
    is kept as it is."""
    rank = S.RankTest(1, SMALL)
    _reference(rank, 0, np.random.default_rng(0), np.array([0.0, 1.0, -0.0, 0.0, -1.0, -0.0]))
    assert rank.__getstate__()["srt"] is not None
    back = pickle.loads(pickle.dumps(rank))
    _same_state(vars(rank), vars(back))


@pytest.mark.parametrize("spoil", ["order", "values", "tail"])
def test_a_sorted_copy_that_is_not_the_sorted_reference_is_kept_as_it_is(spoil: str) -> None:
    """The check before leaving the copy out: any copy that the rebuild would not give back (out of
    order, other values, values after the reference: a reset's leftovers) is pickled whole."""
    rank = S.RankTest(1, SMALL)
    _reference(rank, 12, np.random.default_rng(2))
    f = int(rank.fill[0])
    if spoil == "order":
        rank.srt[0, [0, f - 1]] = rank.srt[0, [f - 1, 0]]
    elif spoil == "values":
        rank.srt[0, 3] = np.nextafter(rank.srt[0, 3], rank.srt[0, 4])
    else:
        rank.reset(0)
        _reference(rank, 5, np.random.default_rng(3))
    assert rank.__getstate__()["srt"] is not None
    back = pickle.loads(pickle.dumps(rank))
    _same_state(vars(rank), vars(back))


def test_a_snapshot_of_before_with_whole_arrays_still_loads() -> None:
    rng = np.random.default_rng(4)
    for obj in (S.RankTest(2, SMALL), S.SpotBank(2, SMALL), ShiftDrift(["a", "b"])):
        if isinstance(obj, S.RankTest):
            _reference(obj, 9, rng)
        elif isinstance(obj, S.SpotBank):
            obj.update(np.abs(rng.normal(size=2)))
        else:
            obj.update(rng.normal(size=2))
        old = type(obj).__new__(type(obj))
        old.__setstate__(dict(vars(obj)))  # as a pickle of before gives it: every array whole
        _same_state(vars(obj), vars(old))


def test_a_young_scalar_assets_detector_pickles_small_and_a_full_one_without_its_sorted_copy() -> None:
    """One channel, the default configuration, as a scalar asset's detector: 40 rows pickle in a
    fraction of the rings' size; after spot_window rows the sorted copy is still left out."""
    rng = np.random.default_rng(5)
    cfg = S.DetectorConfig()
    ring = 8 * cfg.spot_window
    impl = IMPLS[-1]
    young = S.make_pipeline("default", 1, impl=impl)
    young.update_block(rng.normal(size=(40, 1)))
    assert len(pickle.dumps(young)) < ring
    full = S.make_pipeline("default", 1, impl=impl)
    full.update_block(rng.normal(size=(cfg.spot_window + cfg.close_after + 10, 1)))
    assert int(full.rank.fill[0]) == cfg.spot_window
    assert full.rank.__getstate__()["srt"] is None
    # (its state as a plain dict: every array whole; a pickle of the object names its class, 40 bytes)
    assert len(pickle.dumps(vars(full.rank))) - len(pickle.dumps(full.rank)) >= ring - 64
    _same_state(full, pickle.loads(pickle.dumps(full)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 400), cut=st.integers(0, 400))
def test_a_drift_watch_pickled_anywhere_comes_back_the_same_and_fires_the_same(seed: int, rows: int,
                                                                              cut: int) -> None:
    """The watch's ring (reference + recent rows, NaN as allocated) pickles its filled rows only; a row
    of NaN that came as input is the fill's bits too and comes back the same."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    x[rows // 2:, 1] += 6.0
    x[rng.random(rows) < 0.05] = np.nan
    whole, watch = ShiftDrift(["a", "b"]), ShiftDrift(["a", "b"])
    want = [whole.update(r) for r in x]
    cut = min(cut, rows)
    got = [watch.update(r) for r in x[:cut]]
    if cut == 0:  # (no row yet: no ring)
        assert watch._buf is None and watch.__getstate__()["_buf"] is None
    elif cut < watch._buf.shape[0]:
        assert isinstance(watch.__getstate__()["_buf"], Packed)
    back = pickle.loads(pickle.dumps(watch))
    _same_state(watch, back)
    got += [back.update(r) for r in x[cut:]]
    assert got == want
    _same_state(whole, back)


@st.composite
def references(draw):
    """A rank test's ring, fill and sorted copy: right, or spoilt in one of the ways a rebuild would not give
    back (out of order, a value changed by one ulp or swapped for another, leftovers after the fill, a
    -0.0 in the reference)."""
    n, size = draw(st.integers(1, 3)), draw(st.integers(1, 12))
    vals = st.sampled_from([0.0, 1.0, -1.0, 2.5, 1e-300, -7.0]) | st.floats(-1e6, 1e6)
    ring = np.array(draw(st.lists(st.lists(vals, min_size=size, max_size=size), min_size=n, max_size=n)),
                    dtype=np.float64).reshape(n, size)
    fill = np.array(draw(st.lists(st.integers(0, size), min_size=n, max_size=n)), dtype=np.int64)
    srt = np.zeros_like(ring)
    for j, f in enumerate(fill):
        ring[j, f:] = draw(st.sampled_from([0.0, 3.0]))  # (a reset's leftovers in the ring do not matter)
        srt[j, :f] = np.sort(ring[j, :f])
    j = draw(st.integers(0, n - 1))
    f = int(fill[j])
    spoil = draw(st.sampled_from(["none", "swap", "ulp", "other", "tail", "minus-zero"]))
    if spoil == "swap" and f >= 2:
        srt[j, [0, f - 1]] = srt[j, [f - 1, 0]]
    elif spoil == "ulp" and f:
        srt[j, f - 1] = np.nextafter(srt[j, f - 1], np.inf)
    elif spoil == "other" and f:
        srt[j, draw(st.integers(0, f - 1))] = draw(vals)
    elif spoil == "tail" and f < size:
        srt[j, f] = draw(st.sampled_from([1.0, -0.0]))
    elif spoil == "minus-zero" and f:
        i = draw(st.integers(0, f - 1))
        ring[j, i] = -0.0
        srt[j, :f] = np.sort(ring[j, :f])
    return ring, srt, fill


@settings(max_examples=400, deadline=None)
@given(references())
def test_the_sorted_copy_check_says_whether_a_sort_gives_the_copy_back(case) -> None:
    """What the check says (kernel and numpy twin alike): True exactly when a sort of the reference gives
    the copy back bit for bit with zeros after it and the reference holds no -0.0 (of which a sort may
    not keep the order)."""
    ring, srt, fill = case
    rebuilt = np.zeros_like(ring)
    for j, f in enumerate(fill):
        rebuilt[j, :f] = np.sort(ring[j, :f])
    minus_zero = any((ring[j, :f].view(np.uint64) == 0x8000000000000000).any() for j, f in enumerate(fill))
    want = _bits_equal(rebuilt, srt) and not minus_zero
    assert S._sorted_copy_of(ring, srt, fill) is want
    if S._compiled is not None:
        assert S._compiled.sorted_copy_of(ring, srt, fill) is want


def test_a_readings_only_asset_holds_no_drift_ring() -> None:
    """The drift watch's ring (reference + recent rows x the window features) is made at its first row:
    an asset whose windows carry no features (scalar readings only) never makes it (30 KB an asset)."""
    from aiotstream.config import SiteConfig
    from aiotstream.pdm.asset import AssetAnalyzer
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import Position, Reading

    cfg = SiteConfig.model_validate({"site": {"id": "m"}, "assets": [{"id": "p1", "channels": ["v"]}],
                                     "inputs": {"topics": ["t"], "tail": False}, "scalar": {"readings_only": True}})
    a = AssetAnalyzer(SiteRuntime(cfg), "p1")
    t0 = 1_767_225_600_000_000_000
    outs = a.on_items([Reading("p1", t0 + k * 10**8, "v", 20.0 + (k % 7) * 0.1, Position("t", 0, k))
                       for k in range(600)], None)
    assert any(o.kind == "scalar" for o in outs + a.flush())
    assert a.drift is not None and a.drift._buf is None
    back = pickle.loads(pickle.dumps(a.drift))
    assert back._buf is None and back.update(np.zeros(len(back.columns))) == [] and back._buf is not None
    assert back._buf.shape == (back.reference + back.recent, len(back.columns))
