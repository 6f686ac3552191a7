"""Per-asset event-time windows with a watermark and a late-data policy.

A frame belongs to every window that contains the event time of its first
sample (``start <= t0 < start + length``; windows start at multiples of the
hop plus the asset's ``offset_ns``, 0 unless the site staggers its windows:
:func:`stagger_offset`). Frames and readings arrive on separate streams
(topics, partitions) that a consumer reads at different speeds, so each stream keeps its own progress (the
newest event time it delivered) and the watermark is the *slowest* active
stream's progress minus the allowed lateness; a window closes when the
watermark passes its end. A stream that has delivered nothing for
``idle_s`` of wall-clock time while another stream of the asset delivers stops
holding the watermark back (after a pause of every stream, silence counts from
the resumption, so the first stream back cannot outrun the others); so does an
``expected`` stream that has not shown up at all within ``idle_s`` of the
asset's first input (an asset without a temperature sensor, say). Without a
wall clock (``now_s=None``: replaying a bounded input) nothing is idle and an
expected stream is waited for until the input ends, so a replay gives the same
windows however fast each partition happens to be read. An input whose earliest window has already closed is
*late*: it is
returned to the caller (to become a dead letter), never dropped in silence.

Frames arrive here already reduced to per-channel partial sums (see
:mod:`aiotstream.features`), so a window keeps a list of small arrays and hands
them over, in event-time order, when it closes; the analysis merges them once.

>>> import numpy as np
>>> from aiotstream.records import Frame, Position
>>> w = WindowAssembler(length_ns=1_000, hop_ns=1_000, lateness_ns=0)
>>> m = np.array([[4, 0.0, 1.0, 0.0, 1.0, -1.0, 1.0, 4.0, 3.0, 1.0, -1.0]])
>>> closed, late = w.add([Frame("a", 0, 100, 4e9, None, Position("t", 0, 5), m)])
>>> closed, late = w.add([Frame("a", 1, 1_200, 4e9, None, Position("t", 0, 6), m)])
>>> [(c.start_ns, c.end_ns, c.n_frames) for c in closed], late
([(0, 1000, 1)], [])
"""
from __future__ import annotations

import math
import zlib
from bisect import bisect_left
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

from aiotstream.records import Frame, Reading, ReadingColumns


@dataclass(slots=True)
class _Acc:
    """What an open window has gathered so far."""

    frames: list[tuple[int, int, np.ndarray, np.ndarray | None]] = field(default_factory=list)  # t0, seq, ...
    offsets: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (topic, part) -> [first, last]
    first_seq: int = -1
    last_seq: int = -1
    readings: dict[str, list[float]] = field(default_factory=dict)

    def add_pos(self, topic: str, partition: int, offset: int) -> None:
        span = self.offsets.get((topic, partition))
        if span is None:
            self.offsets[(topic, partition)] = [offset, offset]
        else:
            span[0] = min(span[0], offset)
            span[1] = max(span[1], offset)


@dataclass(frozen=True, slots=True, init=False)
class ClosedWindow:
    """A finished window: its frames' partials (unmerged, in event-time order), readings, input span.

    ``partials[i]`` is frame i's ``(C, 11)`` time-domain partials and
    ``spectral[i]`` its spectral partials (None when the feature set has no
    spectral columns); frames are ordered by (t0, seq), so merging them in
    order sees the samples in time order.
    """

    asset: str
    start_ns: int
    end_ns: int
    partials: tuple[np.ndarray, ...]
    inputs: tuple[tuple[str, int, int, int], ...]  # (topic, partition, first offset, last offset)
    first_seq: int
    last_seq: int
    readings: dict[str, tuple[float, ...]]
    spectral: tuple[np.ndarray | None, ...] = ()

    def __init__(self, asset: str, start_ns: int, end_ns: int, partials: tuple[np.ndarray, ...],
                 inputs: tuple[tuple[str, int, int, int], ...], first_seq: int, last_seq: int,
                 readings: dict[str, tuple[float, ...]],
                 spectral: tuple[np.ndarray | None, ...] = ()) -> None:
        """Sets the slots directly (one window per second per asset: the generated frozen ``__init__``
        sets each field by name through ``object.__setattr__``); frozen, eq, repr and pickling as
        generated."""
        _cw_asset(self, asset)
        _cw_start(self, start_ns)
        _cw_end(self, end_ns)
        _cw_partials(self, partials)
        _cw_inputs(self, inputs)
        _cw_first(self, first_seq)
        _cw_last(self, last_seq)
        _cw_readings(self, readings)
        _cw_spectral(self, spectral)

    @property
    def n_frames(self) -> int:
        return len(self.partials)


