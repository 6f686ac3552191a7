"""A poll batch of meter readings -> per-zone interval partials, in one step (the scalar batch path).

A :class:`~aiotstream.records.MessageBlock` (a whole Kafka poll
batch) of plain readings is parsed as columns in one compiled pass
(:func:`~aiotstream.codecs.readings.plain_readings`, shared with the plant
flow), with numpy for the range checks. Single messages (Bytewax's Kafka
messages, MQTT, files) take a per-message loop with the same checks inlined;
anything unusual takes the generic decoder and its dead-letter reasons. Then numpy does the rest for
the whole batch: one ``lexsort`` by (zone, meter, interval) and ``reduceat``
sums, counts and state counts. What crosses to the per-zone step is one
:class:`ZoneBatch` per zone and poll batch with a handful of partial rows
(one per meter and interval touched), not one object per reading.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from itertools import chain
from typing import Any

import numpy as np
import orjson

from aiotstream.auth import decode_payload_signed, decode_signed, refusal_extra, site_verifier
from aiotstream.codecs.readings import OBJECT_START, dict_codes, plain_readings
from aiotstream.energy.runtime import HVAC, OCCUPANCY, BuildingRuntime
from aiotstream.errors import DecodeError
from aiotstream.lineage import iso_ns
from aiotstream.records import (
    DeadLetter,
    Feedback,
    Frame,
    MessageBlock,
    Output,
    Position,
    Reading,
    SourceMessage,
)
from aiotstream.runstats import STATS, count_inputs

# A partial row: (meter code, interval index, count, sum, count > 0, count == 1, count == 2, count == 3,
# newest ts, first, last) -- first/last index the zone's messages (for dead letters of late readings).
Row = tuple[int, int, int, float, int, int, int, int, int, int, int]


class Picked:
    """``raw[idx[k]]`` for ``k`` in ``range(len(idx))``: a zone's readings' bytes in row order, read from the
    poll batch's list only when a dead letter needs one (most batches need none; reordering a poll's 10,000
    values for every batch was 5 % of the building flow's worker). Equal to a list of the same bytes;
    pickled (to another worker, into a snapshot) as that list, so the poll's other values go nowhere.

    >>> import pickle
    >>> p = Picked([b"a", b"b", b"c"], np.array([2, 0]))
    >>> p[0], p[1], len(p), p == [b"c", b"a"], pickle.loads(pickle.dumps(p))
    (b'c', b'a', 2, True, [b'c', b'a'])
    """

    __slots__ = ("idx", "raw")

    def __init__(self, raw: list[bytes], idx: np.ndarray) -> None:
        self.raw = raw
        self.idx = idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k: int) -> bytes:
        return self.raw[self.idx[k]]

    def __iter__(self) -> Iterator[bytes]:
        return map(self.raw.__getitem__, self.idx.tolist())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (Picked, list)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[list[bytes]]]:
        return list, (list(self),)

    def __repr__(self) -> str:
        return f"Picked({list(self)!r})"


@dataclass(slots=True)
class ZoneBatch:
    """One zone's share of a poll batch: partial rows, input spans, the batch's outdoor partials, feedback.

    ``values[k]``/``offsets[k]``/``parts[k]`` (an index into ``names``, the
    (topic, partition) pairs) locate the zone's readings in row order, for the
    dead letters of late readings.
    """

    zone: str
    rows: list[Row] = field(default_factory=list)
    values: list[bytes] | Picked = field(default_factory=list)
    offsets: Any = ()
    parts: Any = ()
    names: list[tuple[str, int]] = field(default_factory=list)
    spans: tuple[tuple[str, int, int, int], ...] = ()
    outdoor: tuple[tuple[int, float, int], ...] = ()  # (interval index, sum, count)
    feedback: list[Feedback] = field(default_factory=list)

    def position(self, k: int) -> Position:
        topic, part = self.names[int(self.parts[k])]
        return Position(topic, part, int(self.offsets[k]))


def position(msg: Any) -> Position:
    return Position(msg.topic or "?", msg.partition if msg.partition is not None else -1,
                    msg.offset if msg.offset is not None else -1)


class _Columns:
    """Readings collected from a poll batch: list columns (per-message paths) and numpy chunks (blocks)."""

    __slots__ = ("chunks", "mc", "names", "off", "pk", "raw", "ts", "vs", "zi")

    def __init__(self) -> None:
        self.zi: list[int] = []
        self.mc: list[int] = []
        self.ts: list[int] = []
        self.vs: list[float] = []
        self.raw: list[bytes] = []
        self.pk: list[int] = []
        self.off: list[int] = []
        self.names: dict[tuple[str, int], int] = {}
        self.chunks: list[tuple] = []  # (Z, C, T, V, raw list, P, O) arrays

    def part(self, topic: str, partition: int) -> int:
        return self.names.setdefault((topic, partition), len(self.names))


class BuildingIngest:
    """Decodes poll batches for the building flow (see the module docstring)."""

    def __init__(self, rt: BuildingRuntime, now_ns: Callable[[], int] = time.time_ns,
                 message_type: type | None = None):
        """``message_type``: the source's message class (Bytewax's ``KafkaSourceMessage``), whose well-formed
        4-key readings take the column-wise fast path; other messages take the general path, which gives the
        same result."""
        self.rt = rt
        self.now_ns = now_ns
        self.message_type = message_type
        b = rt.building
        self.outdoor = (b.outdoor_asset, b.outdoor_metric)
        self.max_bytes = rt.config.inputs.max_message_bytes
        self.max_abs = rt.config.inputs.max_abs_value
        self.source_errors = 0
        self.verifier = site_verifier(rt.config, now_ns)  # [auth]: signed feedback and acks

    def _reject(self, msg: Any, reason: str, message: str, asset: str | None = None, raw: bytes | None = None,
                pos: Position | None = None, extra: dict[str, Any] | None = None, truncate: bool = False
                ) -> Output:
        raw = raw if raw is not None else (getattr(msg, "value", None) or b"")
        return self.rt.deadletter(DeadLetter(raw, pos or position(msg), reason, message, asset=asset,
                                             extra=extra or {}, truncate=truncate))

    def decode(self, msgs: Iterable[Any]) -> list[tuple[str, ZoneBatch] | Output]:
        """Decode a poll batch: ``(zone, ZoneBatch)`` per zone touched, plus dead-letter outputs."""
        rt = self.rt
        zones, codes = rt.zone_index, rt.metric_codes
        horizon = self.now_ns() + rt.max_future_ns
        cols = _Columns()
        zi, mc, ts, vs, raws, pk, off = cols.zi, cols.mc, cols.ts, cols.vs, cols.raw, cols.pk, cols.off
        out: list[Any] = []
        outdoor: list[tuple[int, float]] = []
        feedback: dict[str, list[Feedback]] = {}
        loads = orjson.loads
        kafka_msg = self.message_type
        max_bytes, lim = self.max_bytes, self.max_abs
        msgs = msgs if isinstance(msgs, list) else list(msgs)
        inputs = count_inputs(msgs)
        for msg in msgs:
            if type(msg) is MessageBlock:
                self._block(msg, horizon, cols, out, outdoor, feedback)
                continue
            if type(msg) is kafka_msg and (raw := msg.value) and raw[0] in OBJECT_START \
                    and len(raw) <= max_bytes:  # (a JSON object as decode_any tells one, not too large)
                try:
                    o = loads(raw)
                    if len(o) == 4:
                        z = zones.get(o["asset"])
                        c = codes.get(o["metric"])
                        t = o["ts"]
                        v = o["value"]
                        if z is not None and c is not None and type(t) is int and 0 <= t <= horizon and \
                                (type(v) is float or type(v) is int) and -lim <= v <= lim:
                            zi.append(z)
                            mc.append(c)
                            ts.append(t)
                            vs.append(v)
                            raws.append(raw)
                            pk.append(cols.part(msg.topic or "?",
                                                msg.partition if msg.partition is not None else -1))
                            off.append(msg.offset if msg.offset is not None else -1)
                            continue
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    pass
            self._slow(msg, horizon, cols, out, outdoor, feedback)
        dead = len(out)
        groups = self._group(cols, out)  # dead-letters the column rows out of range
        # the metrics: records by kind and the poll batch's size, once per batch
        kinds = {"reading": len(cols.zi) - (len(out) - dead) + len(outdoor),
                 "feedback": sum(map(len, feedback.values()))}
        STATS.level("input_records", {k: n for k, n in kinds.items() if n})
        STATS.observe("batch_size", inputs, ("decode",))  # messages, not blocks
        if outdoor:
            L = rt.interval_ns
            acc: dict[int, list] = {}
            for t, v in outdoor:
                a = acc.setdefault(t // L, [0.0, 0])
                a[0] += v
                a[1] += 1
            shared = tuple((k, s, n) for k, (s, n) in sorted(acc.items()))
            for z in rt.zone_ids:  # every zone's baseline needs the outdoor temperature
                g = groups.get(z)
                if g is None:
                    groups[z] = ZoneBatch(z, outdoor=shared)
                else:
                    g.outdoor = shared
        for z, fbs in feedback.items():
            g = groups.get(z)
            if g is None:
                g = groups[z] = ZoneBatch(z)
            g.feedback = fbs
        out.extend(groups.items())
        return out

    # ---- a whole poll batch, column-wise ---------------------------------------------------------
    def _block(self, blk: MessageBlock, horizon: int, cols: _Columns, out: list, outdoor: list,
               feedback: dict) -> None:
        for e in blk.errors:
            self._slow(e, horizon, cols, out, outdoor, feedback)
        vals = blk.values
        n = len(vals)
        if n == 0:
            return
        rt = self.rt
        plain = plain_readings(vals, self.max_bytes)
        if plain is None:
            for v, o in zip(vals, blk.offsets):  # something unusual in the block: message by message
                self._slow(SourceMessage(blk.topic, blk.partition, o, v), horizon, cols, out, outdoor,
                           feedback)
            return
        assets, metrics, _, T, V = plain
        zones, codes = rt.zone_index, rt.metric_codes
        Z = dict_codes(assets, zones)
        C = dict_codes(metrics, codes)
        O = np.array(blk.offsets, dtype=np.int64)
        ok = (Z >= 0) & (C >= 0) & (T >= 0) & (T <= horizon) & (np.abs(V) <= self.max_abs)
        if not ok.all():
            # outdoor readings, unknown zones or meters, times or values out of range
            for k in np.flatnonzero(~ok).tolist():
                self._slow(SourceMessage(blk.topic, blk.partition, int(O[k]), vals[k]), horizon, cols, out,
                           outdoor, feedback)
            Z, C, T, V, O = Z[ok], C[ok], T[ok], V[ok], O[ok]
            vals = [vals[k] for k in np.flatnonzero(ok).tolist()]
        p = cols.part(blk.topic, blk.partition)
        cols.chunks.append((Z, C, T, V, vals, np.full(len(Z), p, dtype=np.int64), O))

    # ---- the generic path: anything that is not a plain JSON reading of a known meter ----
    def _slow(self, msg: Any, horizon: int, cols: _Columns, out: list, outdoor: list, feedback: dict) -> None:
        rt = self.rt
        if hasattr(msg, "err"):  # bytewax KafkaError
            inner = msg.msg
            if inner.value is None or inner.offset is None or inner.offset < 0:
                self.source_errors += 1  # operational (broker down): librdkafka retries, nothing is lost
                return
            out.append(self._reject(inner, "source_error", str(msg.err), raw=inner.value))
            return
        raw = msg.value or b""
        pos = position(msg)
        if len(raw) > self.max_bytes:  # not decoded at all; the dead letter keeps a prefix and the sha256
            out.append(self._reject(msg, "too_large", f"message is {len(raw):,} bytes, over "
                                    f"inputs.max_message_bytes ({self.max_bytes:,})",
                                    asset=getattr(msg, "asset", None), raw=raw, truncate=True))
            return
        hints = getattr(msg, "hints", None)
        try:
            items = [decode_signed(raw, pos, self.verifier)] if hints is None else \
                decode_payload_signed(raw, pos, hints, msg.asset, msg.metric, msg.arrival_ns, self.verifier)
        except DecodeError as exc:
            out.append(self._reject(msg, exc.reason, str(exc), asset=getattr(msg, "asset", None),
                                    extra=refusal_extra(exc)))
            return
        for item in items:
            if isinstance(item, Feedback):
                if item.ts_ns > horizon:
                    out.append(self._reject(msg, "future_timestamp",
                                            f"feedback time {iso_ns(item.ts_ns)} is ahead of this worker's "
                                            "clock by more than window.max_future_s",
                                            item.asset))
                    continue
                targets = self._feedback_targets(item)
                if targets is None:
                    out.append(self._reject(msg, "unknown_asset",
                                            f"feedback names {item.asset or item.line!r}, which is not a "
                                            f"zone or floor of {rt.config.site.id}",
                                            item.asset))
                for z in targets or ():
                    feedback.setdefault(z, []).append(item if item.asset == z else dc_replace(item, asset=z))
                continue
            if isinstance(item, Frame):
                out.append(self._reject(msg, "unsupported",
                                        "the energy-optimization flow takes scalar readings, not "
                                        "waveform frames", item.asset))
                continue
            r: Reading = item
            if r.ts_ns > horizon:
                out.append(self._reject(msg, "future_timestamp", f"event time {iso_ns(r.ts_ns)} is more than "
                                        f"{rt.config.window.max_future_s:g} s ahead of this worker's clock",
                                        r.asset))
                continue
            if abs(r.value) > self.max_abs:
                out.append(self._reject(msg, "out_of_range",
                                        f"value {r.value!r} is beyond +-{self.max_abs:g} "
                                        "(inputs.max_abs_value)", r.asset))
                continue
            if (r.asset, r.metric) == self.outdoor:
                outdoor.append((r.ts_ns, r.value))
                continue
            z = rt.zone_index.get(r.asset)
            if z is None:
                out.append(self._reject(msg, "unknown_asset",
                                        f"{r.asset!r} is not a zone of {rt.config.site.id} (add it to "
                                        "[[building.zones]]) nor its outdoor sensor", r.asset))
                continue
            c = rt.metric_codes.get(r.metric)
            if c is None:
                out.append(self._reject(msg, "unknown_metric",
                                        f"metric {r.metric!r} is not a meter of the building "
                                        f"({', '.join(rt.metric_codes)}; see [building.meters])", r.asset))
                continue
            cols.zi.append(z)
            cols.mc.append(c)
            cols.ts.append(r.ts_ns)
            cols.vs.append(r.value)
            cols.raw.append(raw)
            cols.pk.append(cols.part(pos.topic, pos.partition))
            cols.off.append(pos.offset)

    def _feedback_targets(self, fb: Feedback) -> list[str] | None:
        rt = self.rt
        if fb.asset is not None:
            return [fb.asset] if fb.asset in rt.zones else None
        if fb.line is not None:
            members = rt.lines.get(fb.line)
            return None if members is None else sorted(members)
        return list(rt.zone_ids)

    # ---- numpy: check, sort, reduce --------------------------------------------------------------
    def _group(self, cols: _Columns, out: list) -> dict[str, ZoneBatch]:
        chunks = list(cols.chunks)
        if cols.zi:
            chunks.append((np.array(cols.zi, dtype=np.int64), np.array(cols.mc, dtype=np.int64),
                           np.array(cols.ts, dtype=np.int64), np.array(cols.vs, dtype=np.float64), cols.raw,
                           np.array(cols.pk, dtype=np.int64), np.array(cols.off, dtype=np.int64)))
        if not chunks:
            return {}
        if len(chunks) == 1:
            Z, C, T, V, raw, P, O = chunks[0]
        else:
            Z, C, T, V, P, O = (np.concatenate([c[i] for c in chunks]) for i in (0, 1, 2, 3, 5, 6))
            raw = list(chain.from_iterable(c[4] for c in chunks))
        names = list(cols.names)
        bad = ((C == HVAC) & ~((V == 0) | (V == 1) | (V == 2) | (V == 3))) | ((C == OCCUPANCY) & (V < 0))
        if bad.any():
            mnames = self.rt.metric_names
            for k in np.flatnonzero(bad).tolist():
                what = "an HVAC state must be 0 (off), 1 (heating), 2 (cooling) or 3 (both)" if C[k] == HVAC \
                    else "occupancy must not be negative"
                topic, part = names[P[k]]
                out.append(self._reject(None, "bad_value", f"{mnames[C[k]]} = {V[k]:g}: {what}",
                                        self.rt.zone_ids[Z[k]], raw=raw[k],
                                        pos=Position(topic, part, int(O[k]))))
            keep = ~bad
            raw = [raw[k] for k in np.flatnonzero(keep).tolist()]
            Z, C, T, V, P, O = Z[keep], C[keep], T[keep], V[keep], P[keep], O[keep]
        n = len(Z)
        if n == 0:
            return {}
        IV = T // self.rt.interval_ns
        order = np.lexsort((IV, C, Z))
        Z, C, T, V, P, O, IV = Z[order], C[order], T[order], V[order], P[order], O[order], IV[order]
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(Z[1:], Z[:-1], out=change[1:])
        change[1:] |= C[1:] != C[:-1]
        change[1:] |= IV[1:] != IV[:-1]
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], n)
        counts = ends - starts
        sums = np.add.reduceat(V, starts)
        pos = np.add.reduceat((V > 0).view(np.int8), starts, dtype=np.int64)
        n1 = np.add.reduceat((V == 1).view(np.int8), starts, dtype=np.int64)
        n2 = np.add.reduceat((V == 2).view(np.int8), starts, dtype=np.int64)
        n3 = np.add.reduceat((V == 3).view(np.int8), starts, dtype=np.int64)
        tmax = np.maximum.reduceat(T, starts)
        rz = Z[starts]
        zchange = np.empty(len(starts), dtype=bool)
        zchange[0] = True
        np.not_equal(rz[1:], rz[:-1], out=zchange[1:])
        zrow = np.flatnonzero(zchange)  # first row of each zone
        zread = starts[zrow]  # first reading of each zone
        zread_end = np.append(zread[1:], n)
        zone_of_row = np.cumsum(zchange) - 1  # rows' reading ranges relative to their zone's first reading
        rel_lo = starts - zread[zone_of_row]
        rel_hi = ends - zread[zone_of_row]
        rows = list(zip(C[starts].tolist(), IV[starts].tolist(), counts.tolist(), sums.tolist(), pos.tolist(),
                        n1.tolist(), n2.tolist(), n3.tolist(), tmax.tolist(), rel_lo.tolist(),
                        rel_hi.tolist()))
        spans = _spans(names, P, O, zread, zread_end)
        ids = self.rt.zone_ids
        groups: dict[str, ZoneBatch] = {}
        zrow_end = np.append(zrow[1:], len(starts)).tolist()
        for j, (r0, r1, a, b) in enumerate(zip(zrow.tolist(), zrow_end, zread.tolist(), zread_end.tolist())):
            z = ids[rz[r0]]
            groups[z] = ZoneBatch(z, rows[r0:r1], Picked(raw, order[a:b]), O[a:b], P[a:b], names, spans[j])
        return groups


def _spans(names: list[tuple[str, int]], P: np.ndarray, O: np.ndarray, zread: np.ndarray,
           zread_end: np.ndarray) -> list[tuple[tuple[str, int, int, int], ...]]:
    """Per zone: (topic, partition, first offset, last offset) of its readings in this batch."""
    if len(names) == 1:
        (topic, part), = names
        lo = np.minimum.reduceat(O, zread).tolist()
        hi = np.maximum.reduceat(O, zread).tolist()
        return [((topic, part, a, b),) for a, b in zip(lo, hi)]
    # several partitions: min/max offset per (zone, partition) pair with one more sort, then assemble per zone
    zone = np.repeat(np.arange(len(zread)), zread_end - zread)
    order = np.lexsort((P, zone))
    zs, ps, os_ = zone[order], P[order], O[order]
    change = np.empty(len(zs), dtype=bool)
    change[0] = True
    change[1:] = (zs[1:] != zs[:-1]) | (ps[1:] != ps[:-1])
    starts = np.flatnonzero(change)
    lo = np.minimum.reduceat(os_, starts).tolist()
    hi = np.maximum.reduceat(os_, starts).tolist()
    out: list[list[tuple[str, int, int, int]]] = [[] for _ in range(len(zread))]
    for z, p, a, b in zip(zs[starts].tolist(), ps[starts].tolist(), lo, hi):
        out[z].append((*names[p], a, b))
    return [tuple(sorted(x)) for x in out]
