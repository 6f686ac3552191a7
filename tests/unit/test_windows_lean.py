"""``add_columns(..., lean=True)`` closes the same windows as without it, only a window of readings only from
one input partition without values kept comes as a :class:`ReadingsWindow` with its start, end and inputs.

Two assemblers take the same random batches: sets of table columns (one or several partitions, times in
and out of order, steps back, repeated times, several windows per batch, empty columns, NaN values, the
kept metric now and then), frames through ``add`` in between (windows with partials, and a frame whose seq
order differs from its time order), tumbling and sliding windows, with and without a wall clock and an
expected stream. After every batch the windows closed (kind and every field), the late answer (None) and
the state (open windows, progress, newest closed end) must be equal, and the lean one must have made a
:class:`ReadingsWindow` exactly where the plain one made a window of readings only, one partition, no values.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.records import Frame, Position, ReadingColumns
from aiotstream.windows import ClosedWindow, ReadingsWindow, WindowAssembler

S = 1_000_000_000
B = 1_000 * S
_M = np.array([[4, 0.0, 1.0, 0.0, 1.0, -1.0, 1.0, 4.0, 3.0, 1.0, -1.0]])


def _fields(w: ClosedWindow) -> tuple:
    return (w.asset, w.start_ns, w.end_ns, tuple(p.tolist() for p in w.partials), w.inputs, w.first_seq,
            w.last_seq, w.readings, tuple(None if s is None else s.tolist() for s in w.spectral))


def _same(lean: list, plain: list) -> int:
    """Assert the lean list stands for the plain one; return how many lean records it has."""
    assert len(lean) == len(plain)
    n = 0
    for a, b in zip(lean, plain):
        assert type(b) is ClosedWindow
        bare = not b.partials and not b.readings and len(b.inputs) == 1 and b.first_seq == b.last_seq == -1
        if type(a) is ReadingsWindow:
            n += 1
            assert bare, (a, b)
            assert (a.start_ns, a.end_ns, a.inputs, a.partials) == (b.start_ns, b.end_ns, b.inputs, ())
        else:
            assert type(a) is ClosedWindow and _fields(a) == _fields(b)
    return n


def _state(w: WindowAssembler) -> tuple:
    return (w.closed_end_ns, dict(w.progress), w.now_s, w.first_arrival,
            {s: (a.frames and [(f[0], f[1]) for f in a.frames], a.offsets, a.first_seq, a.last_seq,
                 {m: [repr(x) for x in v] for m, v in a.readings.items()}) for s, a in w.open.items()})


# one set of columns: (partition, start (quarter s, relative), readings: (time step, metric), reversed?)
cols_st = st.tuples(st.integers(0, 1), st.integers(-6, 8),
                    st.lists(st.tuples(st.integers(-1, 4), st.sampled_from(["a", "b"] * 4 + ["t"])), max_size=10),
                    st.booleans())
# a batch: columns (one set, usually) or a frame (seq, t0 step)
one_set = cols_st.map(lambda c: ("cols", [c]))  # (a replay's batch: the usual case)
batch_st = st.one_of(one_set, one_set, one_set, st.lists(cols_st, min_size=2, max_size=3).map(lambda c: ("cols", c)),
                     st.tuples(st.integers(0, 20), st.integers(-4, 8)).map(lambda f: ("frame", f)))


@settings(max_examples=400, deadline=None)
# a replay's steady state: a row per batch, one window left open between batches, then two rows in one
@example(batches=[("cols", [(0, 4 * k, [(0, "a"), (0, "b")], False)]) for k in range(4)]
         + [("cols", [(0, 16, [(0, "a"), (4, "a"), (4, "b")], False)])],
         sliding=False, lateness=2, clock=False, expected=(), in_order=True)
# a frame whose seq order differs from its time order lands in a window that then closes through the lean path
@example(batches=[("frame", (5, 2)), ("frame", (3, 3)), ("cols", [(0, 0, [(0, "a")], False)]),
                  ("cols", [(0, 12, [(0, "a")], False)])],
         sliding=False, lateness=0, clock=False, expected=(), in_order=False)
@given(batches=st.lists(batch_st, min_size=1, max_size=12), sliding=st.sampled_from([False, False, True]),
       lateness=st.sampled_from([0, 1, 2, 5]), clock=st.sampled_from([False, False, True]),
       expected=st.sampled_from([(), ("readings",), ("frames", "readings")]), in_order=st.booleans())
def test_lean_add_columns_closes_what_plain_add_columns_closes(batches, sliding, lateness, clock, expected,
                                                               in_order) -> None:
    length = S
    hop = S // 2 if sliding else S
    lean = WindowAssembler(length, hop, lateness * S // 4, asset="a", expected=expected)
    plain = WindowAssembler(length, hop, lateness * S // 4, asset="a", expected=expected)
    for w in (lean, plain):
        w.keep_readings = frozenset({"t"})
    t, off, made = 0, 0, 0
    for i, (kind, spec) in enumerate(batches):
        now = 100.0 + i if clock else None
        if kind == "frame":
            seq, step = spec
            t0 = B + max(0, t + step) * S // 4
            fr = Frame("a", seq, t0, t0 + S // 8, None, Position("fr", 0, i), _M)
            (cl, ll), (cp, lp) = lean.add([fr], now), plain.add([fr], now)
            assert [_fields(w) for w in cl] == [_fields(w) for w in cp] and len(ll) == len(lp)
            continue
        cols = []
        for part, start, rows, backwards in spec:
            tq = max(0, t + start)
            ts, metrics, values, offs = [], [], [], []
            for step, m in rows:
                tq = max(0, tq + step)
                ts.append(B + tq * S // 4)
                metrics.append(m)
                values.append(math.nan if (off % 5 == 0) else 0.5 * off)
                offs.append(off)
                off += 1
            if backwards:
                offs.reverse()
            t = max(t, tq)
            # the flag only where it holds (as the decoder sets it)
            flag = in_order and ts == sorted(ts) and offs == sorted(offs)
            cols.append(ReadingColumns("a", "rd", part, ts, metrics, values, offs, flag))
        times = [x for c in cols for x in c.ts_ns]
        span = (min(times), max(times)) if times else None
        got_lean = lean.add_columns(cols, now, span, flag if len(cols) == 1 else False, lean=True)
        got_plain = plain.add_columns(cols, now, span, flag if len(cols) == 1 else False)
        if got_plain is None:
            assert got_lean is None
        else:
            assert got_lean is not None
            assert not any(type(w) is ReadingsWindow for w in got_plain)
            made += _same(got_lean, got_plain)
        assert _state(lean) == _state(plain), i
    assert [_fields(w) for w in lean.flush()] == [_fields(w) for w in plain.flush()]


def test_readings_window_has_what_the_asset_reads() -> None:
    """The replay's steady state (rows at whole seconds, lateness half a window) closes every window lean."""
    lean = WindowAssembler(S, S, S // 2, asset="a")
    lean.keep_readings = frozenset({"t"})
    out = []
    for k in range(6):
        c = ReadingColumns("a", "rd", 0, [B + k * S] * 2, ["a", "b"], [1.0, 2.0], [2 * k, 2 * k + 1], True)
        got = lean.add_columns([c], None, (B + k * S, B + k * S), True, lean=True)
        assert got is not None
        out += got
    assert [(type(w), w.start_ns, w.end_ns, w.inputs, w.partials) for w in out] == \
        [(ReadingsWindow, B + k * S, B + (k + 1) * S, (("rd", 0, 2 * k, 2 * k + 1),), ()) for k in range(4)]
    assert repr(out[0]) == f"ReadingsWindow({B}, {B + S}, (('rd', 0, 0, 1),))"
