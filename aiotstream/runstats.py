"""What a run took in, turned away, produced and knows it lost: the counters behind the summary line at stop.

One :class:`RunStats` per process (:data:`STATS`); sources, the decoder and the
sinks add to it a batch at a time, and the CLI prints :meth:`RunStats.summary`
when a command stops, however it stops. Groups and what their keys are:

``inputs``       messages read, by source: the topic (Kafka, simulator), else ``mqtt``, ``opcua``, ``file``
``deadletters``  dead letters written, by reason code
``outputs``      records delivered by the main sink, by kind (dead letters included as ``deadletter``)
``losses``       inputs known to be lost before they reached the flow, by cause (e.g. ``mqtt_seq_gap``)
``dropped``      inputs dropped on purpose and not dead-lettered, by cause (e.g. ``duplicate_frame``)
``gauges``       values set, not added (e.g. ``active_suppressions``)

Beside the summary's groups, what only the metrics endpoint shows (:mod:`aiotstream.io.metrics` reads it at
scrape time): the :data:`LEVELS` groups (``input_records`` by kind, ``open_alerts`` by severity,
``pending_commands`` by status, ``blocked_commands`` by (check, rule)), histograms (:data:`BUCKETS`,
observed once per batch, window or model call, never per message) and each asset's newest closed window
end (:meth:`RunStats.watermark`).

>>> s = RunStats()
>>> s.add_many("inputs", {"p.readings": 3})
>>> s.add("deadletters", "bad_json")
>>> s.summary()
'inputs 3 (p.readings 3); dead letters 1 (bad_json 1); outputs 0; known losses none'

Some causes see the same lost messages from two sides (:data:`SAME_LOSSES`): a message the broker dropped
from its queue is also a gap in its device's sequence numbers. The group's total counts such a set once,
by its largest member:

>>> s.add("losses", "mqtt_broker_dropped", 40); s.add("losses", "mqtt_seq_gap", 25); s.get("losses")
40
>>> print(s.summary().split("; ")[-1])  # doctest: +NORMALIZE_WHITESPACE
known losses 40 (mqtt_broker_dropped 40, mqtt_seq_gap 25 [mqtt_broker_dropped and mqtt_seq_gap overlap:
counted once])
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping

_NS_PER_S = 1_000_000_000  # (aiotstream.units.S; an int: t / _NS_PER_S is correctly rounded)

GROUPS = ("inputs", "deadletters", "outputs", "losses", "dropped", "gauges")
_TITLES = {"inputs": "inputs", "deadletters": "dead letters", "outputs": "outputs", "losses": "known losses",
           "dropped": "dropped", "gauges": ""}
LEVELS = ("input_records", "open_alerts", "pending_commands", "blocked_commands")
"""Groups for the metrics endpoint only (not in the summary line): records decoded by kind (``frame``,
``reading``, ``feedback``, ``control``), open alerts by severity and pending commands by status (gauges: the
entities add their changes), blocked commands by ``(check, rule)`` of the safety envelope (a counter)."""
BUCKETS: dict[str, tuple[float, ...]] = {
    # wall clock at a window's close minus its end in event time: live data sits in the low buckets
    "window_close_latency_seconds": (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
                                     900, 3600),
    # wall clock when a batch of outputs is on the broker (the Kafka sink's delivery reports) minus each
    # record's event time (kafka.event_time_ms): sensor to topic, end to end, for live data
    # (fine below 1 s, with bounds at 50 and 250 ms, the p50 and p99 goals of issue 21)
    "output_latency_seconds": (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1,
                               2.5, 5, 10, 30, 60, 300, 3600),
    # messages per poll batch (stage decode), rows per model call (stage score)
    "batch_size": (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
    # one model call: an online detector's score_learn of one window, or one ONNX call over a batch
    "inference_latency_seconds": (5e-05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1, 0.25, 1.0),
}
"""Histogram name -> upper bounds of its buckets (``le``; +Inf is implied)."""
_CLOSE_KEY: tuple[str, tuple[str, ...]] = ("window_close_latency_seconds", ())
_CLOSE_BOUNDS = BUCKETS["window_close_latency_seconds"]
_CLOSE_TOP, _CLOSE_ABOVE = _CLOSE_BOUNDS[-1], len(_CLOSE_BOUNDS)  # (a replay's windows: older than the top)
SAME_LOSSES = (frozenset({"mqtt_broker_dropped", "mqtt_seq_gap"}),)
"""Sets of ``losses`` keys that count the same messages (the total takes the largest of each set)."""


def _total(group: str, c: Mapping[str, int]) -> int:
    total = sum(c.values())
    if group == "losses":
        for same in SAME_LOSSES:
            seen = [c[k] for k in same if c.get(k)]
            total -= sum(seen) - max(seen, default=0)
    return total


class RunStats:
    """Thread-safe counters by group and key (Bytewax workers of one process share them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, Counter[str]] = {g: Counter() for g in GROUPS}
        self._levels: dict[str, Counter[Hashable]] = {g: Counter() for g in LEVELS}
        # (histogram, labels) -> [count per bucket..., count above the last, sum]
        self._hist: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self._marks: dict[str, int] = {}  # asset -> end (event time, ns) of its newest closed window
        # the window close latency histogram's list in _hist (None: not made yet), kept so windows_closed
        # (once per asset and batch) does not hash its key each time
        self._close_hist: list[float] | None = None

    def add(self, group: str, key: str, n: int = 1) -> None:
        with self._lock:
            self._groups[group][key] += n

    def add_many(self, group: str, counts: Mapping[str, int]) -> None:
        """Add a batch's counts at once (one lock per batch, not per message)."""
        if not counts:
            return
        with self._lock:
            self._groups[group].update(counts)

    def set(self, group: str, key: str, value: int) -> None:
        with self._lock:
            self._groups[group][key] = value

    def get(self, group: str, key: str | None = None) -> int:
        """One key's count, or the group's total."""
        with self._lock:
            c = self._groups[group]
            return c[key] if key is not None else _total(group, c)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of every group (for tests, JSON reports and metrics)."""
        with self._lock:
            return {g: dict(c) for g, c in self._groups.items()}

    def reset(self) -> None:
        with self._lock:
            for c in [*self._groups.values(), *self._levels.values()]:
                c.clear()
            self._hist.clear()
            self._close_hist = None
            self._marks.clear()

    # ---- for the metrics endpoint only ----------------------------------------------------------------
    def level(self, group: str, counts: Mapping[Hashable, int]) -> None:
        """Add to a :data:`LEVELS` group (negative counts too: a gauge's entities add their changes)."""
        if counts:
            with self._lock:
                c = self._levels[group]
                for k, v in counts.items():
                    c[k] += v

    def levels(self) -> dict[str, dict[Hashable, int]]:
        with self._lock:
            return {g: dict(c) for g, c in self._levels.items()}

    def observe(self, name: str, value: float, labels: tuple[str, ...] = ()) -> None:
        """One observation of histogram ``name`` (:data:`BUCKETS`) with these label values.

        >>> s = RunStats(); s.observe("batch_size", 3); s.observe("batch_size", 20000)
        >>> h = s.histograms()[("batch_size", ())]; h[:3], h[-2:]
        ([0, 0, 1], [1, 20003.0])
        """
        self.observe_many(name, (value,), labels)

    def observe_many(self, name: str, values: Iterable[float], labels: tuple[str, ...] = ()) -> None:
        bounds = BUCKETS[name]
        with self._lock:
            h = self._hist.get((name, labels))
            if h is None:
                h = self._hist[(name, labels)] = [0] * (len(bounds) + 1) + [0.0]
            for v in values:
                h[bisect_left(bounds, v)] += 1
                h[-1] += v

    def observe_ages(self, name: str, now_s: float, times_ns: Iterable[int], labels: tuple[str, ...] = ()
                     ) -> None:
        """``observe_many(name, [now_s - t / S for t in times_ns], labels)`` (``S``: 1 s in ns, an int, so
        ``t / S`` is correctly rounded) without the list (the windows an asset closed in a batch: their close
        latency).

        >>> s = RunStats()
        >>> s.observe_ages("window_close_latency_seconds", 10.0, [9_500_000_000, 9_000_000_000])
        >>> s.histograms()[("window_close_latency_seconds", ())][-1]
        1.5
        """
        bounds = BUCKETS[name]
        with self._lock:
            h = self._hist.get((name, labels))
            if h is None:
                h = self._hist[(name, labels)] = [0] * (len(bounds) + 1) + [0.0]
            for t in times_ns:
                v = now_s - t / _NS_PER_S
                h[bisect_left(bounds, v)] += 1
                h[-1] += v

    def windows_closed(self, asset: str, now_s: float, ends_ns: list[int]) -> None:
        """``observe_ages("window_close_latency_seconds", now_s, ends_ns)`` and ``watermark(asset,
        max(ends_ns))`` in one call (the windows an asset closed in a batch, ``ends_ns`` not empty).

        >>> s = RunStats(); s.windows_closed("a", 10.0, [9_000_000_000, 9_500_000_000])
        >>> s.histograms()[("window_close_latency_seconds", ())][-1], s.watermarks()
        (1.5, [9500000000])
        """
        bounds = _CLOSE_BOUNDS
        lock = self._lock  # (acquire/release with try/finally: half the cost of a with block here)
        if len(ends_ns) == 1:  # (one window: the usual case) its bucket found before the lock
            end = ends_ns[0]
            v = now_s - end / _NS_PER_S
            i = _CLOSE_ABOVE if v > _CLOSE_TOP else bisect_left(bounds, v)
            lock.acquire()
            try:
                h = self._close_hist
                if h is None:
                    h = self._close_list()
                h[i] += 1
                h[-1] += v
            finally:
                lock.release()
            self._marks[asset] = end
            return
        lock.acquire()
        try:
            h = self._close_hist
            if h is None:
                h = self._close_list()
            for t in ends_ns:
                v = now_s - t / _NS_PER_S
                h[_CLOSE_ABOVE if v > _CLOSE_TOP else bisect_left(bounds, v)] += 1
                h[-1] += v
        finally:
            lock.release()
        self._marks[asset] = max(ends_ns)

    def _close_list(self) -> list[float]:
        """The window close latency histogram's list (made if need be; under the lock)."""
        h = self._hist.get(_CLOSE_KEY)
        if h is None:
            h = self._hist[_CLOSE_KEY] = [0] * (len(_CLOSE_BOUNDS) + 1) + [0.0]
        self._close_hist = h
        return h

    def histograms(self) -> dict[tuple[str, tuple[str, ...]], list[float]]:
        """A copy: (name, label values) -> counts per bucket (not cumulative), the count above the last
        bucket, and the sum."""
        with self._lock:
            return {k: list(v) for k, v in self._hist.items()}

    def watermark(self, asset: str, end_ns: int) -> None:
        """``asset`` closed a window ending at ``end_ns`` (event time); one dictionary store, no lock."""
        self._marks[asset] = end_ns

    def forget_watermark(self, asset: str) -> None:
        self._marks.pop(asset, None)

    def watermarks(self) -> list[int]:
        """Each asset's newest closed window end (ns), in no order."""
        return list(self._marks.values())  # one C call under the GIL: safe while workers store

    def summary(self) -> str:
        """One line: totals and the keys of each group, largest first; groups that must always show do."""
        snap = self.snapshot()
        parts = []
        for g in GROUPS:
            c = snap[g]
            if g == "gauges":
                parts += [f"{k} {v:,}" for k, v in sorted(c.items())]
                continue
            if not c:
                if g in ("inputs", "outputs"):
                    parts.append(f"{_TITLES[g]} 0")
                elif g == "losses":
                    parts.append("known losses none")
                continue
            detail = ", ".join(f"{k} {v:,}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
            if g == "losses":
                detail += "".join(f" [{' and '.join(sorted(same))} overlap: counted once]"
                                  for same in SAME_LOSSES if sum(1 for k in same if c.get(k)) > 1)
            parts.append(f"{_TITLES[g]} {_total(g, c):,} ({detail})")
        return "; ".join(parts)


STATS = RunStats()
"""The process's counters."""


def source_label(topic: str | None) -> str:
    """The ``inputs`` key of a message from its position's topic: device sources by kind, topics as named.

    >>> source_label("mqtt:plant/p1/temp"), source_label("file:/data/a.csv"), source_label("plant.readings")
    ('mqtt', 'file', 'plant.readings')
    """
    if not topic:
        return "unknown"
    kind, sep, _ = topic.partition(":")
    if sep and kind in ("mqtt", "opcua", "file"):
        return kind
    return topic


def count_inputs(msgs: list, stats: RunStats | None = None) -> int:
    """Add a poll batch to ``inputs``: one per message, one per row of a table block, one per value of a
    Kafka message block; consumer errors that carry no message (broker down) are not inputs. How many."""
    counts: Counter[str] = Counter()
    errors = 0  # the consumer errors' messages in Kafka blocks (counted by the call for them)
    for msg in msgs:
        rows = getattr(msg, "rejects", None)
        if rows is not None:  # ReadingRows: a block of table rows (and the rows rejected while reading them)
            counts[source_label(msg.topic)] += len(msg) + len(rows)
            continue
        values = getattr(msg, "values", None)
        if isinstance(values, list):  # a Kafka MessageBlock
            counts[source_label(msg.topic)] += len(values)
            if msg.errors:
                errors += count_inputs(msg.errors, stats)
            continue
        inner = getattr(msg, "msg", None)
        if inner is not None and hasattr(msg, "err"):  # a Bytewax KafkaError
            if inner.value is None or inner.offset is None or inner.offset < 0:
                continue
            msg = inner
        counts[source_label(msg.topic)] += 1
    (stats or STATS).add_many("inputs", counts)
    return sum(counts.values()) + errors


def count_outputs(items: list, stats: RunStats | None = None) -> None:
    """Add delivered outputs (objects with ``kind`` and ``record``) to ``outputs``, dead letters to
    ``deadletters`` by reason."""
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for o in items:
        kinds[o.kind] += 1
        if o.kind == "deadletter":
            reasons[str(o.record.get("reason"))] += 1
    s = stats or STATS
    s.add_many("outputs", kinds)
    s.add_many("deadletters", reasons)


class Share:
    """What one entity (an asset, a zone) adds to a :data:`LEVELS` gauge group of :data:`STATS` (e.g. its open
    alerts by severity): it reports its counts after a batch and adds only the change, so the gauge is the
    sum over the process's entities without a registry of them. :meth:`release` takes its part back when its
    state is discarded; a snapshot does not carry the part (a resumed entity reports afresh into the new
    process's gauge).

    >>> stats = RunStats(); a, b = Share("open_alerts", stats), Share("open_alerts", stats)
    >>> a.update({"warning": 1}); b.update({"warning": 1, "critical": 1}); a.update({})
    >>> stats.levels()["open_alerts"]
    {'warning': 1, 'critical': 1}
    >>> b.release(); stats.levels()["open_alerts"]
    {'warning': 0, 'critical': 0}
    """

    def __init__(self, group: str, stats: RunStats | None = None):
        self.group = group
        self.now: dict[Hashable, int] = {}
        self.stats = stats

    def update(self, counts: Mapping[Hashable, int]) -> None:
        if counts == self.now:
            return
        diff = {k: counts.get(k, 0) - self.now.get(k, 0) for k in {*counts, *self.now}}
        (self.stats or STATS).level(self.group, {k: v for k, v in diff.items() if v})
        self.now = dict(counts)

    def release(self) -> None:
        self.update({})

    def __getstate__(self) -> dict[str, object]:
        return {"group": self.group, "now": {}, "stats": None}
