"""One zone's state: open intervals, baseline, waste alerts, setpoint commands and KPI periods (no Bytewax).

:meth:`ZoneState.on_batch` takes the zone's :class:`~aiotstream.energy.ingest.ZoneBatch`
of one poll batch and returns outputs. The zone's clock is event time:

* partial rows add into their interval's accumulators; the newest reading
  time less ``window.allowed_lateness_s`` is the watermark, and every interval
  that ends at or before it closes, oldest first (readings for a closed
  interval are dead-lettered as ``late``), once the outdoor sensor's readings
  have also passed it: its temperature is one of the baseline's features, and
  it arrives from another partition, so without the wait a replay would
  summarise an interval with or without it depending on read timing (the
  flow stops waiting when tailing and the sensor has been silent for
  ``window.idle_close_s``);
* a closed interval is summarised (:class:`~aiotstream.energy.waste.IntervalSummary`),
  the baseline predicts its mean power, then learns it unless a waste alert
  is open; the residual feeds the drift detector;
* the waste values go to the zone's :class:`~aiotstream.decisions.alerts.AlertBook`
  (open after N intervals, clear after ``clear_intervals``); alert changes go to
  the :class:`~aiotstream.decisions.control.Controller`, whose rules (``[[control.rules]]``
  with ``when.alert_type``) propose setpoint commands through the actuator's
  safety envelope; the latest interval means are the interlocks' metrics;
* a zone with neighbours also sends the interval's heating and cooling
  fractions to its floor (:mod:`aiotstream.energy.floor`);
* the interval's energy, baseline and counts add into the KPI period(s) it
  starts in; a period is emitted (``kpi/2``, scope ``asset`` = the zone) when an
  interval at or after its end closes, and at the end of input.

KPI definitions (per interval, added exactly into periods and roll-ups):
``energy_kwh`` = mean power of the interval's samples x interval length;
``baseline_kwh`` = the baseline's mean power x interval length, or the
actual energy while the model warms up (no savings are claimed then);
``baseline_samples`` = intervals with a model baseline; savings = baseline -
actual (negative when the zone used more than expected).
"""
from __future__ import annotations

import math
import time
from operator import attrgetter
from typing import Any

from aiotstream.config import ALERT_TYPE_COMMAND_FAILED
from aiotstream.decisions import effects
from aiotstream.decisions.alerts import AlertBook, AlertChange, AlertRuleSpec
from aiotstream.decisions.control import Controller, Situation
from aiotstream.decisions.maintenance import MaintenanceSchedule, SuppressionGauge
from aiotstream.energy.baseline import Baseline, features
from aiotstream.energy.floor import ZoneHvac
from aiotstream.energy.ingest import ZoneBatch
from aiotstream.energy.runtime import OCCUPANCY, POWER, TEMPERATURE, BuildingRuntime
from aiotstream.energy.waste import (
    IntervalSummary,
    NightBaseload,
    creep_value,
    empty_hvac_value,
    intervals_for,
    simultaneous_value,
)
from aiotstream.kpi import PeriodResult, Tumbling, kpi_record, new_totals
from aiotstream.lineage import inputs_block, iso_ns, window_block
from aiotstream.records import DeadLetter, Feedback, Output
from aiotstream.runstats import STATS, Share
from aiotstream.units import S

HOUR_NS = 3600 * S


def waste_specs(rt: BuildingRuntime) -> list[AlertRuleSpec]:
    """The alert types of a zone: the three waste patterns and ``command_failed``."""
    b = rt.building
    w, L = b.waste, b.interval_s
    cool = round(w.cooldown_s * S)
    return [
        AlertRuleSpec("hvac_empty_zone", "empty_hvac", "above", w.empty_hvac_fraction,
                      w.empty_hvac_fraction / 2, None, "warning", intervals_for(w.empty_hvac_after_s, L),
                      None, w.clear_intervals, None, cool),
        AlertRuleSpec("simultaneous_heat_cool", "simultaneous", "above", w.simultaneous_fraction,
                      w.simultaneous_fraction / 2, None, "warning", intervals_for(w.simultaneous_after_s, L),
                      None, w.clear_intervals, None, cool),
        AlertRuleSpec("baseload_creep", "baseload_creep", "above", w.baseload_creep, w.baseload_creep / 2,
                      None,
                      "warning", w.baseload_nights, None, 1, None, cool),
        AlertRuleSpec(ALERT_TYPE_COMMAND_FAILED, None, severity="critical"),
    ]


