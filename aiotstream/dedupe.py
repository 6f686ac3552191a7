"""Dedupe on both sides of the flow: repeated input frames, and replayed output records.

**Input frames** (:class:`FrameDedupe`, one per asset, in the flow's state): a
device that retransmits a frame (same asset and sequence number) must not have it
counted twice in its window. A retransmit repeats the frame's header, so the key is
``(seq, t0)``: a device that restarts its sequence numbers sends new frames with old
numbers but new times, and they are kept. Memory is bounded: keys are forgotten once
their window is closed (a retransmit after that is a ``late`` dead letter, never a
second count) and there are never more than ``capacity`` of them.

>>> fd = FrameDedupe(capacity=4)
>>> [fd.first_time(seq, t0) for seq, t0 in [(1, 100), (2, 200), (1, 100), (1, 900)]]
[True, True, False, True]
>>> fd.forget_before(300); fd.first_time(2, 200)  # its window closed: no longer remembered
True

**Output records** (:class:`Deduper`, for consumers): every output record has a
deterministic ``id``; a replay carries the same id and payload as the original.
Replays are recent (they come from the epochs after the last snapshot), so
remembering the last ``capacity`` ids is enough.

>>> d = Deduper(capacity=2)
>>> [d.first_time(i) for i in ["a", "b", "a", "c", "a"]]
[True, True, False, True, False]
>>> d.first_time("b")  # forgotten: pushed out by "c" and "a"
True
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


class FrameDedupe:
    """The ``(seq, t0)`` keys of one asset's recent frames, bounded by time and by count.

    Pickles with the asset's state, so a resume from a snapshot remembers exactly
    what the snapshot's windows hold (and the replay after it is new to it).
    """

    def __init__(self, capacity: int = 65_536):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.seen: set[tuple[int, int]] = set()
        self.order: deque[tuple[int, int]] = deque()  # keys in arrival order, for forgetting

    def first_time(self, seq: int, t0_ns: int) -> bool:
        """True (and remembered) the first time a frame is seen; False for a repeat."""
        key = (seq, t0_ns)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.order.append(key)
        if len(self.order) > self.capacity:
            self.seen.discard(self.order.popleft())
        return True

    def forget_before(self, t_ns: int) -> None:
        """Forget the frames (in arrival order, up to the first newer one) whose t0 is before ``t_ns``."""
        order, seen = self.order, self.seen
        while order and order[0][1] < t_ns:
            seen.discard(order.popleft())

    def __len__(self) -> int:
        return len(self.seen)


class Deduper:
    """Remembers the last ``capacity`` ids seen (LRU)."""

    def __init__(self, capacity: int = 1_000_000):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0

    def first_time(self, record_id: str) -> bool:
        """True the first time an id is seen (within the memory), False for a replay."""
        if record_id in self._ids:
            self._ids.move_to_end(record_id)
            self.dropped += 1
            return False
        self._ids[record_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def filter(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """The records whose ``id`` has not been seen yet, in order."""
        for r in records:
            if self.first_time(r["id"]):
                yield r
