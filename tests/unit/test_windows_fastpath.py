"""The window assembler's lean path for readings gives exactly what the plain per-item algorithm gives.

``Reference.add`` is the assembler's original loop (every item through ``_is_late``, ``_starts`` and
``add_pos``); random batches of frames and readings (several partitions, out-of-order times, Bad-quality
readings, late data, tumbling and sliding windows) must close the same windows with the same readings,
input spans and sequence ranges, and return the same late items.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.records import Frame, Position, Reading
from aiotstream.windows import ClosedWindow, WindowAssembler, _Acc

S = 1_000_000_000
B = 1_000 * S


class Reference(WindowAssembler):
    def add(self, items, now_s=None):  # type: ignore[no-untyped-def]
        late = []
        self.now_s = now_s
        if self.first_arrival is None:
            self.first_arrival = now_s
        if now_s is not None and self.last_arrival and now_s - max(self.last_arrival.values()) > self.idle_s:
            self.resumed_at = now_s
        for item in items:
            if isinstance(item, Frame):
                t, end, stream = item.t0_ns, item.end_ns, "frames"
            else:
                t = end = item.ts_ns
                stream = "readings"
            if self._is_late(t):
                late.append(item)
                continue
            for start in self._starts(t):
                acc = self.open.get(start)
                if acc is None:
                    acc = self.open[start] = _Acc()
                acc.add_pos(item.pos.topic, item.pos.partition, item.pos.offset)
                if isinstance(item, Frame):
                    acc.frames.append((item.t0_ns, item.seq, item.partials, item.spectral))
                    if acc.first_seq < 0 or item.seq < acc.first_seq:
                        acc.first_seq = item.seq
                    acc.last_seq = max(acc.last_seq, item.seq)
                elif not item.bad:
                    acc.readings.setdefault(item.metric, []).append(item.value)
            if end > self.progress.get(stream, -1):
                self.progress[stream] = end
            if now_s is not None:
                self.last_arrival[stream] = now_s
        return self.close_until(self.watermark_ns), late

    def close_until(self, watermark_ns):  # type: ignore[no-untyped-def]  # (before its inline close)
        if watermark_ns is None or not self.open:
            return []
        ready = sorted(s for s in self.open if s + self.length_ns <= watermark_ns)
        return [self._close(s) for s in ready]


def _frame(seq: int, t0: int, part: int, off: int) -> Frame:
    m = np.zeros((1, 11))
    m[:, 0] = 100
    m[:, 1] = seq
    return Frame("a", seq, t0, 1000.0, None, Position("wf", part, off), m)


def _items(rows: list[tuple], seq: int, shift: int = 0) -> tuple[list[Frame | Reading], int]:
    """Frames and readings of asset "a" from ``(is_frame, quarter second, partition, metric, value, bad, offset)``
    rows at ``B`` + the quarter seconds + ``shift`` (ns); frames numbered on from ``seq``. Returns the items and
    the last frame number."""
    items: list[Frame | Reading] = []
    for is_frame, t, part, metric, value, bad, off in rows:
        ts = B + t * S // 4 + shift
        if is_frame:
            seq += 1
            items.append(_frame(seq, ts, part, off))
        else:
            items.append(Reading("a", ts, metric, value, Position("rd", part, off), status=0x8000_0000 if bad else 0))
    return items, seq


def _key(w: ClosedWindow) -> tuple:
    return (w.start_ns, w.end_ns, [p.tolist() for p in w.partials], w.inputs, w.first_seq, w.last_seq,
            w.readings)


item = st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 2), st.sampled_from(["t", "p", "kw"]),
                 st.floats(-5, 5), st.booleans(), st.integers(0, 50))


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(item, max_size=25), min_size=1, max_size=8),
       shape=st.sampled_from([(1, 1), (2, 1), (3, 1), (4, 2), (2, 2)]), lateness=st.sampled_from([0, 1, 3]),
       clock=st.booleans())
def test_fast_path_matches_reference(batches, shape, lateness, clock) -> None:
    length, hop = shape[0] * S // 2, shape[1] * S // 2
    fast = WindowAssembler(length, hop, lateness * S // 4, asset="a", expected=("readings",) if clock else ())
    ref = Reference(length, hop, lateness * S // 4, asset="a", expected=("readings",) if clock else ())
    seq = 0
    for b, batch in enumerate(batches):
        items, seq = _items(batch, seq)
        now = float(b) if clock else None
        cf, lf = fast.add(items, now)
        cr, lr = ref.add(items, now)
        assert [_key(w) for w in cf] == [_key(w) for w in cr]
        assert [id(x) for x in lf] == [id(x) for x in lr]
        assert fast.progress == ref.progress and fast.last_arrival == ref.last_arrival
        assert fast.watermark_ns == ref.watermark_ns
    assert [_key(w) for w in fast.flush()] == [_key(w) for w in ref.flush()]


col_item = st.tuples(st.integers(0, 40), st.sampled_from(["t", "p", "kw"]), st.floats(-5, 5), st.integers(0, 50))


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 2), st.lists(col_item, max_size=12)), max_size=3),
                        min_size=1, max_size=8),
       shape=st.sampled_from([(1, 1), (2, 1), (2, 2), (4, 4)]), lateness=st.sampled_from([0, 1, 3]),
       clock=st.booleans(), keep=st.sampled_from([None, frozenset({"t"}), frozenset()]),
       in_order=st.booleans(), one_metric=st.booleans())
def test_add_columns_matches_add_of_the_readings(batches, shape, lateness, clock, keep, in_order,
                                                 one_metric) -> None:
    """``add_columns`` either hands the batch back untouched (sliding windows, a late reading) or has the
    effects of ``add`` of the readings the columns stand for (the values of ``keep_readings`` only, if set);
    columns in time order (the usual case) and not, of one metric (a sensor's readings) and of several."""
    from aiotstream.records import ReadingColumns, expand_columns

    if one_metric:
        batches = [[(part, [(t, "t", v, o) for t, _, v, o in rows]) for part, rows in batch] for batch in batches]
    if in_order:
        batches = [[(part, sorted(rows)) for part, rows in batch] for batch in batches]
    length, hop = shape[0] * S // 2, shape[1] * S // 2
    fast = WindowAssembler(length, hop, lateness * S // 4, asset="a", expected=("readings",) if clock else ())
    fast.keep_readings = keep

    def _key(w: ClosedWindow) -> tuple:  # (the values of the metrics kept)
        return (w.start_ns, w.end_ns, w.inputs, w.first_seq, w.last_seq,
                {k: v for k, v in w.readings.items() if keep is None or k in keep})
    ref = Reference(length, hop, lateness * S // 4, asset="a", expected=("readings",) if clock else ())
    taken, fell_back = 0, False
    for b, batch in enumerate(batches):
        cols = [ReadingColumns("a", "rd", part, [B + t * S // 4 for t, _, _, _ in rows], [m for _, m, _, _ in rows],
                               [v for _, _, v, _ in rows], [o for _, _, _, o in rows]) for part, rows in batch]
        now = float(b) if clock else None
        before = (dict(fast.progress), dict(fast.last_arrival), sorted(fast.open), fast.closed_end_ns)
        cf = fast.add_columns(cols, now) if any(cols) else None
        if cf is None:
            assert before == (fast.progress, fast.last_arrival, sorted(fast.open), fast.closed_end_ns)
            cf, lf = fast.add(expand_columns(cols), now)
            fell_back = fell_back or any(cols)
        else:
            taken += 1
            lf = []
        cr, lr = ref.add(expand_columns(cols), now)
        assert [_key(w) for w in cf] == [_key(w) for w in cr]
        # (and no more, while add, which keeps every value, has not had a batch: a value not kept is memory for
        # nothing)
        assert keep is None or fell_back or all(set(w.readings) <= keep for w in cf)
        assert len(lf) == len(lr)
        assert fast.progress == ref.progress and fast.last_arrival == ref.last_arrival
        assert fast.watermark_ns == ref.watermark_ns
    assert [_key(w) for w in fast.flush()] == [_key(w) for w in ref.flush()]


def test_a_window_assembler_pickled_before_keep_readings_keeps_every_metric() -> None:
    """A snapshot from before ``keep_readings`` (no such attribute in its state) loads with the class
    default, None: its windows keep every metric's values, as they did."""
    import pickle

    from aiotstream.records import ReadingColumns

    old = WindowAssembler(S, S, 0, asset="a")
    old.__dict__.pop("keep_readings", None)
    assert "keep_readings" not in old.__dict__
    back = pickle.loads(pickle.dumps(old))
    assert back.keep_readings is None
    back.add_columns([ReadingColumns("a", "f", -1, [B, B], ["t", "p"], [1.0, 2.0], [0, 1])])
    (w,) = back.flush()
    assert w.readings == {"t": (1.0,), "p": (2.0,)} and w.inputs == (("f", -1, 0, 1),)
    new = WindowAssembler(S, S, 0, asset="a")
    new.keep_readings = frozenset({"t"})
    new = pickle.loads(pickle.dumps(new))
    new.add_columns([ReadingColumns("a", "f", -1, [B, B], ["t", "p"], [1.0, 2.0], [0, 1])])
    (w,) = new.flush()
    assert w.readings == {"t": (1.0,)} and w.inputs == (("f", -1, 0, 1),)


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(-2, 3), st.integers(1, 3), st.integers(0, 50)),
                                 min_size=1, max_size=12), min_size=1, max_size=10),
       length_q=st.sampled_from([1, 2, 4]), lateness=st.sampled_from([0, 1, 3]), part=st.integers(0, 1),
       expected=st.sampled_from([(), ("readings",), ("frames", "readings")]), kept=st.booleans())
