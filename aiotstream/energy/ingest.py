"""A poll batch of meter readings -> per-zone interval partials, in one step (the scalar batch path).

One Python pass turns each message into ``(zone, meter, ts, value)``
(orjson, with the type checks of :func:`aiotstream.codecs.decode_reading`
inlined for the common case; anything unusual takes the generic decoder and
its dead-letter reasons). Then numpy does the rest for the whole batch: range
checks, one ``lexsort`` by (zone, meter, interval) and ``reduceat`` sums,
counts and state counts. What crosses to the per-zone step is one
:class:`ZoneBatch` per zone and poll batch with a handful of partial rows
(one per meter and interval touched), not one object per reading.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np
import orjson
from bytewax.connectors.kafka import KafkaSourceMessage

from aiotstream.analysis import Output
from aiotstream.codecs import decode_any
from aiotstream.codecs_iot import decode_payload
from aiotstream.energy.runtime import HVAC, OCCUPANCY, BuildingRuntime
from aiotstream.errors import DecodeError
from aiotstream.lineage import iso_ns
from aiotstream.records import DeadLetter, Feedback, Frame, Position, Reading

# A partial row: (meter code, interval index, count, sum, count > 0, count == 1, count == 2, count == 3,
# newest ts, first, last) -- first/last index the zone's messages (for dead letters of late readings).
Row = tuple[int, int, int, float, int, int, int, int, int, int, int]


@dataclass(slots=True)
class ZoneBatch:
    """One zone's share of a poll batch: partial rows, input spans, the batch's outdoor partials, feedback."""

    zone: str
    rows: list[Row] = field(default_factory=list)
    msgs: list[Any] = field(default_factory=list)  # the messages of the rows' readings, in row order
    spans: tuple[tuple[str, int, int, int], ...] = ()
    outdoor: tuple[tuple[int, float, int], ...] = ()  # (interval index, sum, count)
    feedback: list[Feedback] = field(default_factory=list)


def position(msg: Any) -> Position:
    return Position(msg.topic or "?", msg.partition if msg.partition is not None else -1,
                    msg.offset if msg.offset is not None else -1)


class BuildingIngest:
    """Decodes poll batches for the building flow (see the module docstring)."""

    def __init__(self, rt: BuildingRuntime, now_ns: Callable[[], int] = time.time_ns):
        self.rt = rt
        self.now_ns = now_ns
        b = rt.building
        self.outdoor = (b.outdoor_asset, b.outdoor_metric)
        self.source_errors = 0

    def _reject(self, msg: Any, reason: str, message: str, asset: str | None = None, raw: bytes | None = None,
                pos: Position | None = None) -> Output:
        raw = raw if raw is not None else (getattr(msg, "value", None) or b"")
        return self.rt.deadletter(DeadLetter(raw, pos or position(msg), reason, message, asset=asset))

    def decode(self, msgs: Iterable[Any]) -> list[tuple[str, ZoneBatch] | Output]:
        """Decode a poll batch: ``(zone, ZoneBatch)`` per zone touched, plus dead-letter outputs."""
        msgs = msgs if isinstance(msgs, list) else list(msgs)
        rt = self.rt
        zones, codes = rt.zone_index, rt.metric_codes
        horizon = self.now_ns() + rt.max_future_ns
        zi: list[int] = []
        mc: list[int] = []
        ts: list[int] = []
        vs: list[float] = []
        mi: list[int] = []
        out: list[Any] = []
        outdoor: list[tuple[int, float]] = []
        feedback: dict[str, list[Feedback]] = {}
        loads = orjson.loads
        kafka_msg = KafkaSourceMessage
        for i, msg in enumerate(msgs):
            if type(msg) is kafka_msg:
                try:
                    o = loads(msg.value)
                    if len(o) == 4:
                        z = zones.get(o["asset"])
                        c = codes.get(o["metric"])
                        t = o["ts"]
                        v = o["value"]
                        if z is not None and c is not None and type(t) is int and 0 <= t <= horizon and \
                                (type(v) is float or type(v) is int):
                            zi.append(z)
                            mc.append(c)
                            ts.append(t)
                            vs.append(v)
                            mi.append(i)
                            continue
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    pass
            self._slow(msg, i, horizon, zi, mc, ts, vs, mi, out, outdoor, feedback)
        groups = self._group(msgs, zi, mc, ts, vs, mi, out)
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

    # ---- the generic path: anything that is not a plain Kafka JSON reading of a known meter ----
    def _slow(self, msg: Any, i: int, horizon: int, zi: list, mc: list, ts: list, vs: list, mi: list, out: list,
              outdoor: list, feedback: dict) -> None:
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
        hints = getattr(msg, "hints", None)
        try:
            items = [decode_any(raw, pos)] if hints is None else \
                decode_payload(raw, pos, hints, msg.asset, msg.metric, msg.arrival_ns)
        except DecodeError as exc:
            out.append(self._reject(msg, exc.reason, str(exc), asset=getattr(msg, "asset", None)))
            return
        for item in items:
            if isinstance(item, Feedback):
                if item.ts_ns > horizon:
                    out.append(self._reject(msg, "future_timestamp", f"feedback time {iso_ns(item.ts_ns)} is ahead "
                                            "of this worker's clock by more than window.max_future_s", item.asset))
                    continue
                targets = self._feedback_targets(item)
                if targets is None:
                    out.append(self._reject(msg, "unknown_asset", f"feedback names {item.asset or item.line!r}, "
                                            f"which is not a zone or floor of {rt.config.site.id}", item.asset))
                for z in targets or ():
                    feedback.setdefault(z, []).append(item if item.asset == z else dc_replace(item, asset=z))
                continue
            if isinstance(item, Frame):
                out.append(self._reject(msg, "unsupported", "the energy-optimization flow takes scalar readings, "
                                        "not waveform frames", item.asset))
                continue
            r: Reading = item
            if r.ts_ns > horizon:
                out.append(self._reject(msg, "future_timestamp", f"event time {iso_ns(r.ts_ns)} is more than "
                                        f"{rt.config.window.max_future_s:g} s ahead of this worker's clock", r.asset))
                continue
            if (r.asset, r.metric) == self.outdoor:
                outdoor.append((r.ts_ns, r.value))
                continue
            z = rt.zone_index.get(r.asset)
            if z is None:
                out.append(self._reject(msg, "unknown_asset", f"{r.asset!r} is not a zone of {rt.config.site.id} "
                                        "(add it to [[building.zones]]) nor its outdoor sensor", r.asset))
                continue
            c = rt.metric_codes.get(r.metric)
            if c is None:
                out.append(self._reject(msg, "unknown_metric", f"metric {r.metric!r} is not a meter of the building "
                                        f"({', '.join(rt.metric_codes)}; see [building.meters])", r.asset))
                continue
            zi.append(z)
            mc.append(c)
            ts.append(r.ts_ns)
            vs.append(r.value)
            mi.append(i)

    def _feedback_targets(self, fb: Feedback) -> list[str] | None:
        rt = self.rt
        if fb.asset is not None:
            return [fb.asset] if fb.asset in rt.zones else None
        if fb.line is not None:
            members = rt.lines.get(fb.line)
            return None if members is None else sorted(members)
        return list(rt.zone_ids)

    # ---- numpy: check, sort, reduce --------------------------------------------------------------
    def _group(self, msgs: list, zi: list, mc: list, ts: list, vs: list, mi: list,
               out: list) -> dict[str, ZoneBatch]:
        n = len(zi)
        if n == 0:
            return {}
        Z = np.array(zi, dtype=np.int64)
        C = np.array(mc, dtype=np.int64)
        T = np.array(ts, dtype=np.int64)
        V = np.array(vs, dtype=np.float64)
        M = np.array(mi, dtype=np.int64)
        bad = ((C == HVAC) & ~((V == 0) | (V == 1) | (V == 2) | (V == 3))) | ((C == OCCUPANCY) & (V < 0))
        if bad.any():
            names = self.rt.metric_names
            for k in np.flatnonzero(bad).tolist():
                msg = msgs[M[k]]
                what = "an HVAC state must be 0 (off), 1 (heating), 2 (cooling) or 3 (both)" if C[k] == HVAC \
                    else "occupancy must not be negative"
                out.append(self._reject(msg, "bad_value", f"{names[C[k]]} = {V[k]:g}: {what}",
                                        self.rt.zone_ids[Z[k]]))
            keep = ~bad
            Z, C, T, V, M = Z[keep], C[keep], T[keep], V[keep], M[keep]
            n = len(Z)
            if n == 0:
                return {}
        IV = T // self.rt.interval_ns
        order = np.lexsort((IV, C, Z))
        Z, C, T, V, M, IV = Z[order], C[order], T[order], V[order], M[order], IV[order]
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
        is_hvac = C[starts] == HVAC
        if is_hvac.any():
            n1 = np.add.reduceat((V == 1).view(np.int8), starts, dtype=np.int64)
            n2 = np.add.reduceat((V == 2).view(np.int8), starts, dtype=np.int64)
            n3 = np.add.reduceat((V == 3).view(np.int8), starts, dtype=np.int64)
        else:
            n1 = n2 = n3 = np.zeros(len(starts), dtype=np.int64)
        tmax = np.maximum.reduceat(T, starts)
        rz = Z[starts]
        zchange = np.empty(len(starts), dtype=bool)
        zchange[0] = True
        np.not_equal(rz[1:], rz[:-1], out=zchange[1:])
        zrow = np.flatnonzero(zchange)  # first row of each zone
        zread = starts[zrow]  # first reading of each zone
        zread_end = np.append(zread[1:], n)
        # rows' reading ranges relative to their zone's first reading
        zone_of_row = np.cumsum(zchange) - 1
        rel_lo = starts - zread[zone_of_row]
        rel_hi = ends - zread[zone_of_row]
        rows = list(zip(C[starts].tolist(), IV[starts].tolist(), counts.tolist(), sums.tolist(), pos.tolist(),
                        n1.tolist(), n2.tolist(), n3.tolist(), tmax.tolist(), rel_lo.tolist(), rel_hi.tolist()))
        ordered = [msgs[k] for k in M.tolist()]
        spans = self._spans(ordered, zread, zread_end)
        ids = self.rt.zone_ids
        groups: dict[str, ZoneBatch] = {}
        zrow_end = np.append(zrow[1:], len(starts)).tolist()
        for j, (r0, r1, a, b) in enumerate(zip(zrow.tolist(), zrow_end, zread.tolist(), zread_end.tolist())):
            z = ids[rz[r0]]
            groups[z] = ZoneBatch(z, rows[r0:r1], ordered[a:b], spans[j])
        return groups

    @staticmethod
    def _spans(ordered: list, zread: np.ndarray, zread_end: np.ndarray) -> list[tuple[tuple[str, int, int, int], ...]]:
        """Per zone: (topic, partition, first offset, last offset) of its messages in this batch."""
        keys: dict[tuple[str, int], int] = {}
        P = np.fromiter((keys.setdefault((m.topic or "?", m.partition if m.partition is not None else -1), len(keys))
                         for m in ordered), dtype=np.int64, count=len(ordered))
        O = np.fromiter((m.offset if m.offset is not None else -1 for m in ordered), dtype=np.int64,
                        count=len(ordered))
        names = list(keys)
        if len(keys) == 1:
            (topic, part), = names
            lo = np.minimum.reduceat(O, zread).tolist()
            hi = np.maximum.reduceat(O, zread).tolist()
            return [((topic, part, a, b),) for a, b in zip(lo, hi)]
        out = []
        for a, b in zip(zread.tolist(), zread_end.tolist()):
            acc: dict[int, list[int]] = {}
            for p, o in zip(P[a:b].tolist(), O[a:b].tolist()):
                s = acc.setdefault(p, [o, o])
                s[0], s[1] = min(s[0], o), max(s[1], o)
            out.append(tuple(sorted((*names[p], lo, hi) for p, (lo, hi) in acc.items())))
        return out
