"""ShiftDrift's test without NaN in its rows, or with columns that are all NaN (one quantile position for every
column), is its general path's, in numpy and compiled (``_streaming.shift_test``).

The feature drift test runs every ``every`` rows of every asset, and with the assets' windows in step, every
asset runs it in the same batch: its cost lands in one burst. Rows with every value there (the usual case)
take a shorter path; whatever the rows (steps, constants, signed zeros, infinities, repeats, NaN now and then, a
ring not yet full or wrapped), what fires and what it reports must be the general path's to the bit.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.models import online
from aiotstream.models.online import ShiftDrift

VALUES = st.sampled_from((0.0, -0.0, 1.0, -1.0, 1e-300, 5e-324, 1e300, 3.5, 2.0**53, np.inf, -np.inf))
PATHS = ("compiled", "numpy", "general")
needs_kernel = pytest.mark.skipif(online._shift_test is None, reason="kernels not built (setup.py build_ext)")


@st.composite
def _series(draw: st.DrawFn) -> tuple[np.ndarray, int, int, int]:
    cols = draw(st.integers(1, 5))
    n = draw(st.integers(60, 420))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(draw(st.sampled_from((0.0, 10.0, -1e6))), draw(st.sampled_from((1.0, 1e-9, 1e6))), (n, cols))
    for _ in range(draw(st.integers(0, 3))):  # steps: what fires
        at, c = draw(st.integers(0, n - 1)), draw(st.integers(0, cols - 1))
        x[at:, c] += draw(st.sampled_from((5.0, -50.0, 1e7)))
    if draw(st.booleans()):  # exact values: ties, constants and signed zeros
        for _ in range(draw(st.integers(1, 40))):
            x[draw(st.integers(0, n - 1)), draw(st.integers(0, cols - 1))] = draw(VALUES)
    if draw(st.booleans()):
        x[:, draw(st.integers(0, cols - 1))] = draw(VALUES)
    if draw(st.booleans()):  # a column that never comes (a temperature the site does not send)
        x[:, draw(st.integers(0, cols - 1))] = np.nan
    if draw(st.booleans()):  # a column that stops (or starts) coming: empty in some tests, partial in others
        x[draw(st.integers(0, n - 1)):, draw(st.integers(0, cols - 1))] = np.nan
    if draw(st.booleans()):  # a missing value now and then: those tests take the general path either way
        for _ in range(draw(st.integers(1, 4))):
            x[draw(st.integers(0, n - 1)), draw(st.integers(0, cols - 1))] = np.nan
    return x, draw(st.sampled_from((240, 40, 7))), draw(st.sampled_from((30, 10))), draw(st.sampled_from((5, 1)))


def _run(x: np.ndarray, reference: int, recent: int, every: int, path: str) -> list[str]:
    """Every row's firings and report, by one path: the compiled test, the numpy short path or the general one."""
    d = ShiftDrift([f"c{i}" for i in range(x.shape[1])], reference=reference, recent=recent, every=every)
    d._fast = path != "general"
    kernel = online._shift_test
    if path == "numpy":
        online._shift_test = None
    try:
        return [repr((i, d.update(row), d.last, d._quiet.tolist())) for i, row in enumerate(x)]
    finally:
        online._shift_test = kernel


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(_series())
def test_the_test_without_missing_values_is_the_general_one(case: tuple[np.ndarray, int, int, int]) -> None:
    x, reference, recent, every = case
    general = _run(x, reference, recent, every, "general")
    assert _run(x, reference, recent, every, "numpy") == general
    assert _run(x, reference, recent, every, "compiled") == general


@pytest.mark.parametrize("path", ["general", "numpy", "compiled"])
def test_infinite_and_missing_values_are_tested_without_a_warning(path: str) -> None:
    # a flow's log would carry numpy's RuntimeWarning (inf - inf in the quantiles) at every test of those rows
    if path == "compiled" and online._shift_test is None:
        pytest.skip("the compiled kernels are not built (python setup.py build_ext --inplace)")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    x[::7, 0] = np.inf
    x[3::11, 0] = -np.inf
    x[::13, 1] = np.nan
    x[200:, 2] += 9  # and a step that fires
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lines = _run(x, 240, 30, 5, path)
    assert any("'c2'" in line and "reference_median" in line for line in lines)
    assert lines == _run(x, 240, 30, 5, "general")