_cw_asset, _cw_start, _cw_end, _cw_partials, _cw_inputs, _cw_first, _cw_last, _cw_readings, _cw_spectral = (
    ClosedWindow.__dict__[f].__set__ for f in ("asset", "start_ns", "end_ns", "partials", "inputs",
                                               "first_seq", "last_seq", "readings", "spectral"))


class ReadingsWindow:
    """A closed window of readings only, from one input partition, none of its values kept: the part of
    its :class:`ClosedWindow` that the per-asset step reads (``start_ns``, ``end_ns``, ``inputs``; no
    partials), made in one plain ``__init__`` instead of the frozen dataclass's nine stores through slot
    descriptors. Only ``add_columns(..., lean=True)`` makes them (a replayed table's asset closes one per
    second), for a caller that reads no more of a window than these and does not keep it."""

    __slots__ = ("end_ns", "inputs", "start_ns")
    partials: tuple[np.ndarray, ...] = ()  # (no frames)

    def __init__(self, start_ns: int, end_ns: int, inputs: tuple[tuple[str, int, int, int], ...]) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.inputs = inputs

    def __repr__(self) -> str:
        return f"ReadingsWindow({self.start_ns}, {self.end_ns}, {self.inputs})"


_start_of = attrgetter("start_ns")
_new_acc = object.__new__  # (an _Acc without its __init__: every slot is then stored by the caller)


def stagger_offset(asset: str, hop_ns: int) -> int:
    """Where an asset's windows start within the hop when the site staggers them (``window.stagger``): a
    thousandth of the hop picked by the CRC-32 of the asset id, the same in every process and run.

    >>> stagger_offset("pump-1", 1_000_000_000), stagger_offset("pump-2", 1_000_000_000)
    (294000000, 788000000)
    """
    return hop_ns * (zlib.crc32(asset.encode()) % 1000) // 1000


