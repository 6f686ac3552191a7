"""The calibrated window detector's compiled step (``ext/_streaming.pyx``: ``calibrated_step``) is its Python
reference (``CalibratedWindowDetector._compiled = False``) to the bit.

Every window of every asset goes through this step when windows close, all assets in the same burst, so
it is compiled; it must not change a single decision or learnt value. Whatever the rows (healthy noise, load
changes that move every channel, faults on one channel, missing values now and then, columns that never come,
non-finite and extreme values, signed zeros, constants) and whatever the columns (three channels, one, none;
with and without shape features), the score, ``p``, the alert, the transitions and every array of the
detector's state must be the reference's after every window.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.models import window as window_mod
from aiotstream.models.window import CalibratedWindowDetector

FEATS = ("mean", "std", "rms", "min", "max", "p2p", "crest", "skewness", "kurtosis", "zcr", "impulse", "shape",
         "band_1", "e1x")
SCRATCH = frozenset({"_az", "_up", "_compiled"})  # the reference's per-window scratch; the flag these tests set

pytestmark = pytest.mark.skipif(window_mod._compiled_step is None,
                                reason="aiotstream._streaming is not built (python setup.py build_ext --inplace)")


def _columns(channels: str, feats: tuple[str, ...], temps: bool) -> list[str]:
    return [f"{c}.{f}" for c in channels for f in feats] + (["temperature.mean", "temperature.max"] if temps else [])


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and repr(a) == repr(b)


def _diff(a: CalibratedWindowDetector, b: CalibratedWindowDetector) -> list[str]:
    assert a.__dict__.keys() - SCRATCH == b.__dict__.keys() - SCRATCH
    return [k for k in a.__dict__ if k not in SCRATCH and not _same(a.__dict__[k], b.__dict__[k])]


def _pair(cols: list[str], **kw: object) -> tuple[CalibratedWindowDetector, CalibratedWindowDetector]:
    compiled, reference = CalibratedWindowDetector(cols, **kw), CalibratedWindowDetector(cols, **kw)
    reference._compiled = False
    return compiled, reference


def _lockstep(x: np.ndarray, cols: list[str], **kw: object) -> CalibratedWindowDetector:
    compiled, reference = _pair(cols, **kw)
    for i, row in enumerate(x):
        a, b = compiled.score_learn(row.copy()), reference.score_learn(row.copy())
        assert repr(a) == repr(b), (i, a, b)
        assert not _diff(compiled, reference), (i, _diff(compiled, reference))
    return compiled


ODD = st.sampled_from((0.0, -0.0, np.nan, np.inf, -np.inf, 1e-300, 5e-324, 1e150, -1e150, 1e-12, 2.0**53))


@st.composite
def _case(draw: st.DrawFn) -> tuple[np.ndarray, list[str], dict]:
    channels = draw(st.sampled_from(("xyz", "xy", "x", "")))
    feats = draw(st.sampled_from((FEATS, ("rms", "std", "crest", "kurtosis"), ("rms", "mean", "zcr"))))
    cols = _columns(channels, feats, draw(st.booleans()) or not channels)
    n = draw(st.integers(1, 260))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.uniform(0.1, 5.0, len(cols)) * rng.choice((1.0, -1.0, 1e-6, 1e6), len(cols))
    x = base * (1.0 + draw(st.sampled_from((0.01, 0.2, 1e-9))) * rng.standard_normal((n, len(cols))))
    for _ in range(draw(st.integers(0, 3))):  # load changes: every amplitude of every channel scales
        at = draw(st.integers(0, n - 1))
        amp = [j for j, c in enumerate(cols) if c.split(".")[-1] in ("rms", "std", "min", "max", "p2p")]
        x[at:, amp] *= draw(st.sampled_from((1.3, 0.5, 4.0)))
    for _ in range(draw(st.integers(0, 3))):  # faults: one column steps, for a while or for good
        at, c = draw(st.integers(0, n - 1)), draw(st.integers(0, len(cols) - 1))
        x[at: at + draw(st.integers(1, 40)), c] += draw(st.sampled_from((5.0, -3.0, 100.0))) * abs(base[c])
    if draw(st.booleans()):  # missing values now and then (unequal degrees of freedom), odd values
        for _ in range(draw(st.integers(1, 30))):
            x[draw(st.integers(0, n - 1)), draw(st.integers(0, len(cols) - 1))] = draw(ODD)
    if draw(st.booleans()):  # a column that never comes (the latency site's temperatures)
        x[:, draw(st.integers(0, len(cols) - 1))] = np.nan
    if draw(st.booleans()):
        x[:, draw(st.integers(0, len(cols) - 1))] = draw(ODD)  # a constant column
    kw = draw(st.sampled_from(({}, {"warmup": 3, "halflife": 20.0, "settle": 2},
                                {"warmup": 1, "huber_c": 1.5, "change_k": 1.0, "load_halflife": 2.0},
                                {"shape_features": frozenset(), "level_after": 2, "close_after": 1})))
    return x, cols, kw


@settings(max_examples=250, deadline=None)
@given(_case())
def test_every_window_and_the_whole_state_are_the_references(case: tuple[np.ndarray, list[str], dict]) -> None:
    x, cols, kw = case
    _lockstep(x, cols, **kw)


def _healthy(n: int, cols: list[str], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1.0 + 0.01 * rng.standard_normal((n, len(cols)))) * np.linspace(1.0, 3.0, len(cols))


def test_alerts_transitions_and_unequal_dof_are_all_reached() -> None:
    """One series that goes through what the hypothesis cases may or may not reach: a load change (a
    transition: temperatures held and re-baselined), a shape fault that opens the alert fast and closes it, a
    level fault that lasts, and a column missing now and then (its degrees of freedom lag the others')."""
    cols = _columns("xyz", FEATS, True)
    x = _healthy(700, cols)
    amp = [j for j, c in enumerate(cols) if c.split(".")[-1] in ("rms", "std", "min", "max", "p2p")]
    x[150:, amp] *= 1.4
    x[150:, cols.index("temperature.mean")] += 0.5
    x[300:306, cols.index("y.kurtosis")] *= 3.0
    x[450:480, cols.index("temperature.max")] += 1.0
    x[::9, cols.index("z.zcr")] = np.nan
    x[140:175:3, cols.index("temperature.max")] = np.nan  # missing during the transition: not re-baselined
    seen = {"alert": set(), "transition": set()}
    compiled, reference = _pair(cols)
    for i, row in enumerate(x):
        assert repr(compiled.score_learn(row)) == repr(reference.score_learn(row)), i
        assert not _diff(compiled, reference), (i, _diff(compiled, reference))
        seen["alert"].add(compiled.alert)
        seen["transition"].add(compiled.transition)
    assert seen == {"alert": {False, True}, "transition": {False, True}}
    assert compiled.changes >= 1
    assert len(set(compiled.learned.tolist())) > 1  # unequal degrees of freedom


def test_the_compiled_step_runs_and_leaves_extreme_rows_to_the_reference_untouched() -> None:
    """The step takes a warm detector's ordinary row (so the comparisons above compare two implementations),
    and returns None without changing anything for a row it leaves to the reference."""
    cols = _columns("xyz", FEATS, True)
    d = CalibratedWindowDetector(cols)
    for row in _healthy(40, cols):
        d.score_learn(row)
    from scipy.special import stdtr

    score = window_mod._compiled_step(d, _healthy(1, cols, seed=9)[0], stdtr, np.log)
    assert isinstance(score, float) and d.n == 41
    for odd in (1e150, -1e101):
        row = _healthy(1, cols, seed=3)[0]
        row[cols.index("temperature.mean")] = odd  # not a logarithm: its value as it is
        before = pickle.dumps(d.__dict__)
        assert window_mod._compiled_step(d, row.copy(), stdtr, np.log) is None
        assert pickle.dumps(d.__dict__) == before
    assert window_mod._compiled_step(d, np.ones(len(cols) + 1), stdtr, np.log) is None  # not its row
    assert pickle.dumps(d.__dict__) == before


def test_a_snapshot_of_either_resumes_on_the_other() -> None:
    """The compiled step keeps its state in the reference's attributes: a snapshot taken on one resumes on
    the other with the same windows after it (a flow upgraded or downgraded across a resume)."""
    cols = _columns("xyz", FEATS, True)
    x = _healthy(120, cols, seed=4)
    x[80:, cols.index("x.crest")] *= 2.0
    compiled, reference = _pair(cols)
    for row in x[:60]:
        compiled.score_learn(row)
        reference.score_learn(row)
    swapped_c = pickle.loads(pickle.dumps(reference))
    swapped_c._compiled = True
    swapped_r = pickle.loads(pickle.dumps(compiled))
    swapped_r._compiled = False
    for i, row in enumerate(x[60:]):
        assert repr(swapped_c.score_learn(row)) == repr(swapped_r.score_learn(row)), i
        assert not _diff(swapped_c, swapped_r), i
    assert swapped_c.alert


@pytest.mark.parametrize("change", ["count as int32", "level read-only", "var not contiguous", "g_mult too short"])
def test_state_arrays_it_cannot_take_as_they_are_go_to_the_reference(change: str) -> None:
    """The step reads the detector's arrays' memory directly only when they are what it was written for;
    otherwise (a state from elsewhere) it hands the window to the reference, which gets it right."""
    cols = _columns("xyz", FEATS, True)
    compiled, reference = _pair(cols)
    x = _healthy(60, cols, seed=5)
    for row in x[:30]:
        compiled.score_learn(row)
        reference.score_learn(row)
    for d in (compiled, reference):
        if change == "count as int32":
            d.count = d.count.astype(np.int32)
        elif change == "level read-only":
            d.level.setflags(write=False)
            d.level = d.level.copy() if d is reference else d.level
        elif change == "var not contiguous":
            wide = np.zeros((len(d.var), 2))
            wide[:, 0] = d.var
            d.var = wide[:, 0]
        else:
            d.g_mult = d.g_mult[:-1].copy() if d is compiled else d.g_mult
    from scipy.special import stdtr

    before = pickle.dumps(compiled.__dict__)
    assert window_mod._compiled_step(compiled, x[30].copy(), stdtr, np.log) is None
    assert pickle.dumps(compiled.__dict__) == before
    if change in ("level read-only", "g_mult too short"):
        return  # (the reference's own state differs in how it is held: nothing more to compare)
    for i, row in enumerate(x[30:]):
        assert repr(compiled.score_learn(row)) == repr(reference.score_learn(row)), i


def test_an_index_outside_the_row_goes_to_the_reference_untouched() -> None:
    """The step writes through the detector's index arrays: one that points outside the row (a state from
    elsewhere) must not be followed."""
    cols = _columns("xyz", FEATS, True)
    d = CalibratedWindowDetector(cols)
    for row in _healthy(30, cols):
        d.score_learn(row)
    from scipy.special import stdtr

    for name, bad in (("_proc_idx", len(cols)), ("rms_idx", -1), ("_log_idx", 10**6), ("_ch_shape", len(cols) + 1)):
        saved = getattr(d, name)
        broken = saved.copy()
        broken.reshape(-1)[0] = bad
        setattr(d, name, broken)
        before = pickle.dumps(d.__dict__)
        assert window_mod._compiled_step(d, _healthy(1, cols, seed=2)[0], stdtr, np.log) is None, name
        assert pickle.dumps(d.__dict__) == before
        setattr(d, name, saved)
