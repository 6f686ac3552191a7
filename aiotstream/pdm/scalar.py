"""An asset's scalar readings as rows for the streaming detector (issue 17; docs/detection.md).

Readings arrive one metric per record. :class:`RowAssembler` forms rows per asset by event time: every
channel read at the same timestamp is one row, a channel without a reading at that time is NaN (the
detector treats it as missing), a repeated ``(timestamp, metric)`` keeps the last value. A row is final
once the asset's windows have closed past its time (the flow's watermark: a reading that would still
change it is ``late`` and dead-lettered), so rows reach the detector in time order whatever order the
readings came in.

**Channel order.** Channels are numbered in order of first appearance (within one input batch, in its
order). The order is fixed when the detector starts, after ``settle_rows`` final rows: every channel
seen by then is a column. A channel first seen later is appended and the detector starts afresh with
the wider row (a new warm-up; its learned state cannot describe a channel it never saw); the block
record says so (``restarted``). Metrics beyond ``max_channels`` are ignored and counted (run summary
``dropped scalar_channel_limit``).

:class:`ScalarScorer` holds the assembler and the asset's
:class:`~aiotstream.models.streaming.StreamingDetector` and scores
final rows a block at a time (``update_block``). Both pickle (the flow's recovery snapshot).
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import itemgetter, le
from typing import Any

import numpy as np

from aiotstream.models.streaming import BlockResult, ChangeEvent, StreamingDetector, make_pipeline
from aiotstream.records import Reading
from aiotstream.runstats import STATS

Spans = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (first offset, last offset)
Row = dict[int, float] | list[float]  # {channel: value}, or every channel's value in channel order


def merge_spans(into: Spans, more: Spans) -> None:
    for key, (lo, hi) in more.items():
        cur = into.get(key)
        into[key] = (lo, hi) if cur is None else (min(cur[0], lo), max(cur[1], hi))


def rows_array(rows: list[tuple[int, Row]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ts, {channel: value})`` rows as (ts int64 (rows,), values (rows, n)) with NaN for missing; a row
    may also be a list, its values in channel order (:class:`RowAssembler`'s full rows)."""
    m = len(rows)
    if m:
        ts, vals = zip(*rows)
        # full rows as lists: the usual case, the only path for them (a dict row, or a row of another
        # length, raises or gives another shape: the paths below)
        try:
            x = np.array(vals, dtype=np.float64)
        except (TypeError, ValueError):
            pass
        else:
            if x.shape == (m, n):
                return np.array(ts, dtype=np.int64), x
    vals = list(map(itemgetter(1), rows))
    kinds = set(map(type, vals))
    if not kinds - {dict} and all(map(tuple(range(n)).__eq__, map(tuple, vals))):  # full rows as dicts
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