class _Period:
    __slots__ = ("end", "scheme", "spans", "start", "totals")

    def __init__(self, scheme: int, start: int, end: int):
        self.scheme, self.start, self.end = scheme, start, end
        self.totals = new_totals()
        self.spans: dict[tuple[str, int], list[int]] = {}


def _add_spans(into: dict[tuple[str, int], list[int]],
               spans: tuple[tuple[str, int, int, int], ...] | list) -> None:
    for t, p, a, b in spans:
        s = into.get((t, p))
        if s is None:
            into[(t, p)] = [a, b]
        else:
            s[0] = min(s[0], a)
            s[1] = max(s[1], b)


def _spans_tuple(spans: dict[tuple[str, int], list[int]]) -> tuple[tuple[str, int, int, int], ...]:
    return tuple(sorted((t, p, a, b) for (t, p), (a, b) in spans.items()))


class ZoneState(effects.RuntimeEntity):
    """All state of one zone (see the module docstring). Pickles without the shared runtime."""

    def __init__(self, rt: BuildingRuntime, zone: str):
        self.rt = rt
        self.zone = zone
        self.floor = rt.zones[zone]
        b = rt.building
        bl = b.baseline
        self.open: dict[int, list] = {}  # interval index -> accumulators
        self.spans: dict[int, dict[tuple[str, int], list[int]]] = {}
        self.outdoor: dict[int, list] = {}  # interval index -> [sum, n]
        self.next_iv: int | None = None  # intervals before this are closed
        self.max_ts = -1
        self.baseline = Baseline(bl.warmup_intervals, bl.learning_rate, bl.drift_detector, bl.drift_delta)
        self.last_x: dict[str, float] = {}
        self.last_outdoor = math.nan
        self.outdoor_iv = -1  # newest interval with outdoor readings: the ones before it have all of theirs
        self.schedule = MaintenanceSchedule()
        cfg = rt.config
        for wid, start, end in rt.maintenance_for(zone):
            self.schedule.set(wid, start, end)
        self.specs = waste_specs(rt)
        a = cfg.alerts
        self.book = AlertBook(zone, rt.ctx.site, rt.ctx.config_hash, self.specs, self.schedule,
                              round(a.escalate_after_s * S), a.max_escalations, a.history)
        self.control = Controller(zone, rt.ctx.site, rt.ctx.config_hash, *rt.control_specs(zone))
        w = b.waste
        self.night = NightBaseload(rt.clock, w.night_start_h, w.night_end_h, w.baseload_learn_nights)
        self.night_spans: dict[tuple[str, int], list[int]] = {}
        self.schemes = [Tumbling(round(p * S)) for p in cfg.kpi.periods_s]
        self.periods: dict[tuple[int, int], _Period] = {}
        self.metrics: dict[str, float] = {}
        self.clock_ns: int | None = None
        self.has_neighbours = zone in rt.neighbours
        self._deciding: list[_Period] = []  # the KPI periods the decision being made counts into
        self.suppression = SuppressionGauge()  # this zone's part of STATS gauge active_suppressions
        self.alert_share = Share("open_alerts")  # its part of the metrics' open alerts and pending commands
        self.command_share = Share("pending_commands")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("rt", "_deciding")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("outdoor_iv", -1)  # a snapshot from before the outdoor wait
        self.__dict__.setdefault("suppression", SuppressionGauge())  # a snapshot from before the gauge
        self.__dict__.setdefault("alert_share", Share("open_alerts"))  # ... from before the metrics
        self.__dict__.setdefault("command_share", Share("pending_commands"))
        self._deciding = []
        self.rt = None  # type: ignore[assignment]  # set by attach()

    def attach(self, rt: BuildingRuntime) -> ZoneState:
        self.rt = rt
        return self

    # ---- input ---------------------------------------------------------------------------------
    def on_batch(self, batch: ZoneBatch, hold_for_outdoor: bool = True) -> list[Output]:
        """Take the zone's share of one poll batch; ``hold_for_outdoor``: close only the intervals the outdoor
        readings have passed (False: the flow has stopped waiting for a silent sensor)."""
        outs: list[Output] = []
        L = self.rt.interval_ns
        nxt = self.next_iv
        late = 0
        last_iv = None
        max_ts = self.max_ts
        for row in batch.rows:
            c, iv, n, s, npos, n1, n2, n3, tmax, lo, hi = row
            if nxt is not None and iv < nxt:
                outs.extend(self._late(batch, lo, hi, iv))
                late += n
                continue
            acc = self.open.get(iv)
            if acc is None:
                acc = self.open[iv] = [0, 0.0, 0, 0.0, 0, 0.0, 0, 0, 0, 0, 0, 0]
                self.spans[iv] = {}
            if c == POWER:
                acc[0] += n
                acc[1] += s
            elif c == TEMPERATURE:
                acc[2] += n
                acc[3] += s
            elif c == OCCUPANCY:
                acc[4] += n
                acc[5] += s
                acc[6] += npos
            else:
                acc[7] += n
                acc[8] += npos
                acc[9] += n1
                acc[10] += n2
                acc[11] += n3
            if iv != last_iv:
                _add_spans(self.spans[iv], batch.spans)
                last_iv = iv
            max_ts = max(max_ts, tmax)
        self.max_ts = max_ts
        for iv, s, n in batch.outdoor:
            self.outdoor_iv = max(self.outdoor_iv, iv)
            if nxt is None or iv >= nxt:
                o = self.outdoor.setdefault(iv, [0.0, 0])
                o[0] += s
                o[1] += n
        if late:
            self._count_now("late_inputs", late)
        for fb in batch.feedback:
            outs.extend(self._feedback(fb))
        if self.max_ts >= 0:
            end = (self.max_ts - self.rt.lateness_ns) // L * L
            if hold_for_outdoor:
                end = min(end, self.outdoor_iv * L)
            outs.extend(self._close_until(end))
        self._report()
        return outs

    def flush(self, kpi: bool = True) -> list[Output]:
        """Close every open interval; with ``kpi`` (end of input) also emit every KPI period."""
        outs = self._close_until(None)
        if kpi:
            outs.extend(self._emit_periods(None))
        self._report()
        return outs

    def _report(self) -> None:
        """Report to the run summary whether this zone's alerts are suppressed now, and to the metrics its
        open alerts and pending commands (as assets do)."""
        self.suppression.update(self.clock_ns is not None and self.schedule.active(self.clock_ns))
        effects.report_open(self.book, self.control, self.alert_share, self.command_share)

    # ---- intervals -----------------------------------------------------------------------------
    def _close_until(self, end_ns: int | None) -> list[Output]:
        """Close the open intervals that end at or before ``end_ns`` (None: all), oldest first."""
        L = self.rt.interval_ns
        due = sorted(iv for iv in self.open if end_ns is None or (iv + 1) * L <= end_ns)
        outs: list[Output] = []
        for iv in due:
            outs.extend(self._emit_periods(iv * L))
            outs.extend(self._interval(iv))
            self.next_iv = iv + 1
        if due:
            for k in [k for k in self.outdoor if k < self.next_iv]:  # type: ignore[operator]
                del self.outdoor[k]
            # the metrics: how late after their end the intervals closed, and the zone's watermark
            now = time.time()
            STATS.observe_many("window_close_latency_seconds", [now - (iv + 1) * L / S for iv in due])
            STATS.watermark(self.zone, (due[-1] + 1) * L)
        return outs

    def _summary(self, iv: int) -> IntervalSummary:
        L = self.rt.interval_ns
        a = self.open.pop(iv)
        o = self.outdoor.pop(iv, None)
        if o is not None and o[1]:
            self.last_outdoor = o[0] / o[1]
        return IntervalSummary(self.zone, iv * L, (iv + 1) * L, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                               a[7], a[8],
                               a[9], a[10], a[11], self.last_outdoor)

    def _interval(self, iv: int) -> list[Output]:
        rt = self.rt
        s = self._summary(iv)
        spans = self.spans.pop(iv)
        t = s.end_ns
        self.clock_ns = t if self.clock_ns is None else max(self.clock_ns, t)
        tot = self._deciding = self._totals(s.start_ns)
        tot_add = []
        meters = rt.building.meters
        hours = (s.end_ns - s.start_ns) / HOUR_NS
        kwh = s.kwh()
        tot_add += [("windows", 1), ("observed_s", s.end_ns - s.start_ns), ("power_samples", s.power_n)]
        drift = False
        x = features(s, rt.clock.hour(s.start_ns), self.last_x)
        self.last_x = x
        if kwh is not None:
            t0 = time.perf_counter_ns()
            kw_hat = self.baseline.predict(x)
            tot_add += [("energy_kwh", kwh), ("model_calls", 1)]
            if kw_hat is None:
                tot_add.append(("baseline_kwh", kwh))  # warming up: no savings claimed
            else:
                tot_add += [("baseline_kwh", kw_hat * hours), ("baseline_samples", 1), ("scored_windows", 1)]
                drift = self.baseline.residual(s.power_sum / s.power_n, kw_hat)
            waste_open = any(k != ALERT_TYPE_COMMAND_FAILED for k in self.book.current)
            if not waste_open:
                self.baseline.learn(x, s.power_sum / s.power_n)
            tot_add.append(("model_latency_s", time.perf_counter_ns() - t0))
        if drift:
            tot_add.append(("drift_events", 1))
        for k, v in tot_add:
            for p in tot:
                p.totals[k] += v
        for p in tot:
            _add_spans(p.spans, _spans_tuple(spans))
        for name, v in ((meters.power, s.mean("power")), (meters.temperature, s.mean("temp")),
                        (meters.occupancy, s.mean("occ")), (meters.hvac, s.fraction("on")),
                        (rt.building.outdoor_metric, s.outdoor)):
            if not math.isnan(v):
                self.metrics[name] = v
        lineage = rt.ctx.block(inputs=inputs_block(_spans_tuple(spans)),
                               window=window_block(s.start_ns, s.end_ns),
                               features=None, model=rt.model_block)
        window = (s.start_ns, s.end_ns)
        changes = effects.on_values(self, t, [("hvac_empty_zone", empty_hvac_value(s)),
                                              ("simultaneous_heat_cool", simultaneous_value(s))], window)
        _add_spans(self.night_spans, _spans_tuple(spans))
        night = self.night.add(s.start_ns, s.end_ns, kwh)
        night_lineage = None
        if night is not None:
            day, kw, ref = night
            if ref is not None:
                night_lineage = rt.ctx.block(inputs=inputs_block(_spans_tuple(self.night_spans)),
                                             window=window_block(s.start_ns, s.end_ns), features=None,
                                             model=rt.model_block)
                changes_n = effects.on_values(self, t, [("baseload_creep", creep_value(kw, ref))], window)
                effects.annotate_opened(changes_n, {"night_day": day, "night_kw": round(kw, 6),
                                                    "reference_kw": round(ref, 6)})
                outs_n = effects.alert_outputs(self, changes_n, night_lineage)
            else:
                outs_n = []
            self.night_spans = {}
        else:
            outs_n = []
        effects.annotate_opened(changes, {"hvac_on_fraction": round(s.fraction("on"), 6),
                                          "heat_cool_fraction": round(s.fraction("both"), 6),
                                          "occupied_fraction": round(s.occupied_n / s.occ_n, 6) if s.occ_n
                                          else None,
                                          "interval_kwh": None if kwh is None else round(kwh, 6)})
        outs = effects.alert_outputs(self, changes, lineage) + outs_n
        outs.extend(effects.timer_outputs(self, t, lineage))
        if self.has_neighbours and s.hvac_n:  # to the floor step: heating next to cooling
            outs.append(ZoneHvac(self.zone, self.floor, s.start_ns, s.end_ns, s.heat_n / s.hvac_n,  # type: ignore[arg-type]
                                 s.cool_n / s.hvac_n, _spans_tuple(spans)))
        return outs

    # ---- the entity the effects step works on (aiotstream.decisions.effects.Entity) ---------------
    key = property(attrgetter("zone"))
    group = property(attrgetter("floor"))

    def count(self, name: str, n: float, t_ns: int) -> None:
        """Into the KPI periods of the interval or feedback message being decided (set by the caller)."""
        for p in self._deciding:
            p.totals[name] += n

    def situation(self, t: int) -> Situation:
        return Situation(self.metrics, {k: a.severity for k, a in self.book.current.items()}, None,
                         self.schedule.active(t))

    def on_alert_change(self, ch: AlertChange) -> bool | None:
        return None  # the baseline learns no labels; waste alerts are not machine failures

    def _feedback(self, fb: Feedback) -> list[Output]:
        t = fb.ts_ns if self.clock_ns is None else max(fb.ts_ns, self.clock_ns)
        lineage = self.rt.ctx.block(inputs=inputs_block(((fb.pos.topic, fb.pos.partition, fb.pos.offset,
                                                           fb.pos.offset),)), window=None, features=None,
                                    model=None)
        self._deciding = self._totals(t)
        rt = self.rt  # maintenance bounded as in the plant flow (issue 15: a far-future end silenced alerts)
        return effects.feedback_outputs(self, fb, t, lineage, rt.maintenance_max_ns,
                                        rt.maintenance_max_windows, None)

    def _late(self, batch: ZoneBatch, lo: int, hi: int, iv: int) -> list[Output]:
        L = self.rt.interval_ns
        return [self.rt.deadletter(DeadLetter(
            batch.values[k], batch.position(k), "late",
            f"the reading falls in interval {iso_ns(iv * L)}, which closed already (allowed lateness "
            f"{self.rt.config.window.allowed_lateness_s:g} s)", asset=self.zone))
            for k in range(lo, hi)]

    # ---- KPI periods ---------------------------------------------------------------------------
    def _totals(self, t_ns: int) -> list[_Period]:
        """The open period of each scheme that contains ``t_ns`` (created on first use)."""
        out = []
        for i, sch in enumerate(self.schemes):
            start, end, _ = sch.period_of(t_ns)
            p = self.periods.get((i, start))
            if p is None:
                p = self.periods[(i, start)] = _Period(i, start, end)
            out.append(p)
        return out

    def _count_now(self, key: str, n: int) -> None:
        t = self.clock_ns if self.clock_ns is not None else max(self.max_ts, 0)
        for p in self._totals(t):
            p.totals[key] += n

    def _emit_periods(self, before_ns: int | None) -> list[Output]:
        """Emit the periods that end at or before ``before_ns`` (None: all), oldest first."""
        done = sorted((p for p in self.periods.values() if before_ns is None or p.end <= before_ns),
                      key=lambda p: (p.end, p.scheme))
        rt = self.rt
        outs = []
        for p in done:
            del self.periods[(p.scheme, p.start)]
            sch = self.schemes[p.scheme]
            r = PeriodResult(sch.name, sch.length_ns, p.start, p.end, "", self.zone, self.floor, p.totals,
                             _spans_tuple(p.spans))
            rec = kpi_record(rt.ctx, r, scope="asset", model_sha=rt.model_block["sha256"], features=None,
                             model=rt.model_block)
            outs.append(Output("kpi", self.zone, rec, partial=r))
        return outs
