"""``WindowAssembler._next_window``: a replayed table's usual batch (rows all in one new window that stays open)
closes the windows due first and hands the emptied ``_Acc`` of a plain one to the new window. It must close
what the general path closes and leave the same state.

Two assemblers take the same random batches, one with ``lean=True`` (which takes ``_next_window`` when its
preconditions hold) and one with ``lean=False`` (the general path: ``_add_in_order``'s loop and
``close_until``): a row per batch at whole seconds (the benchmark's steady state), several rows per batch,
rows just before and at a window's end, steps back (late and not), repeated times, two input partitions (a
window with two spans is not plain; the spare window's span of the other partition), the kept metric now and
then (a window with values is not plain), offsets out of order, frames (whose seq order differs from their
time order) in between, no expected stream, the readings one, and frames expected (the watermark waits). After
every batch: the same windows (a lean one where the plain one has readings only, one partition, no values),
the same open windows (spans, seqs, values), progress and newest closed end. A pickled and reloaded lean
assembler goes on as the one that was not.
"""
from __future__ import annotations

import pickle

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.records import Frame, Position, ReadingColumns
from aiotstream.windows import ClosedWindow, ReadingsWindow, WindowAssembler

S = 1_000_000_000
Q = S // 4  # times in quarter seconds
B = 1_000 * S
_M = np.array([[4, 0.0, 1.0, 0.0, 1.0, -1.0, 1.0, 4.0, 3.0, 1.0, -1.0]])


def _fields(w: ClosedWindow) -> tuple:
    return (w.asset, w.start_ns, w.end_ns, tuple(p.tolist() for p in w.partials), w.inputs, w.first_seq,
            w.last_seq, w.readings)


def _state(w: WindowAssembler) -> tuple:
    return (w.closed_end_ns, dict(w.progress), w.now_s,
            {s: ([(f[0], f[1]) for f in a.frames], {k: list(v) for k, v in a.offsets.items()}, a.first_seq,
                 a.last_seq, {m: list(v) for m, v in a.readings.items()}) for s, a in sorted(w.open.items())})


def _same(lean: list, plain: list) -> None:
    assert len(lean) == len(plain)
    for a, b in zip(lean, plain):
        assert type(b) is ClosedWindow
        if type(a) is ReadingsWindow:
            assert not b.partials and not b.readings and len(b.inputs) == 1 and b.first_seq == b.last_seq == -1
            assert (a.start_ns, a.end_ns, a.inputs) == (b.start_ns, b.end_ns, b.inputs)
        else:
            assert _fields(a) == _fields(b)


# a batch of rows: (step to its first row (quarters), gaps between its rows, partition, kept metric?,
# offsets backwards?) or a frame (seq, step)
rows_st = st.tuples(st.sampled_from([4, 4, 4, 4, 0, 1, 3, 8, -4, -8]),
                    st.lists(st.sampled_from([4, 4, 0, 1, 3]), max_size=3),
                    st.sampled_from([0, 0, 0, 1]), st.sampled_from([False] * 5 + [True]), st.booleans())
batch_st = st.one_of(rows_st.map(lambda r: ("rows", r)), rows_st.map(lambda r: ("rows", r)),
                     st.tuples(st.integers(0, 20), st.integers(-4, 4)).map(lambda f: ("frame", f)))
steady = [("rows", (4, [], 0, False, False))] * 6


@settings(max_examples=500, deadline=None)
@example(batches=steady, lateness=2, expected=())  # the benchmark's steady state
@example(batches=steady[:3] + [("rows", (4, [], 1, False, False))] + steady[:3], lateness=2, expected=())
@example(batches=steady[:2] + [("rows", (3, [1], 0, False, False))] + steady[:3], lateness=0, expected=())
@example(batches=steady[:2] + [("rows", (4, [], 0, True, False))] + steady[:3], lateness=2, expected=())
@example(batches=[("frame", (5, 0)), ("frame", (3, 1))] + steady, lateness=2, expected=("frames", "readings"))
# a step back opens a window after a newer one (open windows not in start order): both older ones close next
@example(batches=[("rows", (4, [], 0, False, False)), ("rows", (8, [], 0, False, False)),
                  ("rows", (-4, [], 0, False, False)), ("rows", (8, [], 0, False, False))], lateness=6, expected=())
