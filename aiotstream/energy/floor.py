"""Heating next to cooling: one floor's zones compared interval by interval (pure logic, no Bytewax).

A zone with neighbours (``adjacent`` / ``adjacency = "chain"``) sends the
heating and cooling fractions of each closed interval (:class:`ZoneHvac`) to
its floor. The floor evaluates an interval once every zone with neighbours on
the floor has reported it or a later one (or, so a silent zone cannot hold it
forever, once the floor's newest interval is ``lag`` intervals later; and at
the end of input). For each zone the value is, over its neighbours that
reported the interval, the largest ``max(min(heat_z, cool_n), min(cool_z,
heat_n))``: the fraction of the interval in which the zone heated while a
neighbour cooled (or the reverse), bounded by both. The alert
``adjacent_heat_cool`` (alert/2, on each zone of a fighting pair) opens at or
above ``simultaneous_fraction`` for ``simultaneous_after_s`` and clears like
the other waste alerts.

>>> a = ZoneHvac("z1", "f", 0, 10, heat=0.9, cool=0.0, spans=())
>>> b = ZoneHvac("z2", "f", 0, 10, heat=0.0, cool=0.8, spans=())
>>> fighting(a, [b])
(0.8, 'z2')
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiotstream.decisions import effects
from aiotstream.decisions.alerts import AlertBook, AlertChange, AlertRuleSpec
from aiotstream.decisions.control import Controller, Situation
from aiotstream.decisions.maintenance import MaintenanceSchedule
from aiotstream.energy.runtime import BuildingRuntime
from aiotstream.energy.waste import intervals_for
from aiotstream.lineage import inputs_block, window_block
from aiotstream.records import Output

ADJACENT = "adjacent_heat_cool"


@dataclass(frozen=True, slots=True)
class ZoneHvac:
    """One zone's closed interval as its floor sees it: fractions in HVAC state 1 (heating) and 2 (cooling).

    State 3 (both at once, in one zone) is its own alert, ``simultaneous_heat_cool``.
    """

    zone: str
    floor: str
    start_ns: int
    end_ns: int
    heat: float
    cool: float
    spans: tuple[tuple[str, int, int, int], ...]


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def fighting(z: ZoneHvac, neighbours: Sequence[ZoneHvac]) -> tuple[float, str | None]:
    """The largest heating-against-cooling fraction of ``z`` with any neighbour, and which neighbour."""
    best, who = 0.0, None
    for n in neighbours:
        v = max(min(z.heat, n.cool), min(z.cool, n.heat))
        if v > best:
            best, who = v, n.zone
    return best, who


class FloorState:
    """The intervals of one floor's zones with neighbours, and their ``adjacent_heat_cool`` alerts."""

    def __init__(self, rt: BuildingRuntime, floor: str, lag: int = 2):
        self.rt = rt
        self.floor = floor
        nb = rt.building.neighbours()
        self.neighbours = {z: sorted(ns) for z, ns in nb.items() if rt.zones.get(z) == floor}
        self.lag_ns = lag * rt.interval_ns
        self.pending: dict[int, dict[str, ZoneHvac]] = {}
        self.newest: dict[str, int] = {}
        self.books: dict[str, AlertBook] = {}
        w = rt.building.waste
        after = intervals_for(w.simultaneous_after_s, rt.building.interval_s)
        self.spec = AlertRuleSpec(ADJACENT, "adjacent", "above", w.simultaneous_fraction,
                                  w.simultaneous_fraction / 2, None, "warning", after, None,
                                  w.clear_intervals, None, round(w.cooldown_s * 1e9))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "rt"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rt = None  # type: ignore[assignment]  # set by attach()

    def attach(self, rt: BuildingRuntime) -> FloorState:
        self.rt = rt
        return self

    def _book(self, zone: str) -> AlertBook:
        b = self.books.get(zone)
        if b is None:
            sched = MaintenanceSchedule()
            for wid, start, end in self.rt.maintenance_for(zone):
                sched.set(wid, start, end)
            a = self.rt.config.alerts
            b = self.books[zone] = AlertBook(zone, self.rt.ctx.site, self.rt.ctx.config_hash, [self.spec],
                                             sched,
                                             round(a.escalate_after_s * 1e9), a.max_escalations, a.history)
        return b

    def add(self, items: Sequence[ZoneHvac]) -> list[Output]:
        for it in items:
            self.pending.setdefault(it.start_ns, {})[it.zone] = it
            self.newest[it.zone] = max(self.newest.get(it.zone, it.start_ns), it.start_ns)
        newest = max(self.newest.values(), default=None)
        outs: list[Output] = []
        for start in sorted(self.pending):
            done = all(self.newest.get(z, -1) >= start for z in self.neighbours)
            if not done and (newest is None or newest - start < self.lag_ns):
                break  # intervals are evaluated in order
            outs.extend(self._evaluate(start))
        return outs

    def flush(self) -> list[Output]:
        outs: list[Output] = []
        for start in sorted(self.pending):
            outs.extend(self._evaluate(start))
        return outs

    def _evaluate(self, start: int) -> list[Output]:

        got = self.pending.pop(start)
        outs: list[Output] = []
        rt = self.rt
        for zone in sorted(got):
            z = got[zone]
            ns = [got[n] for n in self.neighbours.get(zone, ()) if n in got]
            value, who = fighting(z, ns)
            changes = self._book(zone).on_value(ADJACENT, z.end_ns, value, list, None, (z.start_ns, z.end_ns))
            if not changes:
                continue
            spans = tuple(sorted({s for x in [z, *ns] for s in x.spans}))
            lineage = rt.ctx.block(inputs=inputs_block(spans), window=window_block(z.start_ns, z.end_ns),
                                   features=None, model=None)
            other = got.get(who) if who else None
            effects.annotate_opened(changes, {
                "neighbour": who, "heat_fraction": round(z.heat, 6), "cool_fraction": round(z.cool, 6),
                "neighbour_heat_fraction": _round(other.heat if other else None),
                "neighbour_cool_fraction": _round(other.cool if other else None)})
            entity = _FloorZone(rt, zone, self.floor, self._book(zone))
            outs.extend(effects.alert_outputs(entity, changes, lineage))
        return outs


class _FloorZone(effects.RuntimeEntity):
    """A zone as its floor step decides about it, through the same effects step as every entity: its
    ``adjacent_heat_cool`` alerts only; no control rules act on them and the zone step keeps the zone's
    KPI periods, so nothing is counted here."""

    def __init__(self, rt: BuildingRuntime, zone: str, floor: str, book: AlertBook):
        self.rt, self.key, self.group, self.book = rt, zone, floor, book
        self.schedule = book.schedule
        self.control = Controller(zone, rt.ctx.site, rt.ctx.config_hash, [], [])

    def count(self, name: str, n: float, t_ns: int) -> None:
        pass

    def situation(self, t_ns: int) -> Situation:
        alerts = {k: a.severity for k, a in self.book.current.items()}
        return Situation({}, alerts, None, self.schedule.active(t_ns))

    def on_alert_change(self, ch: AlertChange) -> bool | None:
        return None
