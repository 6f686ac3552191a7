"""RowAssembler's whole-row paths (add_columns takes a column set's whole rows in channel order without its
per-row tests; ``_take`` merges the input spans of rows from one input at once; ``rows_array`` tries the
list-of-lists conversion first) give exactly what the assembler of ee43a11 gave: ``RowAssemblerBefore``
and ``rows_array_before`` below are that code, copied. Random mixes of column sets (mostly whole rows in
some channel order, also partial, repeated, out-of-order, late and stale ones, several partitions, new
channels appearing later, excluded and over-the-limit metrics), single readings and reading batches,
and takes at random times must leave both with the same rows (values, NaN for missing), input spans,
channels, stale counts and first/last times."""
from __future__ import annotations

import math
from bisect import bisect_right
from itertools import chain, islice, repeat
from operator import itemgetter, le
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.pdm.scalar import RowAssembler, rows_array
from aiotstream.records import Position, Reading, ReadingColumns
from aiotstream.runstats import STATS

Spans = dict[tuple[str, int], tuple[int, int]]
Row = dict[int, float] | list[float]

def rows_array_before(rows: list[tuple[int, Row]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ts, {channel: value})`` rows as (ts int64 (rows,), values (rows, n)) with NaN for missing; a row
    may also be a list, its values in channel order (:class:`RowAssembler`'s full rows)."""
    m = len(rows)
    vals = list(map(itemgetter(1), rows))
    kinds = set(map(type, vals))
    if kinds == {list} and all(map(n.__eq__, map(len, vals))):  # full rows as lists: the usual case
        x = np.array(vals, dtype=np.float64).reshape(m, n)
    elif not kinds - {dict} and all(map(tuple(range(n)).__eq__, map(tuple, vals))):  # full rows as dicts
        x = np.fromiter(chain.from_iterable(map(dict.values, vals)), np.float64, m * n).reshape(m, n)
    else:
        x = np.full((m, n), math.nan)
        for r, row in enumerate(vals):
            for i, v in (row.items() if type(row) is dict else enumerate(row)):
                x[r, i] = v
    return np.fromiter(map(itemgetter(0), rows), np.int64, m), x


def _merge_span(spans: dict, t: int, key: tuple[str, int], lo: int, hi: int) -> None:
    """Add the offsets ``lo..hi`` of input ``key`` to row ``t``'s input spans (its lineage)."""
    sp = spans.get(t)
    if sp is None:
        spans[t] = {key: (lo, hi)}
    else:
        lo_hi = sp.get(key)
        sp[key] = (lo, hi) if lo_hi is None else (min(lo_hi[0], lo), max(lo_hi[1], hi))


class RowAssemblerBefore:
    """Readings -> rows by timestamp (see the module doc). ``take(before_ns)`` hands out the final rows."""

    def __init__(self, max_channels: int = 64, exclude: frozenset[str] | set[str] = frozenset()) -> None:
        self.max_channels = max_channels
        self.exclude = frozenset(exclude)
        self.channels: list[str] = []
        self.index: dict[str, int] = {}
        # ts -> {channel: value}, or a list of every channel's value in order (a full row taken whole from
        # columns; made a dict when a reading is added to it)
        self.pending: dict[int, Row] = {}
        self.spans: dict[int, dict[tuple[str, int], tuple[int, int]]] = {}  # ts -> its inputs (lineage)
        self._first: int | None = None  # the earliest pending row's time (None: not known, recomputed)
        self.last_ns: int | None = None  # the newest row handed out
        self.stale = 0  # readings for a row already handed out (cannot happen behind the watermark)

    def add(self, ts_ns: int, metric: str, value: float, pos: tuple[str, int, int] | None = None) -> bool:
        """One reading (``pos``: its topic, partition, offset); False if it is not a channel (excluded, over
        the limit, or its row is gone)."""
        if metric in self.exclude:
            return False
        i = self.index.get(metric)
        if i is None:
            if len(self.channels) >= self.max_channels:
                STATS.add("dropped", "scalar_channel_limit", 1)
                return False
            i = self.index[metric] = len(self.channels)
            self.channels.append(metric)
        if self.last_ns is not None and ts_ns <= self.last_ns:
            self.stale += 1
            STATS.add("dropped", "scalar_stale_reading", 1)
            return False
        row = self.pending.get(ts_ns)
        if row is None:
            self.pending[ts_ns] = {i: value}
            if self._first is not None and ts_ns < self._first:
                self._first = ts_ns
        else:
            if type(row) is not dict:
                row = self.pending[ts_ns] = dict(enumerate(row))
            row[i] = value
        if pos is not None:
            _merge_span(self.spans, ts_ns, pos[:2], pos[2], pos[2])
        return True

    def add_readings(self, readings: list) -> None:
        """:meth:`add` for a batch of :class:`~aiotstream.records.Reading` (one call per input batch: the
        per-reading work stays in this loop); frames and Bad-quality readings in the batch are skipped.
        Readings of one row usually come together, so the row found for one is kept for the next."""
        exclude, index, pending, spans = self.exclude, self.index, self.pending, self.spans
        last = self.last_ns
        row_t = None
        row: dict[int, float] = {}
        sp: dict[tuple[str, int], tuple[int, int]] = {}
        for r in readings:
            if type(r) is not Reading or r.status & 0x8000_0000:
                continue
            m = r.metric
            if m in exclude:
                continue
            i = index.get(m)
            if i is None:  # a new channel (or one over the limit): the general path
                self.add(r.ts_ns, m, r.value, (r.pos.topic, r.pos.partition, r.pos.offset))
                row_t = None
                continue
            t = r.ts_ns
            if t != row_t:
                if last is not None and t <= last:
                    self.stale += 1
                    STATS.add("dropped", "scalar_stale_reading", 1)
                    continue
                row_t = t
                got = pending.get(t)
                if got is None:
                    row = pending[t] = {}
                    if self._first is not None and t < self._first:
                        self._first = t
                elif type(got) is not dict:
                    row = pending[t] = dict(enumerate(got))
                else:
                    row = got
                got_sp = spans.get(t)
                sp = spans[t] = {} if got_sp is None else got_sp
            row[i] = r.value
            pos = r.pos
            key, o = (pos.topic, pos.partition), pos.offset
            lo_hi = sp.get(key)
            if lo_hi is None:
                sp[key] = (o, o)
            elif o < lo_hi[0] or o > lo_hi[1]:
                sp[key] = (min(lo_hi[0], o), max(lo_hi[1], o))

    def add_columns(self, cols: list) -> None:
        """:meth:`add_readings` for readings as :class:`~aiotstream.records.ReadingColumns` (good quality, one
        topic and partition per column set): the same rows and input spans, no object per value. Columns in
        time order are taken row by row (the readings of one time together); a row with a new channel or
        one already handed out, and columns out of order, reading by reading."""
        for c in cols:
            ts = c.ts_ns
            if not all(map(le, ts, islice(ts, 1, None))):
                self._add_columns_one_by_one(c, 0, len(ts))
                continue
            exclude, index, pending, spans = self.exclude, self.index, self.pending, self.spans
            last = self.last_ns
            key = (c.topic, c.partition)
            metrics, values, offsets = c.metrics, c.values, c.offsets
            i, n = 0, len(ts)
            plain = exclude.isdisjoint(metrics)  # (the usual case: every metric a channel)
            channels = self.channels
            while i < n:
                t = ts[i]
                j = bisect_right(ts, t, i)
                if plain and (last is None or t > last) and metrics[i:j] == channels:
                    # the usual row: every channel once, in channel order; kept as the list of its values
                    row = pending.get(t)
                    if row is None:
                        pending[t] = values[i:j]
                        if self._first is not None and t < self._first:
                            self._first = t
                    else:
                        if type(row) is not dict:
                            row = pending[t] = dict(enumerate(row))
                        row.update(enumerate(values[i:j]))
                    seg = offsets[i:j]
                    _merge_span(spans, t, key, min(seg), max(seg))
                    i = j
                    continue
                if plain:  # channel indexes (-1: a new channel) in C loops
                    chans = list(map(index.get, metrics[i:j], repeat(-1, j - i)))
                else:
                    chans = [index.get(m, -1) if m not in exclude else -2 for m in metrics[i:j]]
                if (last is not None and t <= last) or -1 in chans:  # stale, or a new channel: one by one
                    self._add_columns_one_by_one(c, i, j)
                    i = j
                    continue
                if plain:  # every reading of the row taken, in order (a repeated channel: the last wins)
                    row = pending.get(t)
                    if row is None:
                        pending[t] = dict(zip(chans, values[i:j]))
                        if self._first is not None and t < self._first:
                            self._first = t
                    else:
                        if type(row) is not dict:
                            row = pending[t] = dict(enumerate(row))
                        row.update(zip(chans, values[i:j]))
                    seg = offsets[i:j]
                    _merge_span(spans, t, key, min(seg), max(seg))
                    i = j
                    continue
                taken = [k for k, ch in enumerate(chans) if ch >= 0]
                if taken:
                    row = pending.get(t)
                    if row is None:
                        row = pending[t] = {}
                        if self._first is not None and t < self._first:
                            self._first = t
                    elif type(row) is not dict:
                        row = pending[t] = dict(enumerate(row))
                    for k in taken:
                        row[chans[k]] = values[i + k]
                    seg = [offsets[i + k] for k in taken]
                    _merge_span(spans, t, key, min(seg), max(seg))
                i = j

    def _add_columns_one_by_one(self, c: Any, i: int, j: int) -> None:
        """:meth:`add_readings` of readings ``i:j`` of columns ``c``, reading by reading."""
        exclude, index, pending, spans = self.exclude, self.index, self.pending, self.spans
        last = self.last_ns
        key = (c.topic, c.partition)
        row_t = None
        row: dict[int, float] = {}
        sp: dict[tuple[str, int], tuple[int, int]] = {}
        for t, m, v, o in zip(c.ts_ns[i:j], c.metrics[i:j], c.values[i:j], c.offsets[i:j]):
            if m in exclude:
                continue
            ch = index.get(m)
            if ch is None:  # a new channel (or one over the limit): the general path
                self.add(t, m, v, (c.topic, c.partition, o))
                row_t = None
                continue
            if t != row_t:
                if last is not None and t <= last:
                    self.stale += 1
                    STATS.add("dropped", "scalar_stale_reading", 1)
                    continue
                row_t = t
                got = pending.get(t)
                if got is None:
                    row = pending[t] = {}
                    if self._first is not None and t < self._first:
                        self._first = t
                elif type(got) is not dict:
                    row = pending[t] = dict(enumerate(got))
                else:
                    row = got
                got_sp = spans.get(t)
                sp = spans[t] = {} if got_sp is None else got_sp
            row[ch] = v
            lo_hi = sp.get(key)
            if lo_hi is None:
                sp[key] = (o, o)
            elif o < lo_hi[0] or o > lo_hi[1]:
                sp[key] = (min(lo_hi[0], o), max(lo_hi[1], o))

    def first_ns(self) -> int | None:
        """The earliest pending row's time (None: nothing pending)."""
        first = self._first
        if first is None and self.pending:
            first = self._first = min(self.pending)
        return first

    def take_rows(self, before_ns: float, spans: Spans | None = None) -> list[tuple[int, dict[int, float]]]:
        """The rows with time < ``before_ns``, oldest first, as ``(ts, {channel: value})``; their readings'
        input spans are merged into ``spans``."""
        return [(t, row if type(row) is dict else dict(enumerate(row)))
                for t, row in self._take(before_ns, spans)]

    def _take(self, before_ns: float, spans: Spans | None = None) -> list[tuple[int, Row]]:
        """:meth:`take_rows` with each row as kept (a dict, or a list of every channel's value)."""
        pending = self.pending
        due = [t for t in pending if t < before_ns]
        if not due:
            return []
        due.sort()
        out = list(zip(due, map(pending.pop, due)))
        self._first = None  # recomputed when asked
        if self.spans:
            sps = list(map(self.spans.pop, due, repeat(None)))
            if spans is not None:
                for sp in sps:
                    if not sp:
                        continue
                    for key, lo_hi in sp.items():  # merge_spans, inline (once per row)
                        cur = spans.get(key)
                        if cur is None:
                            spans[key] = lo_hi
                        elif lo_hi[0] < cur[0] or lo_hi[1] > cur[1]:
                            spans[key] = (min(cur[0], lo_hi[0]), max(cur[1], lo_hi[1]))
        self.last_ns = due[-1]
        return out

    def take(self, before_ns: float, spans: Spans | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`take_rows` as arrays: (ts int64 (rows,), values (rows, channels)), NaN where a channel
        has no reading at that time."""
        return rows_array_before(self._take(before_ns, spans), len(self.channels))


# whole rows mostly in the order the channels get (a, b, c: the usual case), sometimes another order, fewer
# or more channels (a new one: e, or one excluded or over the limit: d)
ORDERS = [["a", "b", "c"]] * 5 + [["a", "b"], ["b", "a", "c"], ["a", "b", "c", "e"], ["a", "b", "c", "d"], ["c"]]
METRICS = ["a", "b", "c", "d", "e"]

# times are relative to a clock that the ops advance (so most rows are new, some repeat a pending or a
# handed-out time): (dt, order, rows) whole rows dt, dt+1.. from the clock; (dt, metric) loose readings
METRIC = st.sampled_from(METRICS[:3] * 3 + METRICS)  # mostly the usual three
whole = st.tuples(st.integers(-3, 2), st.sampled_from(ORDERS), st.integers(1, 3),
                  st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 11), st.sampled_from([-1, 1]))))
loose = st.lists(st.tuples(st.integers(-3, 2), METRIC), min_size=1, max_size=8)
op = st.one_of(
    st.tuples(st.just("cols"), st.lists(st.tuples(st.integers(0, 1), st.one_of(whole, whole, loose)),
                                        min_size=1, max_size=3)),
    st.tuples(st.just("add"), st.tuples(st.integers(-3, 2), METRIC, st.integers(0, 1))),
    st.tuples(st.just("readings"), st.lists(st.tuples(st.integers(-3, 2), METRIC,
                                                      st.integers(0, 1)), max_size=8)),
    st.tuples(st.just("take"), st.integers(-4, 1)),
)


def _columns(part: int, spec: Any, clock: list[int]) -> ReadingColumns:
    """A column set of partition ``part``: whole rows (``(dt, order, k, skew)``: rows at clock + dt,
    + dt + 1 .. k of them, each with the metrics of ``order`` in that order; ``skew`` (reading, +-1): one
    reading's time off by one) or loose ``(dt, metric)`` readings; values and offsets numbered
    (``clock[1]``), the clock (``clock[0]``) moved to the newest time."""
    if isinstance(spec, tuple):
        dt, order, k, skew = spec
        pairs = [(clock[0] + dt + r, m) for r in range(k) for m in order]
        if skew is not None and skew[0] < len(pairs):
            t, m = pairs[skew[0]]
            pairs[skew[0]] = (t + skew[1], m)
    else:
        pairs = [(clock[0] + dt, m) for dt, m in spec]
    vals, offs = [], []
    for _ in pairs:
        clock[1] += 1
        vals.append(float(clock[1]))
        offs.append((clock[1] * 7) % 23)  # offsets out of order within a row too
    clock[0] = max(clock[0], max(t for t, _ in pairs) + 1)
    return ReadingColumns("a", "top", part, [t * 10 for t, _ in pairs], [m for _, m in pairs], vals, offs)


def _same_state(new: RowAssembler, old: RowAssemblerBefore) -> None:
    assert new.channels == old.channels and new.index == old.index
    assert new.stale == old.stale and new.last_ns == old.last_ns and new.first_ns() == old.first_ns()
    # the rows pending: in ``pending`` or on the tail (whole rows in order, while nothing else is pending)
    assert not (new._tt and new.pending)
    assert sorted([*new.pending, *new._tt]) == sorted(old.pending)


def _same_take(new: RowAssembler, old: RowAssemblerBefore, before: float, sn: Spans, so: Spans) -> None:
    rn, ro = new._take(before, sn), old._take(before, so)
    assert sn == so
    as_dicts = [(t, r if type(r) is dict else dict(enumerate(r))) for t, r in rn]
    assert as_dicts == [(t, r if type(r) is dict else dict(enumerate(r))) for t, r in ro]
    n = len(new.channels)
    tn, xn = rows_array(rn, n)
    to, xo = rows_array_before(ro, n)
    assert tn.dtype == to.dtype and tn.tolist() == to.tolist()
    assert xn.dtype == xo.dtype and xn.shape == xo.shape
    np.testing.assert_array_equal(xn, xo)


@settings(max_examples=500, deadline=None)
@given(st.lists(op, max_size=16), st.sampled_from([(64, frozenset()), (3, frozenset()), (64, frozenset({"d"}))]))
def test_the_assembler_equals_the_one_before_its_whole_row_paths(ops: list, limits: tuple) -> None:
    max_channels, exclude = limits
    new, old = RowAssembler(max_channels, set(exclude)), RowAssemblerBefore(max_channels, set(exclude))
    sn: Spans = {}
    so: Spans = {}
    clock = [5, 0]  # [the newest time + 1, the last value / offset number]
    for kind, arg in ops:
        if kind == "cols":
            cols = [_columns(part, spec, clock) for part, spec in arg]
            new.add_columns(cols)
            old.add_columns(cols)
        elif kind == "add":
            dt, m, part = arg
            t = clock[0] + dt
            clock[0], clock[1] = max(clock[0], t + 1), clock[1] + 1
            pos = ("top", part, clock[1] % 17)
            assert new.add(t * 10, m, float(clock[1]), pos) == old.add(t * 10, m, float(clock[1]), pos)
        elif kind == "readings":
            rs = []
            for dt, m, part in arg:
                t = clock[0] + dt
                clock[0], clock[1] = max(clock[0], t + 1), clock[1] + 1
                rs.append(Reading("a", t * 10, m, float(clock[1]), Position("top", part, clock[1] % 17)))
            new.add_readings(rs)
            old.add_readings(rs)
        else:
            _same_take(new, old, (clock[0] + arg) * 10, sn, so)
        _same_state(new, old)
    _same_take(new, old, math.inf, sn, so)
    _same_state(new, old)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 4).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.one_of(
    st.dictionaries(st.integers(0, max(n - 1, 0)), st.floats(allow_nan=True), max_size=n),
    st.lists(st.floats(allow_nan=True), min_size=max(n - 1, 0), max_size=n + 1),
    st.lists(st.floats(allow_nan=True), min_size=n, max_size=n)), max_size=6))))
def test_rows_array_equals_the_one_before(case: tuple[int, list]) -> None:
    """Rows as lists of every channel (the usual case), shorter or longer lists, dicts, and mixes of them:
    the arrays of before (a list row longer than the channels raises in both)."""
    n, raw = case
    rows = [(1_000 + k, r) for k, r in enumerate(raw)]
    try:
        want = rows_array_before(rows, n)
    except (IndexError, ValueError) as e:
        try:
            rows_array(rows, n)
        except type(e):
            return
        raise AssertionError("rows_array gave arrays where the code before raised") from None
    ts, x = rows_array(rows, n)
    assert ts.dtype == want[0].dtype and ts.tolist() == want[0].tolist()
    assert x.dtype == want[1].dtype and x.shape == want[1].shape
    np.testing.assert_array_equal(x, want[1])
