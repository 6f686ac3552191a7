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
from collections import Counter
from collections.abc import Mapping

GROUPS = ("inputs", "deadletters", "outputs", "losses", "dropped", "gauges")
_TITLES = {"inputs": "inputs", "deadletters": "dead letters", "outputs": "outputs", "losses": "known losses",
           "dropped": "dropped", "gauges": ""}
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
            for c in self._groups.values():
                c.clear()

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


def count_inputs(msgs: list, stats: RunStats | None = None) -> None:
    """Add a poll batch to ``inputs``: one per message, one per row of a table block, one per value of a
    Kafka message block; consumer errors that carry no message (broker down) are not inputs."""
    counts: Counter[str] = Counter()
    for msg in msgs:
        rows = getattr(msg, "rejects", None)
        if rows is not None:  # ReadingRows: a block of table rows (and the rows rejected while reading them)
            counts[source_label(msg.topic)] += len(msg) + len(rows)
            continue
        values = getattr(msg, "values", None)
        if isinstance(values, list):  # a Kafka MessageBlock
            counts[source_label(msg.topic)] += len(values)
            for e in msg.errors:
                count_inputs([e], stats)
            continue
        inner = getattr(msg, "msg", None)
        if inner is not None and hasattr(msg, "err"):  # a Bytewax KafkaError
            if inner.value is None or inner.offset is None or inner.offset < 0:
                continue
            msg = inner
        counts[source_label(msg.topic)] += 1
    (stats or STATS).add_many("inputs", counts)


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
