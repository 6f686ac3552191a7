"""One entity's KPI accounting: machine state time, parts, energy, failures and counts per period."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiotstream.kpi.periods import PeriodScheme, Tumbling
from aiotstream.kpi.totals import STATE_CODES, new_totals, split_trapezoid
from aiotstream.units import S

if TYPE_CHECKING:  # the KPI accounting reads a schedule; it does not need the decisions package to run
    from aiotstream.decisions.maintenance import MaintenanceSchedule


_TIME_STATE_KEYS = {"running": "run_s", "idle": "idle_s", "down": "down_s"}
_KEYS: dict[tuple[bool, str | None, bool], tuple[str, ...]] = {}  # (maintenance, state, failed) -> keys


def _time_keys(maint: bool, state: str | None, failed: bool) -> tuple[str, ...]:
    """The time totals a stretch of accounted time adds to (in this order).

    >>> _time_keys(False, "running", False)
    ('observed_s', 'planned_s', 'run_s', 'operating_s')
    >>> _time_keys(True, "down", True)
    ('observed_s', 'maintenance_s', 'planned_s', 'down_s', 'failure_s')
    """
    keys = ["observed_s"]
    if maint:
        keys.append("maintenance_s")
    if state in ("running", "idle", "down"):
        keys.append("planned_s")
        keys.append(_TIME_STATE_KEYS[state])
    if failed:
        keys.append("failure_s")
    elif not maint and state in (None, "running"):
        keys.append("operating_s")
    return tuple(keys)


_KEYS_PLAIN = _time_keys(False, None, False)  # no maintenance, no machine state, no failure


# ---- per-asset tracker ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Period:
    scheme: int
    start: int
    end: int
    label: str
    totals: dict[str, int | float] = field(default_factory=new_totals)
    spans: dict[tuple[str, int], list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """A finished period of one asset: its totals (time in ns) and input spans, ready to emit and roll up."""

    scheme: str
    length_ns: int | None
    start_ns: int
    end_ns: int
    label: str
    asset: str
    line: str
    totals: dict[str, int | float]
    spans: tuple[tuple[str, int, int, int], ...]


class KpiTracker:
    """One asset's KPI totals for every period scheme, with exact time accounting.

    The caller moves time forward with :meth:`advance` (event time; time is
    accounted piecewise with the machine state, failure and maintenance
    in force), counts point events with :meth:`count` (at their event time),
    and collects finished periods with :meth:`close`.
    """

    # class default: snapshots taken before the setting existed resume with it
    max_gap_ns: int = 7 * 86_400 * S

    def __init__(self, asset: str, line: str, schemes: list[PeriodScheme], *, failures: str = "both",
                 ideal_cycle_ns: int | None = None, energy_max_gap_ns: int = 300 * S, emit_delay_ns: int = 0,
                 max_gap_ns: int = 7 * 86_400 * S):
        self.asset = asset
        self.line = line
        self.schemes = schemes
        self.failures_mode = failures
        self.ideal_cycle_ns = ideal_cycle_ns
        self.energy_max_gap_ns = energy_max_gap_ns
        self.max_gap_ns = max_gap_ns
        self.emit_delay_ns = emit_delay_ns
        self.periods: dict[tuple[int, int], _Period] = {}
        self.accounted_ns: int | None = None
        self.state: str | None = None
        self.alert_failures: set[str] = set()
        self.failure_since: int | None = None
        self.counters: dict[str, float] = {}
        self.last_power: dict[str, tuple[int, float]] = {}

    # ---- periods ----
    def _period(self, i: int, start: int, end: int, label: str) -> _Period:
        p = self.periods.get((i, start))
        if p is None:
            p = self.periods[(i, start)] = _Period(i, start, end, label)
        return p

    def _at(self, t_ns: int) -> Iterator[_Period]:
        for i, scheme in enumerate(self.schemes):
            pr = scheme.period_of(t_ns)
            if pr is not None:
                yield self._period(i, *pr)

    def when(self, t_ns: int) -> int:
        """Where a point event at ``t_ns`` is counted: no earlier than the time already accounted."""
        return t_ns if self.accounted_ns is None else max(t_ns, self.accounted_ns)

    def count(self, name: str, n: float = 1, t_ns: int = 0, *, exact_time: bool = False) -> None:
        """Add ``n`` to a total in the periods containing the event time (clamped, see :meth:`when`)."""
        for p in self._at(t_ns if exact_time else self.when(t_ns)):
            p.totals[name] += n

    def add_many(self, sums: dict[str, float], maxima: dict[str, float], t_ns: int, *,
                 exact_time: bool = False) -> None:
        """Several :meth:`count` and :meth:`maximum` updates at one time (one period lookup)."""
        # (once per scored block: :meth:`_at`, :meth:`when` and :meth:`_period` inline, no generator)
        acc = self.accounted_ns
        t = t_ns if exact_time or acc is None else max(t_ns, acc)
        periods = self.periods
        for i, scheme in enumerate(self.schemes):
            pr = scheme.period_of(t)
            if pr is None:
                continue
            p = periods.get((i, pr[0]))
            if p is None:
                p = self._period(i, *pr)
            tot = p.totals
            for k, v in sums.items():
                tot[k] += v
            for k, v in maxima.items():
                tot[k] = max(tot[k], v)

    def maximum(self, name: str, value: float, t_ns: int, *, exact_time: bool = False) -> None:
        for p in self._at(t_ns if exact_time else self.when(t_ns)):
            p.totals[name] = max(p.totals[name], value)

    def add_window(self, spans: Iterable[tuple[str, int, int, int]], sums: dict[str, float],
                   t_ns: int) -> None:
        """:meth:`add_spans` and ``add_many(sums, {}, t_ns, exact_time=True)`` in one period lookup (once per
        window: :meth:`_at` and the span merge inline, a tumbling scheme's period by one modulo)."""
        periods = self.periods
        for i, scheme in enumerate(self.schemes):
            if type(scheme) is Tumbling:  # (period_of inline: the usual scheme)
                length = scheme.length_ns
                start = t_ns - t_ns % length
                p = periods.get((i, start))
                if p is None:
                    p = self._period(i, start, start + length, "")
            else:
                pr = scheme.period_of(t_ns)
                if pr is None:
                    continue
                p = periods.get((i, pr[0]))
                if p is None:
                    p = self._period(i, *pr)
            have = p.spans
            for topic, part, a, b in spans:
                span = have.get((topic, part))
                if span is None:
                    have[(topic, part)] = [a, b]
                else:
                    if a < span[0]:  # noqa: PLR1730 (no call: once per window)
                        span[0] = a
                    if b > span[1]:  # noqa: PLR1730
                        span[1] = b
            tot = p.totals
            for k, v in sums.items():
                tot[k] += v

    def readings_window(self, spans: Iterable[tuple[str, int, int, int]], start_ns: int, end_ns: int,
                        maintenance: MaintenanceSchedule) -> list[PeriodResult]:
        """A window of readings only closed (after :meth:`begin`): ``add_window(spans, {"windows": 1},
        start_ns)`` then ``advance_close(end_ns, maintenance)``, in one call (once per asset and window; the
        time since the last window, when it lies in the window's period of a tumbling scheme, added there
        inline)."""
        periods = self.periods
        a = self.accounted_ns
        quick = a is not None and a < end_ns and end_ns - a <= self.max_gap_ns and not maintenance.windows
        if quick:  # (what advance would do: _account(a, end_ns, False))
            state = self.state
            if state is None and not self.alert_failures:  # (no machine state, no failure: the usual case)
                keys = _KEYS_PLAIN
            else:
                failed = bool(self.alert_failures or state == "down") and self.in_failure()
                keys = _KEYS.get((False, state, failed))
                if keys is None:
                    keys = _KEYS[(False, state, failed)] = _time_keys(False, state, failed)
        for i, scheme in enumerate(self.schemes):
            if type(scheme) is Tumbling:
                length = scheme.length_ns
                ps = start_ns - start_ns % length
                p = periods.get((i, ps))
                if p is None:
                    p = self._period(i, ps, ps + length, "")
            else:
                pr = scheme.period_of(start_ns)
                if pr is None:
                    if quick:
                        self._account_scheme(i, scheme, a, end_ns, keys)  # type: ignore[arg-type]
                    continue
                p = periods.get((i, pr[0]))
                if p is None:
                    p = self._period(i, *pr)
            have = p.spans
            for topic, part, lo, hi in spans:
                span = have.get((topic, part))
                if span is None:
                    have[(topic, part)] = [lo, hi]
                else:
                    if lo < span[0]:  # noqa: PLR1730
                        span[0] = lo
                    if hi > span[1]:  # noqa: PLR1730
                        span[1] = hi
            tot = p.totals
            tot["windows"] += 1
            if quick:
                if p.start <= a and end_ns <= p.end:  # type: ignore[operator]  # (the usual stretch)
                    d = end_ns - a  # type: ignore[operator]
                    for k in keys:
                        tot[k] += d
                else:
                    self._account_scheme(i, scheme, a, end_ns, keys)  # type: ignore[arg-type]
        if quick:
            self.accounted_ns = end_ns
            delay = self.emit_delay_ns
            limit = end_ns - delay if delay > 0 else end_ns  # (min(end_ns, end_ns - delay) without the call)
            for p in periods.values():  # (as close: nearly always none is done)
                if p.end <= limit:
                    break
            else:
                return []
        else:
            self.advance(end_ns, maintenance)
        return self.close(end_ns)

    def add_spans(self, spans: Iterable[tuple[str, int, int, int]], t_ns: int) -> None:
        """Record input offsets (lineage) in the periods containing ``t_ns``."""
        for p in self._at(t_ns):
            for topic, part, a, b in spans:
                span = p.spans.setdefault((topic, part), [a, b])
                span[0], span[1] = min(span[0], a), max(span[1], b)

    # ---- time ----
    def in_failure(self) -> bool:
        by_alert = self.failures_mode in ("alerts", "both") and bool(self.alert_failures)
        by_state = self.failures_mode in ("state", "both") and self.state == "down"
        return by_alert or by_state

    def begin(self, t_ns: int) -> None:
        """Start accounting time at ``t_ns`` (the first window's start) if it has not started."""
        if self.accounted_ns is None:
            self.accounted_ns = t_ns

    def advance(self, t_ns: int, maintenance: MaintenanceSchedule) -> None:
        """Account the time from where accounting stands up to ``t_ns``.

        A stretch longer than ``max_gap_ns`` (nothing came in for that long: the asset was not observed)
        is not accounted: it counts in ``unobserved_s`` of the period where it ends, and no period is made
        for the time in between. So the periods touched by one call are bounded by ``max_gap_ns`` over the
        period length, never by how far apart two event times are (a reading from 1970 followed by one from
        now, or a replay with a gap of months).
        """
        if self.accounted_ns is None:
            self.accounted_ns = t_ns
            return
        a = self.accounted_ns
        if t_ns <= a:
            return
        if t_ns - a > self.max_gap_ns:
            self.accounted_ns = t_ns
            self.count("unobserved_s", t_ns - a, t_ns)
            return
        if maintenance.windows:
            cuts = sorted({x for w in maintenance.windows.values() for x in w if a < x < t_ns})
            for lo, hi in zip([a] + cuts, cuts + [t_ns]):
                self._account(lo, hi, maintenance.active(lo))
        else:  # (no maintenance: one stretch, the usual case, once per window)
            self._account(a, t_ns, False)
        self.accounted_ns = t_ns

    def _account(self, a: int, b: int, maint: bool) -> None:
        state = self.state
        failed = bool(self.alert_failures or state == "down") and self.in_failure()
        keys = _KEYS.get((maint, state, failed))
        if keys is None:
            keys = _KEYS[(maint, state, failed)] = _time_keys(maint, state, failed)
        periods = self.periods
        for i, scheme in enumerate(self.schemes):
            if type(scheme) is Tumbling:  # a stretch within one period (a window's: the usual case) inline
                length = scheme.length_ns
                s = a - a % length
                if b <= s + length:
                    p = periods.get((i, s))
                    if p is None:
                        p = self._period(i, s, s + length, "")
                    tot = p.totals
                    d = b - a
                    for k in keys:
                        tot[k] += d
                    continue
            self._account_scheme(i, scheme, a, b, keys)

    def _account_scheme(self, i: int, scheme: PeriodScheme, a: int, b: int, keys: tuple[str, ...]) -> None:
        """Add the stretch ``[a, b)`` to the ``keys`` of scheme ``i``'s periods it overlaps."""
        for s, e, lo, hi, label in scheme.segments(a, b):
            tot = self._period(i, s, e, label).totals
            for k in keys:
                tot[k] += hi - lo

    def advance_close(self, t_ns: int, maintenance: MaintenanceSchedule) -> list[PeriodResult]:
        """``advance(t_ns, maintenance)`` then ``close(t_ns)`` (once per window: the usual stretch, within
        ``max_gap_ns`` and without maintenance windows, inline)."""
        a = self.accounted_ns
        if a is None or t_ns <= a or t_ns - a > self.max_gap_ns or maintenance.windows:
            self.advance(t_ns, maintenance)
            return self.close(t_ns)
        self._account(a, t_ns, False)
        self.accounted_ns = t_ns
        delay = self.emit_delay_ns
        limit = t_ns - delay if delay > 0 else t_ns  # (min(t_ns, t_ns - delay) without the call)
        for p in self.periods.values():  # (as close: nearly always none is done)
            if p.end <= limit:
                return self.close(t_ns)
        return []

    def _failure_edge(self, was: bool, t_ns: int) -> None:
        now = self.in_failure()
        if now and not was:
            self.failure_since = t_ns
            self.count("failures", 1, t_ns)
        elif was and not now:
            since = self.failure_since if self.failure_since is not None else t_ns
            self.count("repairs", 1, t_ns)
            self.count("repair_s", t_ns - since, t_ns)
            self.failure_since = None

    def alert_failure(self, alert_type: str, is_open: bool, t_ns: int,
                      maintenance: MaintenanceSchedule) -> None:
        """A failure-type alert opened or cleared at ``t_ns``."""
        t_ns = self.when(t_ns)
        self.advance(t_ns, maintenance)
        was = self.in_failure()
        (self.alert_failures.add if is_open else self.alert_failures.discard)(alert_type)
        self._failure_edge(was, t_ns)

    def set_state(self, code: float, t_ns: int, maintenance: MaintenanceSchedule) -> str | None:
        """A machine-state reading; returns a problem message for an unknown code."""
        if code not in STATE_CODES:
            return (f"state code {code:g} is unknown: use " +
                    ", ".join(f"{k} {v}" for k, v in STATE_CODES.items()))
        t_ns = self.when(t_ns)
        self.advance(t_ns, maintenance)
        was = self.in_failure()
        self.state = STATE_CODES[int(code)]
        self._failure_edge(was, t_ns)
        return None

    def counter(self, name: str, value: float, t_ns: int) -> str | None:
        """A cumulative part counter reading (``parts_total`` or ``parts_good``); a drop is a counter
        reset."""
        if value < 0 or value != int(value):
            return f"a part counter must be a non-negative integer, got {value!r}"
        prev = self.counters.get(name)
        self.counters[name] = value
        if prev is None:
            return None  # the first reading is the baseline
        delta = int(value - prev) if value >= prev else int(value)
        if delta:
            self.count(name, delta, t_ns)
            if name == "parts_total":
                if self.ideal_cycle_ns is None:
                    self.count("parts_without_ideal", delta, t_ns)
                else:
                    self.count("ideal_run_s", delta * self.ideal_cycle_ns, t_ns)
        return None

    def power(self, which: str, kw: float, t_ns: int) -> None:
        """A power sample (``which`` = ``energy`` or ``baseline``) in kW: integrate the segment since the last
        one."""
        total, samples = ("energy_kwh", "power_samples") if which == "energy" else ("baseline_kwh",
                                                                                   "baseline_samples")
        self.count(samples, 1, t_ns)
        last = self.last_power.get(which)
        self.last_power[which] = (t_ns, kw)
        if last is None or t_ns <= last[0]:
            return
        t0, p0 = last
        # never split over more than a gap's periods
        if t_ns - t0 > min(self.energy_max_gap_ns, self.max_gap_ns):
            self.count("energy_gap_s", t_ns - t0, t_ns)
            return
        for i, scheme in enumerate(self.schemes):
            cuts = [x for s, e, _, _, _ in scheme.segments(t0, t_ns) for x in (s, e)]
            for a, _b, kwh in split_trapezoid(t0, p0, t_ns, kw, cuts):
                pr = scheme.period_of(a)
                if pr is not None:
                    self._period(i, *pr).totals[total] += kwh

    def _energy_pending(self, end_ns: int, clock_ns: int) -> bool:
        """A period must wait while a later power sample may still integrate into it."""
        return any(t < end_ns and clock_ns < t + self.energy_max_gap_ns for t, _ in self.last_power.values())

    def close(self, clock_ns: int) -> list[PeriodResult]:
        """Finished periods: accounted to their end, ``emit_delay`` passed, no energy pending; oldest
        first."""
        acc = self.accounted_ns
        if acc is None:
            return []
        limit = min(acc, clock_ns - self.emit_delay_ns)
        for p in self.periods.values():  # (nearly always none is done: no list, no _emit)
            if p.end <= limit:
                break
        else:
            return []
        power = self.last_power
        done = [p for p in self.periods.values()
                if p.end <= acc and p.end + self.emit_delay_ns <= clock_ns
                and not (power and self._energy_pending(p.end, clock_ns))]
        return self._emit(done)

    def flush(self) -> list[PeriodResult]:
        """Every open period (end of input)."""
        return self._emit(list(self.periods.values()))

    def _emit(self, done: list[_Period]) -> list[PeriodResult]:
        done.sort(key=lambda p: (p.end, p.scheme))
        out = []
        for p in done:
            del self.periods[(p.scheme, p.start)]
            scheme = self.schemes[p.scheme]
            spans = tuple(sorted((t, q, a, b) for (t, q), (a, b) in p.spans.items()))
            out.append(PeriodResult(scheme.name, scheme.length_ns, p.start, p.end, p.label, self.asset,
                                    self.line,
                                    p.totals, spans))
        return out