class RowAssembler:
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
        self._tail_init()

    # The tail: whole rows (every channel once, in channel order) of one input (topic, partition), each newer
    # than the one before, kept as flat lists while nothing else is pending: the usual rows of table
    # columns. Row j is at ``_tt[j]``, its values are ``_tv[j k: (j + 1) k]`` (k: the channels), its
    # readings' offsets are ``_to[j k: (j + 1) k]`` of input ``_tkey`` (only their least and greatest count:
    # an adopted row has its span's two ends there). Such rows go to the detector as one
    # array (ScalarScorer.step) with no row object. Any other path first moves the tail into ``pending`` and
    # ``spans`` as the rows and spans today's code keeps (_flush_tail), so the tail is non-empty only while
    # ``pending`` is empty, and every path behaves as without it (tests/unit/test_scalar_rows_fast.py,
    # test_scalar_tail.py); whole rows pending in that form are adopted onto it (_adopt). A
    # snapshot (pickle) holds the rows as ``pending`` (no tail): the state of before, both ways.
    _use_tail = True  # (False: the paths of before only, for the tests' comparisons)

    def _tail_init(self) -> None:
        self._tt: list[int] = []
        self._tv: list[float] = []
        self._to: list[int] = []
        # ``_to`` known to be in order (non-decreasing): its least and greatest are its ends (_take_tail, once
        # a block, without a pass over it). Columns in order whose first offset is not below the tail's last
        # keep it so (one test a set of columns); any other addition clears it (min() and max() then).
        self._tsorted = True
        self._tkey: tuple[str, int] | None = None
        self._bad_t: int | None = None  # a pending row that _adopt found unfit (it stays so while pending)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for a in ("_tt", "_tv", "_to", "_tsorted", "_tkey", "_bad_t"):
            state.pop(a, None)
        if self._tt:  # the rows as the code before keeps them
            pending, spans = dict(self.pending), {t: dict(sp) for t, sp in self.spans.items()}
            self._tail_rows(pending, spans)
            state["pending"], state["spans"], state["_first"] = pending, spans, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tail_init()

    def _tail_rows(self, pending: dict, spans: dict) -> None:
        tt, tv, to, key = self._tt, self._tv, self._to, self._tkey
        k = len(tv) // len(tt)
        for j, t in enumerate(tt):
            pending[t] = tv[j * k: j * k + k]
            offs = to[j * k: j * k + k]
            _merge_span(spans, t, key, min(offs), max(offs))

    def _adopt(self, key: tuple[str, int], k: int) -> bool:
        """Whether the rows pending (up to 256) are the tail's kind (whole rows as lists of ``k`` values,
        every reading of each from input ``key``): if so, they become the tail (nothing else pending)."""
        pending, spans = self.pending, self.spans
        if len(pending) > 256 or self._bad_t in pending:  # (a row found unfit before: still pending)
            return False
        for t, row in pending.items():
            sp = spans.get(t)
            if (type(row) is not list or len(row) != k or sp is None or len(sp) != 1 or key not in sp
                    or (k == 1 and sp[key][0] != sp[key][1])):  # (the last: one offset slot for two ends)
                self._bad_t = t
                return False
        tt, tv, to = [], [], []
        for t in sorted(pending):
            tt.append(t)
            tv += pending[t]
            a, b = spans[t][key]
            to.append(a)  # (k offsets a row: the span's ends, the rest its last)
            to += repeat(b, k - 1) if k > 1 else ()
        self._tt, self._tv, self._to, self._tkey = tt, tv, to, key
        self._tsorted = all(map(le, to, islice(to, 1, None)))  # (rows in time order: offsets too, usually)
        self.pending, self.spans, self._first = {}, {}, None
        return True

    def _flush_tail(self) -> None:
        """The tail's rows into ``pending`` and ``spans``, as the paths of before keep them."""
        if self._tt:
            self._tail_rows(self.pending, self.spans)
            self._first = None  # (recomputed when asked)
            self._tail_init()

    def _put_offsets(self, offs: list[int], in_order: bool) -> None:
        """A tail row's offsets (``in_order``: those of columns known in order), keeping ``_tsorted``."""
        to = self._to
        if self._tsorted and not (in_order and (not to or offs[0] >= to[-1])):
            self._tsorted = False
        to += offs

    def _take_tail(self, m: int, spans: Spans | None) -> tuple[list[int], list[float]]:
        """The tail's first ``m`` rows handed out (as :meth:`_take` hands out rows): their times and their
        values (flat, channel order); their offsets merged into ``spans``."""
        tt, tv = self._tt, self._tv
        k = len(tv) // len(tt)
        ts, vals = tt[:m], tv[: m * k]
        if spans is not None:
            offs = self._to[: m * k]
            lo, hi = (offs[0], offs[-1]) if self._tsorted else (min(offs), max(offs))
            key = self._tkey
            cur = spans.get(key)
            spans[key] = (lo, hi) if cur is None else (min(cur[0], lo), max(cur[1], hi))
        if m == len(tt):
            self._tail_init()
        else:
            del tt[:m], tv[: m * k], self._to[: m * k]
        self.last_ns = ts[-1]
        return ts, vals

    def add(self, ts_ns: int, metric: str, value: float, pos: tuple[str, int, int] | None = None) -> bool:
        """One reading (``pos``: its topic, partition, offset); False if it is not a channel (excluded, over
        the limit, or its row is gone)."""
        if self._tt:
            self._flush_tail()
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
        if self._tt:
            self._flush_tail()
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
        channels = self.channels
        tt = self._tt
        if tt and len(cols) == 1:  # the usual call: one row of every channel onto a going tail (the first
            c = cols[0]            # path below, in short)
            ts = c.ts_ns
            t = ts[0]
            if (t > tt[-1] and c.metrics == channels and ts.count(t) == len(ts) == len(channels)
                    and c.partition == self._tkey[1] and c.topic == self._tkey[0]):
                tt.append(t)
                self._tv += c.values
                offs = c.offsets
                if self._tsorted and not (c.in_order and offs[0] >= self._to[-1]):
                    self._tsorted = False
                self._to += offs
                return
        for c in cols:
            ts = c.ts_ns
            n = len(ts)
            i = 0
            if channels and not n % (k := len(channels)) and self._use_tail and (
                    not self.pending or self._adopt((c.topic, c.partition), k)):
                # whole rows in time order, nothing else pending: onto the tail (see _tail_init)
                tt = self._tt
                key = (c.topic, c.partition)
                if not tt or key == self._tkey:
                    last = tt[-1] if tt else self.last_ns
                    metrics = c.metrics
                    if n == k:  # (one row: the usual set)
                        t = ts[0]
                        if (last is None or t > last) and metrics == channels and ts.count(t) == k:
                            tt.append(t)
                            self._tv += c.values
                            self._put_offsets(c.offsets, c.in_order)
                            self._tkey = key
                            continue
                    else:
                        firsts = ts[::k]
                        if firsts and c.in_order and (last is None or firsts[0] > last) \
                                and ts[k - 1::k] == firsts and len(set(firsts)) == len(firsts) \
                                and metrics == channels * len(firsts):
                            # (times in order: each row's first and last time equal and no time twice is
                            # every row whole and newer than the one before) all rows at once
                            tt += firsts
                            i = n
                        while i < n:  # row by row up to the first that is not whole and new
                            t = ts[i]
                            j = i + k
                            if not ((last is None or t > last) and metrics[i:j] == channels
                                    and ts[i:j].count(t) == k):
                                break
                            tt.append(t)
                            last = t
                            i = j
                        if i:  # the rows taken: their values and offsets in one store each (as row by row:
                            # the offsets of columns known in order are in order from row to row)
                            self._tv += c.values[:i]
                            self._put_offsets(c.offsets[:i], c.in_order)
                            self._tkey = key
                        if i == n:
                            continue
            if self._tt:  # any other path: the tail's rows as the paths below keep them
                self._flush_tail()
            if channels and not n % (k := len(channels)):
                # whole rows, every channel once in channel order (the usual sets: one or two rows of a poll
                # batch), at a time not pending nor handed out: the first path of the loop below for each,
                # without its tests; from the first other one on, that loop (the same rows: a set's readings
                # are taken in order, and these rows would be whole rows there too)
                pending, metrics = self.pending, c.metrics
                while i < n:
                    t = ts[i]
                    if t in pending or (self.last_ns is not None and t <= self.last_ns):
                        break
                    if n == k:
                        if metrics != channels or ts.count(t) != k:
                            break
                        vals, offs = c.values[:], c.offsets
                    else:
                        j = i + k
                        if metrics[i:j] != channels or ts[i:j].count(t) != k:
                            break
                        vals, offs = c.values[i:j], c.offsets[i:j]
                    pending[t] = vals
                    if self._first is not None and t < self._first:
                        self._first = t
                    _merge_span(self.spans, t, (c.topic, c.partition), min(offs), max(offs))
                    i += k
                if i == n:
                    continue
            if not all(map(le, islice(ts, i, None), islice(ts, i + 1, None))):
                self._add_columns_one_by_one(c, i, n)
                continue
            exclude, index, pending, spans = self.exclude, self.index, self.pending, self.spans
            last = self.last_ns
            key = (c.topic, c.partition)
            metrics, values, offsets = c.metrics, c.values, c.offsets
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
        if self._tt:
            self._flush_tail()
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
        if self._tt:  # (then nothing else is pending)
            return self._tt[0]
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
        tt = self._tt
        if tt:  # (then nothing else is pending) the tail's rows, as lists
            m = bisect_left(tt, before_ns)
            if not m:
                return []
            k = len(self._tv) // len(tt)
            ts, vals = self._take_tail(m, spans)
            return [(t, vals[j * k: j * k + k]) for j, t in enumerate(ts)]
        pending = self.pending
        due = [t for t in pending if t < before_ns]
        if not due:
            return []
        due.sort()
        out = list(zip(due, map(pending.pop, due)))
        self._first = None  # recomputed when asked
        if self.spans:
            sps = list(filter(None, map(self.spans.pop, due, repeat(None))))
            if spans is not None and sps:
                keys = set(chain.from_iterable(sps))
                if len(keys) == 1:  # the usual case: the rows' readings from one input (partition)
                    los, his = zip(*chain.from_iterable(map(dict.values, sps)))
                    lo, hi = min(los), max(his)
                    (key,) = keys
                    cur = spans.get(key)
                    spans[key] = (lo, hi) if cur is None else (min(cur[0], lo), max(cur[1], hi))
                    sps = []
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
        return rows_array(self._take(before_ns, spans), len(self.channels))