class WindowAssembler:
    """Event-time tumbling (hop == length) or sliding (hop < length) windows for one asset."""

    keep_readings: frozenset[str] | None = None
    """The metrics whose values :meth:`add_columns` keeps in the windows (None: every metric); the windows'
    input spans count every reading. (A class default: snapshots from before it keep every metric.)"""
    offset_ns: int = 0
    """Windows start at ``offset_ns`` plus multiples of the hop (0 <= offset < hop). (A class default:
    snapshots from before it start at multiples of the hop.)"""

    def __init__(self, length_ns: int, hop_ns: int, lateness_ns: int, asset: str = "", idle_s: float = 5.0,
                 expected: tuple[str, ...] = (), offset_ns: int = 0):
        if hop_ns <= 0 or length_ns <= 0 or hop_ns > length_ns:
            raise ValueError(f"need 0 < hop ({hop_ns}) <= length ({length_ns})")
        if not 0 <= offset_ns < hop_ns:
            raise ValueError(f"need 0 <= offset ({offset_ns}) < hop ({hop_ns})")
        if offset_ns:
            self.offset_ns = offset_ns
        self.asset = asset
        self.length_ns = length_ns
        self.hop_ns = hop_ns
        self.lateness_ns = lateness_ns
        self.idle_s = idle_s
        self.open: dict[int, _Acc] = {}
        self.progress: dict[str, int] = {}  # stream -> newest event time it delivered
        self.last_arrival: dict[str, float] = {}  # stream -> wall-clock time of its last input
        self.now_s: float | None = None
        self.expected = expected
        self.first_arrival: float | None = None
        self.closed_end_ns: int | None = None  # end of the newest closed window
        # wall-clock time the asset resumed after all its streams were silent
        self.resumed_at: float | None = None

    @property
    def max_event_ns(self) -> int | None:
        return max(self.progress.values()) if self.progress else None

    @property
    def watermark_ns(self) -> int | None:
        """Slowest active stream's progress minus the allowed lateness (None before any input)."""
        progress = self.progress
        if not progress:
            return None
        now = self.now_s
        # without a wall clock (replaying a bounded input) an expected stream is waited for until it comes
        # or the input ends; with one, for idle_s after the asset's first input
        if now is None or (self.first_arrival is not None and now - self.first_arrival <= self.idle_s):
            for s in self.expected:
                if s not in progress:
                    return None  # give an expected stream that has not arrived yet a chance to
        if now is None or len(progress) == 1:  # every stream counts (one stream: whether idle or not)
            return min(progress.values()) - self.lateness_ns
        # a stream is idle after idle_s of silence *while the asset is delivering*: after a pause of every
        # stream (a reconnect), silence counts from the resumption, so the first stream back cannot outrun
        resumed = getattr(self, "resumed_at", None)
        since = -math.inf if resumed is None else resumed
        last, idle = self.last_arrival, self.idle_s
        active = [t for s, t in progress.items() if now - max(last[s], since) <= idle]
        return min(active or progress.values()) - self.lateness_ns

    def _starts(self, t_ns: int) -> range:
        off = self.offset_ns
        last = ((t_ns - off) // self.hop_ns) * self.hop_ns + off
        first = last - ((self.length_ns - 1) // self.hop_ns) * self.hop_ns
        while first + self.length_ns <= t_ns:
            first += self.hop_ns
        return range(first, last + 1, self.hop_ns)

    def _is_late(self, t_ns: int) -> bool:
        return self.closed_end_ns is not None and self._starts(t_ns)[0] + self.length_ns <= self.closed_end_ns

    def add(self, items: list[Frame | Reading], now_s: float | None = None
            ) -> tuple[list[ClosedWindow], list[Frame | Reading]]:
        """Add a batch of this asset's frames/readings; return (windows closed, late items).

        ``now_s`` is the wall clock (any monotonic seconds) for stream idleness;
        None treats every stream as active.
        """
        late: list[Frame | Reading] = []
        self.now_s = now_s
        if self.first_arrival is None:
            self.first_arrival = now_s
        if now_s is not None and self.last_arrival and now_s - max(self.last_arrival.values()) > self.idle_s:
            self.resumed_at = now_s  # every stream was silent: the asset resumes now
        # readings take a lean path (there may be many per frame): what _is_late/_starts/add_pos do, inline,
        # with the last window and input span found kept for the next reading (same time, same partition)
        length, hop, closed_end, open_ = self.length_ns, self.hop_ns, self.closed_end_ns, self.open
        off = self.offset_ns
        tumbling = hop == length
        newest_reading: int | None = None  # the newest event time of the batch's readings taken
        last_start, acc, span_acc, span_topic, span_part, span = None, None, None, None, None, None
        for item in items:
            if type(item) is Reading or not isinstance(item, Frame):
                t = item.ts_ns
                if tumbling:
                    start = t - (t - off) % hop
                    if closed_end is not None and start + length <= closed_end:
                        late.append(item)
                        continue
                    if start != last_start:
                        acc = open_.get(start)
                        if acc is None:
                            acc = open_[start] = _Acc()
                        last_start = start
                    accs: tuple[_Acc, ...] | None = None
                else:
                    starts = self._starts(t)
                    if closed_end is not None and starts[0] + length <= closed_end:
                        late.append(item)
                        continue
                    accs = tuple(open_.get(s) or open_.setdefault(s, _Acc()) for s in starts)
                pos = item.pos
                keep = not item.status & 0x8000_0000  # a Bad-quality reading counts as input, not as a value
                topic, part = pos.topic, pos.partition
                for a in accs or (acc,):  # type: ignore[has-type]
                    if a is not span_acc or part != span_part or topic != span_topic:
                        key = (topic, part)
                        span = a.offsets.get(key)
                        if span is None:
                            o = pos.offset
                            span = a.offsets[key] = [o, o]
                        span_acc, span_topic, span_part = a, topic, part
                    o = pos.offset
                    if o < span[0]:  # type: ignore[index]
                        span[0] = o  # type: ignore[index]
                    elif o > span[1]:  # type: ignore[index]
                        span[1] = o  # type: ignore[index]
                    if keep:
                        vals = a.readings.get(item.metric)
                        if vals is None:
                            a.readings[item.metric] = [item.value]
                        else:
                            vals.append(item.value)
                if newest_reading is None or t > newest_reading:
                    newest_reading = t
                continue
            t, end, stream = item.t0_ns, item.end_ns, "frames"
            if self._is_late(t):
                late.append(item)
                continue
            for start in self._starts(t):
                acc_f = self.open.get(start)
                if acc_f is None:
                    acc_f = self.open[start] = _Acc()
                acc_f.add_pos(item.pos.topic, item.pos.partition, item.pos.offset)
                acc_f.frames.append((item.t0_ns, item.seq, item.partials, item.spectral))
                if acc_f.first_seq < 0 or item.seq < acc_f.first_seq:
                    acc_f.first_seq = item.seq
                acc_f.last_seq = max(acc_f.last_seq, item.seq)
            if end > self.progress.get(stream, -1):
                self.progress[stream] = end
            if now_s is not None:
                self.last_arrival[stream] = now_s
        if newest_reading is not None:
            if newest_reading > self.progress.get("readings", -1):
                self.progress["readings"] = newest_reading
            if now_s is not None:
                self.last_arrival["readings"] = now_s
        return self.close_until(self.watermark_ns), late

    def add_columns(self, cols: list[ReadingColumns], now_s: float | None = None,
                    times: tuple[int, int] | None = None, in_order: bool = False, lean: bool = False
                    ) -> list[ClosedWindow] | list[ClosedWindow | ReadingsWindow] | None:
        """:meth:`add` for a batch of readings as columns, without an object per value: the windows closed,
        or None (nothing changed) when the batch needs :meth:`add` (sliding windows, or a late reading).
        ``times``: the batch's (oldest, newest) reading time if the caller has it (None: found here);
        ``in_order``: the caller knows that the times of one set of columns are in order (False: checked
        here).

        Same effects as ``add`` of the readings the columns stand for (good quality, in order), which are
        then all taken (none late), except that the windows keep only the values of ``keep_readings`` if
        set. ``lean``: a closed window of readings only from one input partition without values kept comes
        as a :class:`ReadingsWindow` (the rest as :class:`ClosedWindow`)."""
        length, hop, closed_end, open_ = self.length_ns, self.hop_ns, self.closed_end_ns, self.open
        off = self.offset_ns
        if hop != length:
            return None
        if times is not None:
            oldest, newest = times
        elif any(c.ts_ns for c in cols):
            newest = max(max(c.ts_ns) for c in cols if c.ts_ns)
            oldest = min(min(c.ts_ns) for c in cols if c.ts_ns)
        else:
            newest = None
        if closed_end is not None and newest is not None \
                and oldest - (oldest - off) % hop + length <= closed_end:  # a late reading: add() says which
            return None
        keep = self.keep_readings
        progress = self.progress
        expected = self.expected  # (a replay waits for these: "readings" is there once this batch is taken)
        if now_s is None and len(cols) == 1 and keep is not None and newest is not None \
                and (not progress or (len(progress) == 1 and "readings" in progress)) \
                and (not expected or expected == ("readings",)):  # (a replayed table's batch: checked first)
            c = cols[0]
            ts = c.ts_ns
            metrics = c.metrics
            kept = None
            plain = keep.isdisjoint(metrics)  # no value kept, or all of one metric that is (a temperature's)
            if not plain and metrics[0] in keep and metrics.count(metrics[0]) == len(metrics):
                kept, plain = metrics[0], True
            if plain and (in_order or oldest == newest or ts == sorted(ts)):  # (in time order)
                self.now_s = None  # (first_arrival stays as it is; no resumption without a clock)
                return self._add_in_order(c, newest, lean, kept)
        self.now_s = now_s
        if self.first_arrival is None:
            self.first_arrival = now_s
        if now_s is not None and self.last_arrival and now_s - max(self.last_arrival.values()) > self.idle_s:
            self.resumed_at = now_s  # every stream was silent: the asset resumes now
        for c in cols:
            key = (c.topic, c.partition)
            ts, offsets = c.ts_ns, c.offsets
            n = len(ts)
            metrics = c.metrics
            # one metric, kept (a sensor's readings, the temperature): its values go in slices, window by
            # window
            whole = n > 0 and (keep is None or metrics[0] in keep) and metrics.count(metrics[0]) == n
            if c.in_order or ts == sorted(ts):  # in time order (the usual case): window by window
                i = 0
                while i < n:
                    t = ts[i]
                    start = t - (t - off) % hop
                    j = bisect_left(ts, start + hop, i)
                    acc = open_.get(start)
                    if acc is None:
                        acc = open_[start] = _Acc()
                    if whole:
                        vals = acc.readings.get(metrics[0])
                        if vals is None:
                            acc.readings[metrics[0]] = c.values[i:j]
                        else:
                            vals += c.values[i:j]
                    seg = offsets[i:j]
                    lo, hi = min(seg), max(seg)
                    span = acc.offsets.get(key)
                    if span is None:
                        acc.offsets[key] = [lo, hi]
                    else:
                        if lo < span[0]:  # noqa: PLR1730 (no call)
                            span[0] = lo
                        if hi > span[1]:  # noqa: PLR1730
                            span[1] = hi
                    i = j
                if whole:
                    continue
            else:
                last_start = None
                span = []
                for t, o in zip(ts, offsets):
                    start = t - (t - off) % hop
                    if start != last_start:
                        acc = open_.get(start)
                        if acc is None:
                            acc = open_[start] = _Acc()
                        last_start = start
                        got = acc.offsets.get(key)
                        span = acc.offsets[key] = [o, o] if got is None else got
                    if o < span[0]:
                        span[0] = o
                    elif o > span[1]:
                        span[1] = o
            # the values (of the metrics kept: see keep_readings), in order, in their windows (all open now)
            values = c.values
            if keep is None:
                pick: range | list[int] = range(n)
            elif keep.isdisjoint(metrics):  # (none kept: the usual case, readings without the temperature)
                continue
            else:
                pick = [k for k, m in enumerate(metrics) if m in keep]
            last_start, readings = None, {}
            for k in pick:
                t = ts[k]
                start = t - (t - off) % hop
                if start != last_start:
                    readings = open_[start].readings
                    last_start = start
                m = metrics[k]
                vals = readings.get(m)
                if vals is None:
                    readings[m] = [values[k]]
                else:
                    vals.append(values[k])
        progress = self.progress
        if newest is not None:
            if newest > progress.get("readings", -1):
                progress["readings"] = newest
            if now_s is not None:
                self.last_arrival["readings"] = now_s
        expected = self.expected
        if now_s is None and len(progress) == 1 and "readings" in progress \
                and (not expected or expected == ("readings",)):  # (watermark_ns's replay case inline)
            return self.close_until(next(iter(progress.values())) - self.lateness_ns, lean)
        return self.close_until(self.watermark_ns, lean)

    def _add_in_order(self, c: ReadingColumns, newest: int, lean: bool = False, kept: str | None = None
                      ) -> list[ClosedWindow] | list[ClosedWindow | ReadingsWindow]:
        """:meth:`add_columns` of one set of columns in time order, none of whose values is kept or all of
        one metric that is, ``kept`` (a temperature sensor's readings), on a replay (no wall clock, no
        expected stream but readings) of an asset with readings only (a table's case): a window that this
        batch both opens and closes goes straight to a :class:`ClosedWindow` (no open window made and closed
        again; with its ``kept`` values, so not lean)."""
        hop, length, open_, off = self.hop_ns, self.length_ns, self.open, self.offset_ns
        progress = self.progress
        prog = progress.get("readings", -1)
        if newest > prog:
            progress["readings"] = prog = newest
        watermark = prog - self.lateness_ns  # (watermark_ns of a replay with one stream)
        limit = watermark - length  # the windows starting by here close now
        key = (topic, part) = (c.topic, c.partition)
        ts, offsets = c.ts_ns, c.offsets
        n = len(ts)
        asset = self.asset
        direct: list[ClosedWindow] = []
        # offsets in order too (a table's row numbers): a window's span is its first and last reading's
        ordered = c.in_order or offsets == sorted(offsets)
        t = ts[0]
        start = t - (t - off) % hop
        if lean and kept is None and ordered and start > limit and ts[-1] < start + hop \
                and start not in open_:
            return self._next_window(start, key, offsets[0], offsets[-1], limit)
        values = c.values
        i = 0
        while i < n:
            t = ts[i]
            start = t - (t - off) % hop
            j = bisect_left(ts, start + hop, i)
            if ordered:
                lo, hi = offsets[i], offsets[j - 1]
            else:
                seg = offsets[i:j]
                lo, hi = min(seg), max(seg)
            acc = open_.get(start)
            if acc is None:
                if start <= limit:  # opened and closed by this batch
                    inputs = ((topic, part, lo, hi),)
                    if kept is not None:
                        direct.append(ClosedWindow(asset, start, start + length, (), inputs, -1, -1,
                                                   {kept: tuple(values[i:j])}, ()))
                    else:
                        direct.append(ReadingsWindow(start, start + length, inputs) if lean
                                      else ClosedWindow(asset, start, start + length, (), inputs, -1, -1, {},
                                                        ()))
                else:  # (what _Acc() and the span's first store make; its slots stored here, no generated
                    # __init__ with a default-factory test per field)
                    acc = open_[start] = _new_acc(_Acc)
                    acc.frames, acc.offsets, acc.first_seq, acc.last_seq, acc.readings = \
                        [], {key: [lo, hi]}, -1, -1, {} if kept is None else {kept: values[i:j]}
                i = j
                continue
            span = acc.offsets.get(key)
            if span is None:
                acc.offsets[key] = [lo, hi]
            else:
                if lo < span[0]:  # noqa: PLR1730 (no call)
                    span[0] = lo
                if hi > span[1]:  # noqa: PLR1730
                    span[1] = hi
            if kept is not None:
                got = acc.readings.get(kept)
                if got is None:
                    acc.readings[kept] = values[i:j]
                else:
                    got += values[i:j]
            i = j
        closed = self.close_until(watermark, lean) if open_ else []
        if not direct:
            return closed
        end = direct[-1].end_ns  # (the newest of them)
        if self.closed_end_ns is None or end > self.closed_end_ns:
            self.closed_end_ns = end
        if not closed:
            return direct
        if closed[-1].start_ns < direct[0].start_ns:  # (both in start order: already in order together)
            closed += direct
            return closed
        closed += direct
        closed.sort(key=_start_of)
        return closed

    def _next_window(self, start: int, key: tuple[str, int], lo: int, hi: int, limit: int
                     ) -> list[ClosedWindow | ReadingsWindow]:
        """:meth:`_add_in_order`'s usual batch (a table's next row or rows of an asset, ``lean``): all in one
        new window, ``start``, that stays open (``start > limit``), its input span ``lo..hi``. The windows
        starting by ``limit`` close first (``close_until``: none of them gets a reading of this batch), and
        the ``_Acc`` of a plain one (readings only, no value kept, one input partition), emptied, then takes
        the new window: no ``_Acc`` made per window."""
        open_ = self.open
        spares: list[_Acc] = []
        closed = self.close_until(limit + self.length_ns, True, spares) if open_ else []
        spare = spares[-1] if spares else None
        if spare is None:  # (what _Acc() and the span's first store make)
            acc = open_[start] = _new_acc(_Acc)
            acc.frames, acc.offsets, acc.first_seq, acc.last_seq, acc.readings = \
                [], {key: [lo, hi]}, -1, -1, {}
            return closed
        # the spare's frames and readings are empty (a plain window); its one span is this batch's now (the
        # closed window has its own tuple of the span's values)
        offsets = spare.offsets
        span = offsets.get(key)
        if span is None:
            spare.offsets = {key: [lo, hi]}
        else:
            span[0], span[1] = lo, hi
        spare.first_seq = spare.last_seq = -1
        open_[start] = spare
        return closed

    def close_until(self, watermark_ns: int | None, lean: bool = False, spares: list[_Acc] | None = None
                    ) -> list[ClosedWindow] | list[ClosedWindow | ReadingsWindow]:
        """Close (in event-time order) every open window whose end <= watermark (``lean``: see
        :meth:`add_columns`). ``spares``: the emptied ``_Acc`` of each plain window closed (readings only,
        no value kept, one input partition) is appended there, for a new window to take."""
        open_ = self.open
        if watermark_ns is None or not open_:
            return []
        # every window has the same length: the ones that end by the watermark are the first by start
        length = self.length_ns
        limit = watermark_ns - length
        ready = sorted(open_) if len(open_) > 1 else tuple(open_)
        if ready[0] > limit:
            return []
        out = []
        asset, closed_end = self.asset, self.closed_end_ns
        for s in ready:
            if s > limit:
                break
            acc = open_[s]
            offsets = acc.offsets
            if acc.frames or acc.readings or len(offsets) != 1:  # (the general case)
                out.append(self._close(s))
                closed_end = self.closed_end_ns
                continue
            # readings only, no value kept, one input partition (the usual case): _close inline
            del open_[s]
            end = s + length
            if closed_end is None or end > closed_end:
                self.closed_end_ns = closed_end = end
            ((t, p), (a, b)), = offsets.items()
            out.append(ReadingsWindow(s, end, ((t, p, a, b),)) if lean else
                       ClosedWindow(asset, s, end, (), ((t, p, a, b),), acc.first_seq, acc.last_seq, {}, ()))
            if spares is not None:
                spares.append(acc)
        return out

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of input, or the asset went silent)."""
        return [self._close(s) for s in sorted(self.open)]

    def _close(self, start: int) -> ClosedWindow:
        acc = self.open.pop(start)
        end = start + self.length_ns
        closed_end = self.closed_end_ns
        if closed_end is None or end > closed_end:
            self.closed_end_ns = end
        offsets = acc.offsets
        if len(offsets) == 1:  # (one input partition: the usual case)
            ((t, p), (a, b)), = offsets.items()
            inputs: tuple[tuple[str, int, int, int], ...] = ((t, p, a, b),)
        else:
            inputs = tuple(sorted((t, p, a, b) for (t, p), (a, b) in offsets.items()))
        readings = {k: tuple(v) for k, v in acc.readings.items()} if acc.readings else {}
        if not acc.frames:  # readings only
            return ClosedWindow(self.asset, start, end, (), inputs, acc.first_seq, acc.last_seq, readings, ())
        frames = sorted(acc.frames, key=lambda f: (f[0], f[1]))  # arrival order may differ from time order
        return ClosedWindow(self.asset, start, end, tuple(f[2] for f in frames), inputs, acc.first_seq,
                            acc.last_seq, readings, tuple(f[3] for f in frames))
