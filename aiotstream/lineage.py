"""Lineage: deterministic output ids and the lineage block every output carries.

The same inputs, config and model give the same ``id``, so a consumer can drop
the replays that at-least-once delivery produces after a restart.

>>> make_id("alert", "site", "a1", 10, 20) == make_id("alert", "site", "a1", 10, 20)
True
>>> len(make_id("x"))
32
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiotstream import code_version


def make_id(*parts: Any) -> str:
    """A 128-bit hex digest of the parts (their ``str``), joined by a separator."""
    fmt = _ID_FORMATS[len(parts)] if len(parts) < 16 else "\x1f".join(["%s"] * len(parts))
    return _sha256((fmt % parts).encode()).hexdigest()[:32]  # (%s: str() of each, without a call per part)


_sha256 = hashlib.sha256
_ID_FORMATS = ["\x1f".join(["%s"] * n) for n in range(16)]


def iso_ns(t_ns: int) -> str:
    """Event time in ns as ISO-8601 UTC with microseconds.

    >>> iso_ns(1_767_225_600_000_000_000)
    '2026-01-01T00:00:00.000000Z'
    """
    return datetime.fromtimestamp(t_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_wall_second: tuple[int, str] = (-1, "")  # (a wall-clock second, its "%Y-%m-%dT%H:%M:%S." text)


def wall_iso(t_ns: int) -> str:
    """A wall-clock time (``produced_at``) as :func:`iso_ns` formats it, truncated to the microsecond
    (iso_ns rounds ``t_ns / 1e9`` to it: a wall clock's last µs is noise). The text of the second is kept
    from the call before: outputs of one second format only their microseconds (strftime costs µs).

    >>> wall_iso(1_767_225_600_123_456_789)
    '2026-01-01T00:00:00.123456Z'
    """
    global _wall_second
    s, ns = divmod(t_ns, 1_000_000_000)
    sec, prefix = _wall_second
    if s != sec:
        prefix = datetime.fromtimestamp(s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _wall_second = (s, prefix)
    return f"{prefix}{ns // 1000:06d}Z"


@dataclass(frozen=True, slots=True)
class FlowContext:
    """What every output says about the flow that produced it."""

    site: str
    flow: str
    flow_version: str
    config_hash: str
    code_version: str = field(default_factory=code_version)  # package version + build commit

    def block(self, *, inputs: list[dict], window: dict | None, features: dict | None,
              model: dict | None) -> dict[str, Any]:
        """The lineage fields (without ``id``) for one output."""
        return self.block_into({}, inputs=inputs, window=window, features=features, model=model)

    def block_into(self, rec: dict[str, Any], *, inputs: list[dict], window: dict | None,
                   features: dict | None, model: dict | None) -> dict[str, Any]:
        """The lineage fields (:meth:`block`) set in ``rec``, in their order, without a dict of their own
        (once per scalar and KPI record: ``rec.update(self.block(...))`` less one dict); returns ``rec``."""
        rec["site"] = self.site
        rec["flow"] = self.flow
        rec["flow_version"] = self.flow_version
        rec["config_hash"] = self.config_hash
        rec["code_version"] = self.code_version
        rec["inputs"] = inputs
        rec["window"] = window
        rec["features"] = features
        rec["model"] = model
        rec["produced_at"] = wall_iso(time.time_ns())
        return rec


LINEAGE_FIELDS = ("site", "flow", "flow_version", "config_hash", "code_version", "inputs", "window",
                  "features", "model", "produced_at")
"""The fields :meth:`FlowContext.block` gives, in its order."""


def lineage_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The lineage block a record got from :meth:`FlowContext.block_into`, as :meth:`FlowContext.block` gave
    it (the same values: one ``produced_at`` for the record and the outputs it leads to)."""
    return {k: rec[k] for k in LINEAGE_FIELDS}


SOURCE_KINDS = ("mqtt", "opcua", "file")


def input_entry(topic: str, partition: int, first: int, last: int) -> dict[str, Any]:
    """One lineage input entry. Non-Kafka positions have a scheme prefix (``mqtt:``, ``opcua:``,
    ``file:``; Kafka topic names cannot contain ``:``), which also gives the entry its ``kind``.

    >>> input_entry("file:/data/m.csv", -1, 0, 99)["kind"]
    'file'
    >>> "kind" in input_entry("plant.readings", 0, 5, 9)  # Kafka: no kind, as before
    False
    """
    d: dict[str, Any] = {"topic": topic, "partition": partition, "first_offset": first, "last_offset": last}
    scheme = topic.split(":", 1)[0] if ":" in topic else ""
    if scheme in SOURCE_KINDS:
        d["kind"] = scheme
    return d


def inputs_block(spans: tuple[tuple[str, int, int, int], ...]) -> list[dict]:
    """``(topic, partition, first, last)`` spans as lineage input entries.

    >>> inputs_block((("t", 0, 5, 9),))
    [{'topic': 't', 'partition': 0, 'first_offset': 5, 'last_offset': 9}]
    """
    return [input_entry(t, p, a, b) for t, p, a, b in spans]


def window_block(start_ns: int, end_ns: int) -> dict:
    return {"start": _iso_event(start_ns), "end": _iso_event(end_ns), "start_ns": start_ns, "end_ns": end_ns,
            "time": "event"}


_event_second: tuple[int, str] = (-1, "")  # (an event-time second, its "%Y-%m-%dT%H:%M:%S." text)


def _iso_whole_us(t_ns: int) -> str:
    """:func:`iso_ns` of ``t_ns``, the text of its second kept from the call before when ``t_ns`` is a whole
    microsecond from 1970 to 2106 (strftime costs µs; a staggered site's windows have bounds of their own
    per asset, ``window.stagger``). Below 2**32 s ``iso_ns``'s float ``t_ns / 1e9`` is within half a
    microsecond of the exact time (``t_ns`` as a float: 256 ns off at most; the quotient: 0.24 µs), so it
    rounds to that same microsecond and never into the next second (from 2**32 s the quotient's step is
    0.95 µs: iso_ns's text may be a microsecond off the exact time, and is kept). Anything else: ``iso_ns``.

    >>> _iso_whole_us(1_767_225_599_138_000_000) == iso_ns(1_767_225_599_138_000_000)
    True
    """
    global _event_second
    s, ns = divmod(t_ns, 1_000_000_000)
    if ns % 1000 or not 0 <= s < 1 << 32:
        return iso_ns(t_ns)
    sec, prefix = _event_second
    if s != sec:
        prefix = datetime.fromtimestamp(s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _event_second = (s, prefix)
    return f"{prefix}{ns // 1000:06d}Z"


_event_texts: dict[int, str] = {}


def _iso_event(t_ns: int) -> str:
    """:func:`iso_ns` of event times, remembered: window and KPI period bounds repeat (one window's end is the
    next one's start; every asset has the same bounds unless the site staggers its windows), and formatting
    one costs a few µs (:func:`_iso_whole_us`: under one where it can). A plain dict, emptied when it holds
    16,384 texts: a staggered site makes a new text for nearly every window, and an ``lru_cache``'s
    bookkeeping on each miss cost more than the text.

    >>> _iso_event(1_767_225_600_000_000_000)
    '2026-01-01T00:00:00.000000Z'
    """
    text = _event_texts.get(t_ns)
    if text is None:
        if len(_event_texts) >= 16_384:
            _event_texts.clear()
        text = _event_texts[t_ns] = _iso_whole_us(t_ns)
    return text