@dataclass
class ScoredBlock:
    """Final rows of one asset scored as one block."""

    ts: np.ndarray            # (rows,) int64 ns
    x: np.ndarray             # (rows, channels) the readings (NaN: missing)
    channels: list[str]
    result: BlockResult
    restarted: list[str] = field(default_factory=list)  # channels whose first appearance restarted it
    level: np.ndarray | None = None  # the baseline after the block (explanations' normal band)
    scale: np.ndarray | None = None  # (None: from ``var``, for the channels explained, see scale_of)
    rows_before: int = 0  # rows the detector had scored before this block (change events count from 0)
    spans: Spans = field(default_factory=dict)  # the inputs of its rows (lineage)
    resets: list[ChangeEvent] = field(default_factory=list)  # a maintenance reset re-baselined it here

    var: np.ndarray | None = None  # the baseline's var after the block (its scale, computed when asked)

    @property
    def events(self) -> list[ChangeEvent]:
        return self.result.events + self.resets

    def scale_of(self, i: int) -> float:
        """Channel ``i``'s :meth:`~aiotstream.models.streaming.RobustBaseline.scale` after the block:
        ``max(sqrt(var), 1e-9 (1 + |level|))`` as numpy computes it (NaN if either is), for one channel
        (a block's explanation needs a few of them, not the whole array)."""
        if self.scale is not None:
            return float(self.scale[i])
        assert self.var is not None and self.level is not None
        v, lv = float(self.var[i]), float(self.level[i])
        sd = math.sqrt(v) if v >= 0.0 else math.nan  # np.sqrt: NaN below 0
        floor = 1e-9 * (1.0 + abs(lv))
        return sd if sd >= floor or math.isnan(sd) else floor  # np.maximum: NaN if either is NaN


