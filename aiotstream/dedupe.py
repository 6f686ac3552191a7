"""Consumer-side dedupe: drop the replays that at-least-once delivery produces after a restart.

Every output record has a deterministic ``id``; a replay carries the same id and
payload as the original. Replays are recent (they come from the epochs after the
last snapshot), so remembering the last ``capacity`` ids is enough.

>>> d = Deduper(capacity=2)
>>> [d.first_time(i) for i in ["a", "b", "a", "c", "a"]]
[True, True, False, True, False]
>>> d.first_time("b")  # forgotten: pushed out by "c" and "a"
True
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


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