def test_add_columns_of_a_replayed_table_matches_add(batches, length_q, lateness, part, expected, kept) -> None:
    """The replay of a table (one set of columns per batch, in time order, mostly forward with steps back,
    no value kept, or, ``kept``, all readings of the one metric kept, as a temperature sensor's:
    ``_add_in_order``, which closes the windows a batch opens and closes without making them open windows)
    has the effects of ``add`` of the readings: the same windows with the same values kept, in the same
    order, the same progress and newest closed end, the same late readings."""
    from aiotstream.records import ReadingColumns, expand_columns

    length = length_q * S // 4
    fast = WindowAssembler(length, length, lateness * S // 4, asset="a", expected=expected)
    fast.keep_readings = frozenset({"t"})
    ref = Reference(length, length, lateness * S // 4, asset="a", expected=expected)
    t, hits = 0, 0
    for batch in batches:
        ts, metrics, offs = [], [], []
        t = max(0, t + batch[0][0])  # a batch may start a little before the last one ended
        for _, n, off in batch:
            for k in range(n):  # n readings (channels) of one row at time t
                ts.append(B + t * S // 4)
                metrics.append("t" if kept else f"c{k}")
                offs.append(off + k)
            t += 1
        cols = [ReadingColumns("a", "rd", part, ts, metrics, [float(o) for o in offs], offs)]
        before = fast.closed_end_ns
        cf = fast.add_columns(cols, None)
        if cf is None:
            cf, lf = fast.add(expand_columns(cols), None)
        else:
            hits += 1
            lf = []
        cr, lr = ref.add(expand_columns(cols), None)
        # (the values of "t", the metric kept: add, a fallback here, keeps every metric's)
        assert [(w.start_ns, w.end_ns, w.inputs, w.first_seq, w.last_seq, w.partials,
                 {m: v for m, v in w.readings.items() if m == "t"}) for w in cf] == \
            [(w.start_ns, w.end_ns, w.inputs, w.first_seq, w.last_seq, w.partials,
              {m: v for m, v in w.readings.items() if m == "t"}) for w in cr], before
        assert len(lf) == len(lr)
        assert fast.progress == ref.progress and fast.closed_end_ns == ref.closed_end_ns
        assert sorted(fast.open) == sorted(ref.open)
        assert {s: a.offsets for s, a in fast.open.items()} == {s: a.offsets for s, a in ref.open.items()}
        # every field of the open windows (_add_in_order stores an _Acc's slots one by one; the reference keeps
        # the values of every metric, add_columns those of keep_readings, none here)
        assert {s: (a.frames, a.offsets, a.first_seq, a.last_seq, {m: v for m, v in a.readings.items() if m == "t"})
                for s, a in fast.open.items()} == \
            {s: (a.frames, a.offsets, a.first_seq, a.last_seq, {m: v for m, v in a.readings.items() if m == "t"})
             for s, a in ref.open.items()}
    assert [(w.start_ns, w.inputs, {m: v for m, v in w.readings.items() if m == "t"}) for w in fast.flush()] == \
        [(w.start_ns, w.inputs, {m: v for m, v in w.readings.items() if m == "t"}) for w in ref.flush()]


def test_a_kept_metrics_readings_take_the_replay_path_with_their_values(monkeypatch) -> None:
    """A replayed asset whose readings are all of the kept metric (the KPI temperature: the e2e scalar
    workload's one metric) goes through ``_add_in_order`` too, its windows carrying the values, as ``add``'s;
    a batch that mixes the kept metric with another still takes the general path."""
    from aiotstream.records import ReadingColumns, expand_columns

    calls: list[str | None] = []
    original = WindowAssembler._add_in_order

    def spy(self, c, newest, lean=False, kept=None):
        calls.append(kept)
        return original(self, c, newest, lean, kept)

    monkeypatch.setattr(WindowAssembler, "_add_in_order", spy)
    fast = WindowAssembler(S, S, S // 2, asset="a", expected=("readings",))
    fast.keep_readings = frozenset({"t"})
    ref = Reference(S, S, S // 2, asset="a", expected=("readings",))
    # 10 Hz; 1.5 s a batch (windows opened and closed by one batch, and carried over), then 0.4 s a batch
    # (each batch inside one window: the path that reuses a closed window's state for the next, when lean)
    sizes = [15, 15, 15, 15, 4, 4, 4, 4, 4, 4, 4]
    first = 0
    for size in sizes:
        ts = [B + (first + k) * S // 10 for k in range(size)]
        cols = [ReadingColumns("a", "rd", 0, ts, ["t"] * size, [float(t % 97) for t in ts],
                               list(range(first, first + size)), True)]
        first += size
        cf = fast.add_columns(cols, None, (ts[0], ts[-1]), True, lean=True)
        cr, _ = ref.add(expand_columns(cols), None)
        assert [(w.start_ns, w.inputs, w.readings) for w in cf] == [(w.start_ns, w.inputs, w.readings) for w in cr]
    assert calls == ["t"] * len(sizes)
    assert [(w.start_ns, w.readings) for w in fast.flush()] == [(w.start_ns, w.readings) for w in ref.flush()]
    mixed = [ReadingColumns("a", "rd", 0, [B + 90 * S // 10] * 2, ["t", "p"], [1.0, 2.0], [90, 91], True)]
    fast.add_columns(mixed, None, None, True)
    assert calls == ["t"] * len(sizes)