class ScalarScorer:
    """One asset's rows through its streaming detector, a block at a time."""

    def __init__(self, config: object, exclude: set[str] | frozenset[str] = frozenset(),
                 impl: str | None = None) -> None:
        from aiotstream.config import ScalarConfig

        assert isinstance(config, ScalarConfig)
        self.cfg = config
        self.detector_config = config.detector_config()
        self.impl = impl
        self.rows = RowAssembler(config.max_channels, set(config.exclude) | set(exclude))
        self.detector: StreamingDetector | None = None
        self.width = 0  # channels the detector was built for
        self.held_ts: list[np.ndarray] = []  # final rows before the detector starts
        self.held_x: list[np.ndarray] = []
        self.ready: list[tuple[int, Row]] = []  # final rows waiting for a block
        self.spans: Spans = {}  # the inputs of the rows taken and not yet scored
        self.rebaseline_ns: int | None = None  # rows from this time on go to a fresh detector
        self.holds: list[list] = []  # [start_ns, end_ns | None, releveled]: an operating-condition change

    def rebaseline(self, at_ns: int) -> None:
        """The machine was reset (maintenance): the rows from ``at_ns`` on are a new normal. The first block
        that reaches them scores the rows before ``at_ns`` with the detector as it is, then starts a fresh
        detector (same config and channels: a new warm-up, so the level shift is learnt, not alerted on)
        for the rest; that block's ``changes`` say so for every channel (old level: the baseline's, new
        level: the mean of the block's rows after the reset)."""
        self.rebaseline_ns = at_ns

    def condition(self, changing: bool, at_ns: int, since_ns: int) -> None:
        """The asset's operating condition (its window detector's load factor) is changing at ``at_ns``
        (``changing``), or no longer. While it changes (from ``since_ns``), this detector's alarms are held
        (its alert is 0 for those rows); where the change ends, every channel is re-baselined at its
        current level (:meth:`~aiotstream.models.streaming.StreamingDetector.relevel`: change events in
        that block's ``changes``), so a new load's temperature is the new normal, not an alert."""
        holds = self.__dict__.setdefault("holds", [])
        if changing and (not holds or holds[-1][1] is not None):
            holds.append([since_ns, None, False])
        elif not changing and holds and holds[-1][1] is None:
            holds[-1][1] = at_ns

    def add(self, ts_ns: int, metric: str, value: float, pos: tuple[str, int, int] | None = None) -> bool:
        return self.rows.add(ts_ns, metric, value, pos)

    def add_readings(self, readings: list) -> None:
        self.rows.add_readings(readings)

    def add_columns(self, cols: list) -> None:
        self.rows.add_columns(cols)

    def _pad(self, x: np.ndarray, n: int) -> np.ndarray:
        if x.shape[1] == n:
            return x
        out = np.full((len(x), n), math.nan)
        out[:, : x.shape[1]] = x
        return out

    def due(self, before_ns: int, period_end_ns: int | None) -> bool:
        """Whether :meth:`step` at ``before_ns`` can have work: rows wait and either they may span
        ``block_s`` by then or a KPI period ends by then (its rows must be counted in it). A cheap test
        for every closed window."""
        first = self.first_ns()
        if first is None:
            return False
        return before_ns - first > self.cfg.block_s * 1e9 or (period_end_ns is not None
                                                               and period_end_ns <= before_ns)

    def first_ns(self) -> int | None:
        """The time of the earliest row not scored yet (waiting for its block, or not final)."""
        if self.ready:
            return self.ready[0][0]
        return self.rows.first_ns()

    def step(self, before_ns: float, force: bool = False, final: bool = False) -> list[ScoredBlock]:
        """Take the rows final before ``before_ns``; score them once they span ``block_s`` of event time,
        or at once with ``force`` (a KPI period ends) or ``final`` (the end of the input, a silent asset:
        this also starts a detector that has fewer than ``settle_rows`` rows)."""
        ready = self.ready
        tt = self.rows._tt
        if tt and not ready:  # whole rows in order (RowAssembler's tail): to an array with no row object
            m = bisect_left(tt, before_ns)
            if m and (force or final or tt[m - 1] - tt[0] >= self.cfg.block_s * 1e9):
                ts, vals = self.rows._take_tail(m, self.spans)
                x = np.array(vals, dtype=np.float64).reshape(m, len(self.rows.channels))
                return self._score(np.array(ts, dtype=np.int64), x, final)
        rows = self.rows._take(before_ns, self.spans)
        if rows:
            ready.extend(rows)
        if not ready or (not (force or final) and ready[-1][0] - ready[0][0] < self.cfg.block_s * 1e9):
            return []
        ts, x = rows_array(ready, len(self.rows.channels))
        self.ready = []
        return self._score(ts, x, final)

    def _score(self, ts: np.ndarray, x: np.ndarray, force: bool) -> list[ScoredBlock]:
        at = getattr(self, "rebaseline_ns", None)  # (a snapshot from before re-baselining has none)
        if at is not None and self.detector is None and ts[-1] >= at:  # still settling: nothing learnt
            self.rebaseline_ns = None
        elif at is not None and ts[-1] >= at:
            self.rebaseline_ns = None
            cut = int(np.searchsorted(ts, at))
            out = self._score(ts[:cut], x[:cut], force) if cut else []
            old = self.detector.baseline.level.copy() if self.detector is not None else None
            self._start(len(self.rows.channels))
            out.extend(self._score(ts[cut:], x[cut:], force))
            if old is not None and out:
                after = x[cut:]
                for c in range(min(len(old), after.shape[1])):
                    col = after[:, c][~np.isnan(after[:, c])]
                    if len(col) and not math.isnan(old[c]):
                        out[-1].resets.append(ChangeEvent(out[-1].rows_before, c, float(old[c]),
                                                          float(np.mean(col))))
            return out
        n = len(self.rows.channels)
        if self.detector is None:
            self.held_ts.append(ts)
            self.held_x.append(x)
            held = sum(len(a) for a in self.held_ts)
            if held < self.cfg.settle_rows and not force:
                return []
            ts = np.concatenate(self.held_ts)
            x = np.concatenate([self._pad(a, n) for a in self.held_x])
            self.held_ts, self.held_x = [], []
            self._start(n)
            return self._blocks(ts, x, [])
        if n > self.width:  # a channel first seen after the order was fixed: start afresh with it
            added = self.rows.channels[self.width:n]
            self._start(n)
            return self._blocks(ts, x, added)
        return self._blocks(ts, x, [])

    def _blocks(self, ts: np.ndarray, x: np.ndarray, restarted: list[str]) -> list[ScoredBlock]:
        """:meth:`_block`, split where an operating-condition change ended (the detector re-baselines
        there), with the alert held (0) on the rows of a change (:meth:`condition`)."""
        holds = self.__dict__.get("holds")
        if not holds:
            return [self._block(ts, x, restarted)]
        out: list[ScoredBlock] = []
        pending: list[ChangeEvent] = []
        spans = dict(self.spans)  # every part of a split block names the inputs of the whole (lineage)
        for h in holds:
            end = h[1]
            if end is None or h[2] or not len(ts) or end > ts[-1]:
                continue
            cut = int(np.searchsorted(ts, end))
            if cut:
                self.spans = dict(spans)
                out.append(self._block(ts[:cut], x[:cut], restarted))
                restarted = []
                ts, x = ts[cut:], x[cut:]
            assert self.detector is not None
            pending.extend(self.detector.relevel())
            h[2] = True
        if len(ts):
            self.spans = dict(spans)
            out.append(self._block(ts, x, restarted))
            out[-1].resets.extend(pending)
        elif out:
            out[-1].resets.extend(pending)
        for b in out:
            held = np.zeros(len(b.ts), bool)
            for start, end, _ in holds:
                held |= (b.ts >= start) & ((b.ts < end) if end is not None else True)
            if held.any():
                b.result.alert[held] = False
        last = ts[-1] if len(ts) else (out[-1].ts[-1] if out else None)
        if last is not None:  # done with: ended, re-baselined and behind the rows scored
            self.holds = [h for h in holds if not (h[2] and h[1] <= last)]
        return out

    def _start(self, n: int) -> None:
        self.detector = make_pipeline(self.cfg.pipeline, n, self.detector_config, impl=self.impl)
        self.width = n

    def _block(self, ts: np.ndarray, x: np.ndarray, restarted: list[str]) -> ScoredBlock:
        assert self.detector is not None
        before = self.detector.baseline.rows
        res = self.detector.update_block(x)
        b = self.detector.baseline
        spans, self.spans = self.spans, {}
        return ScoredBlock(ts, x, self.rows.channels[: self.width], res, restarted, b.level.copy(), None,
                           before, spans, var=b.var.copy())