@needs_kernel
def test_a_step_fires_on_every_path_with_the_same_report() -> None:
    rng = np.random.default_rng(1)
    x = np.c_[rng.normal(10, 1, 600), rng.normal(0, 1, 600)]
    x[400:, 1] += 8
    compiled, numpy_, general = (_run(x, 240, 30, 5, path) for path in PATHS)
    assert compiled == numpy_ == general
    assert any("'c1'" in line and "reference_median" in line for line in compiled)


def _oracle(x: np.ndarray, reference: int, recent: int, every: int) -> list[tuple[int, list[str], list[tuple]]]:
    """The docstring's test from the whole history (``np.nanquantile`` of the last ``reference`` and ``recent``
    rows, no ring): what fires and the medians it reports."""
    cols = [f"c{i}" for i in range(x.shape[1])]
    quiet = np.zeros(x.shape[1], np.int64)
    out = []
    for n in range(1, len(x) + 1):
        quiet = np.maximum(quiet - 1, 0)
        if n < 2 * recent or n % every:
            continue
        rows = x[max(0, n - reference - recent): n]
        ref, rec = rows[:-recent], rows[-recent:]
        lo, q1, med, q3, hi = np.nanquantile(ref, [0.01, 0.25, 0.5, 0.75, 0.99], axis=0)
        now = np.nanmedian(rec, axis=0)
        sd = np.maximum((q3 - q1) / 1.349, 1e-9 + 1e-6 * np.abs(med))
        need = np.maximum(3.0 * sd, 0.25 * np.abs(med))
        enough = (len(ref) >= recent) & (len(rec) >= recent // 2)
        fire = enough & (quiet == 0) & ((now > hi + need) | (now < lo - need))
        quiet[fire] = recent + reference // 20
        if fire.any():
            out.append((n - 1, [cols[i] for i in np.flatnonzero(fire)],
                        [(float(med[i]), float(now[i])) for i in np.flatnonzero(fire)]))
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from((240, 40, 7)), st.sampled_from((30, 10)), st.sampled_from((5, 1, 3)))
def test_the_ring_is_read_oldest_first(seed: int, reference: int, recent: int, every: int) -> None:
    """Against the whole history: the ring before it fills, and wrapped at every offset."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (700, 3))
    for c, at in enumerate(rng.integers(100, 650, 3)):
        x[at:, c] += rng.choice((6.0, -6.0))
    d = ShiftDrift(["c0", "c1", "c2"], reference=reference, recent=recent, every=every)
    got = []
    for i, row in enumerate(x):
        fired = d.update(row)
        if fired:
            got.append((i, fired, [(e["reference_median"], e["recent_median"]) for e in d.last]))
    want = _oracle(x, reference, recent, every)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    assert np.allclose([v for g in got for v in g[2]], [v for w in want for v in w[2]], rtol=1e-12, atol=1e-12)


@needs_kernel
def test_a_column_that_never_comes_keeps_the_short_path_and_the_others_fire_as_before(monkeypatch) -> None:
    """A site without temperature readings has those feature columns NaN in every row: the other columns'
    tests still take the short path (it was the general one for every test of such an asset), compiled or in
    numpy, and fire as the general path does."""
    rng = np.random.default_rng(2)
    x = np.c_[rng.normal(10, 1, 600), rng.normal(0, 1, 600), np.full(600, np.nan)]
    x[400:, 1] += 8
    tests = 600 // 5 - 11  # every test from the 60th row on
    answers = []
    kernel = online._shift_test
    monkeypatch.setattr(online, "_shift_test", lambda *a: answers.append(kernel(*a)) or answers[-1])
    compiled = _run(x, 240, 30, 5, "compiled")
    assert len(answers) == tests and None not in answers  # (None: the kernel left the test to numpy)
    calls = []
    full = online._full_quantiles
    monkeypatch.setattr(online, "_full_quantiles", lambda a, qs: calls.append(1) or full(a, qs))
    numpy_ = _run(x, 240, 30, 5, "numpy")
    assert len(calls) == 2 * tests  # reference and recent
    assert compiled == numpy_ == _run(x, 240, 30, 5, "general")
    assert any("'c1'" in line and "reference_median" in line for line in compiled)
    assert not any("'c2'" in line for line in compiled)


@needs_kernel
def test_the_kernel_leaves_to_numpy_what_it_was_not_written_for() -> None:
    """A column with some values missing (the general path's case), a ring or quiet counts of another type or
    layout, a ring too short for the test: the kernel answers None and changes nothing; the watch then fires
    as the general path does."""
    rng = np.random.default_rng(4)
    x = np.c_[rng.normal(0, 1, 300), rng.normal(0, 1, 300)]
    x[200:, 0] += 9
    d = ShiftDrift(["a", "b"], every=10**6)  # (tests only when the kernel is called here)
    for row in x[:230]:
        d.update(row)
    quiet = d._quiet.copy()
    assert online._shift_test(d._buf, d.n, d.recent, d._quiet, d.margin, d.min_change, online._QS)  # "a" fires
    partial = d._buf.copy()
    partial[3, 1] = np.nan
    for args in ((partial, d.n, d.recent, d._quiet), (d._buf.astype(np.float32), d.n, d.recent, d._quiet),
                 (np.asfortranarray(d._buf), d.n, d.recent, d._quiet), (d._buf, d.n, d.recent, quiet.astype(np.int32)),
                 (d._buf, d.n, d.recent, quiet[:1]), (d._buf, 0, d.recent, d._quiet), (d._buf, d.n, 0, d._quiet),
                 (d._buf, d.recent, d.recent, d._quiet), (d._buf.tolist(), d.n, d.recent, d._quiet)):
        assert online._shift_test(*args, d.margin, d.min_change, online._QS) is None
    assert online._shift_test(d._buf, d.n, d.recent, d._quiet, d.margin, d.min_change, online._QS[:4]) is None
    assert d._quiet.tolist() == quiet.tolist() and d.last == []
    y = x.copy()
    y[100, 1] = np.nan  # "b" partial in the ring for 270 rows: every test then by the general path
    assert _run(y, 240, 30, 5, "compiled") == _run(y, 240, 30, 5, "general")


def test_a_watch_from_before_the_countdown_and_row_shortcuts_fires_the_same() -> None:
    """A drift watch pickled before it kept an upper bound of its quiet rows (and knew that it watches every
    column) resumes with the same firings as one that kept them; rows given as lists are stored alike."""
    import pickle

    rng = np.random.default_rng(3)
    x = np.c_[rng.normal(10, 1, 900), rng.normal(0, 1, 900), rng.normal(5, 1, 900)]
    x[300:, 1] += 8
    x[500:, 1] += 8  # c1 again, after its quiet rows: the countdown must have reached 0
    x[620:, 0] -= 9
    x[640:, 2] += 7
    new = ShiftDrift(["c0", "c1", "c2"])
    old = ShiftDrift(["c0", "c1", "c2"])
    got_new, got_old = [], []
    for i, row in enumerate(x):
        if i == 310:  # mid-quiet after c1 fired: the old one forgets the shortcuts' state
            old = pickle.loads(pickle.dumps(old))
            del old.__dict__["_quiet_rows"], old.__dict__["_every_column"]
        got_new.append((i, new.update(row.tolist() if i % 2 else row), list(new.last)))
        got_old.append((i, old.update(row), list(old.last)))
        assert new._quiet.tolist() == old._quiet.tolist(), i
    assert got_new == got_old
    fired = [(i, f) for i, f, _ in got_new if f]
    assert fired == [(i, f) for i, f, _ in _oracle(x, 240, 30, 5)]  # the quiet rows counted as the history has them
    assert [f for _, f in fired].count(["c1"]) == 2
    picked = ShiftDrift(["c0", "c1", "c2"], watched=["c2", "c0"])  # not every column: gathered as before
    for row in x[:700]:
        picked.update(row)
    assert picked._buf[699 % picked._buf.shape[0]].tolist() == x[699, [2, 0]].tolist()