@given(batches=st.lists(batch_st, min_size=1, max_size=14), lateness=st.sampled_from([0, 1, 2, 4, 6]),
       expected=st.sampled_from([(), (), ("readings",), ("frames", "readings")]))
def test_next_window_closes_what_the_general_path_closes(batches, lateness, expected) -> None:
    lean = WindowAssembler(S, S, lateness * Q, asset="a", expected=expected)
    plain = WindowAssembler(S, S, lateness * Q, asset="a", expected=expected)
    for w in (lean, plain):
        w.keep_readings = frozenset({"t"})
    t, off = 0, 0
    for i, (kind, spec) in enumerate(batches):
        if kind == "frame":
            seq, step = spec
            t0 = B + max(0, t + step) * Q
            fr = Frame("a", seq, t0, t0 + Q // 2, None, Position("fr", 0, i), _M)
            (cl, ll), (cp, lp) = lean.add([fr]), plain.add([fr])
            assert [_fields(w) for w in cl] == [_fields(w) for w in cp] and len(ll) == len(lp)
            assert _state(lean) == _state(plain)
            continue
        step, gaps, part, kept, backwards = spec
        tq = max(0, t + step)
        times = [tq]
        for g in gaps:
            times.append(times[-1] + g)
        ts, metrics, values, offs = [], [], [], []
        for x in times:
            for m in ("a", "b"):
                ts.append(B + x * Q)
                metrics.append(m)
                values.append(0.5 * off)
                offs.append(off)
                off += 1
        if kept:
            metrics[-1] = "t"
        if backwards:
            offs.reverse()
        t = max(t, times[-1])
        flag = not backwards  # (times in order here; offsets as the decoder would flag them)
        got = []
        for w, is_lean in ((lean, True), (plain, False)):
            c = ReadingColumns("a", "rd", part, list(ts), list(metrics), list(values), list(offs), flag)
            got.append(w.add_columns([c], None, (ts[0], ts[-1]), True, lean=is_lean))
        if got[1] is None:
            assert got[0] is None
        else:
            assert got[0] is not None
            _same(got[0], got[1])
        assert _state(lean) == _state(plain), i
        if i % 5 == 4:  # a snapshot of the lean one goes on as it
            lean = pickle.loads(pickle.dumps(lean))
    assert [_fields(w) for w in lean.flush()] == [_fields(w) for w in plain.flush()]


def test_steady_state_reuses_the_closed_window() -> None:
    """A row per batch at whole seconds, lateness half a window: each batch closes the window two before
    and its ``_Acc`` (emptied) holds the new window: the same object all along, with the new span."""
    w = WindowAssembler(S, S, S // 2, asset="a")
    w.keep_readings = frozenset({"t"})
    accs, out = set(), []
    for k in range(8):
        c = ReadingColumns("a", "rd", 0, [B + k * S] * 2, ["a", "b"], [1.0, 2.0], [2 * k, 2 * k + 1], True)
        out += w.add_columns([c], None, (B + k * S, B + k * S), True, lean=True)
        accs.update(id(a) for a in w.open.values())
        assert w.open[B + k * S].offsets == {("rd", 0): [2 * k, 2 * k + 1]}
    assert len(accs) == 2  # (the two windows open at a time, handed on)
    assert [(x.start_ns, x.inputs) for x in out] == [(B + k * S, (("rd", 0, 2 * k, 2 * k + 1),)) for k in range(6)]
    assert w.closed_end_ns == B + 6 * S
