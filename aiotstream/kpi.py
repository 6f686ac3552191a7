"""KPI aggregates: additive totals per period, derived KPIs, exact roll-ups.

Every KPI record carries ``totals`` (sums and counts, and a few maxima, that
add up across assets and periods) and ``kpis`` (ratios derived from those
totals). A roll-up (per line, per site) adds the assets' totals and derives
its ratios from the sums, never by averaging the assets' ratios:

>>> a = new_totals(); a.update(run_s=8 * S, planned_s=10 * S)
>>> b = new_totals(); b.update(run_s=1 * S, planned_s=5 * S)
>>> derive(merge(a, b))["availability"]  # (8 + 1) / (10 + 5), not the mean of 0.8 and 0.2
0.6

Definitions (time in event time; ``S`` = 1 s in ns):

* availability = run time / planned production time (planned = running + idle + down);
* performance = (ideal cycle time x total parts) / run time;
* quality = good parts / total parts; OEE = availability x performance x quality;
* MTTR = repair time / repairs, counting the repairs that end in the period, each with its whole duration;
* MTBF = operating time / failures that start in the period (operating: not failed, not in maintenance,
  state running or unknown); MTTA = acknowledgement delay / acknowledged alerts;
* false alarm rate = false_alarm labels / all labels; anomaly rate = anomalous / scored windows;
* energy kWh = trapezoid integral of the power samples (kW) over time; baseline kWh likewise from
  the baseline power; savings = baseline - actual, savings % = savings / baseline x 100.

A ratio whose denominator is 0 is ``None`` (JSON null): undefined, not 0.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from aiotstream.config import KPI_NAMES
from aiotstream.lineage import FlowContext, inputs_block, make_id, window_block
from aiotstream.records import Output
from aiotstream.units import S

if TYPE_CHECKING:  # the KPI accounting reads a schedule; it does not need the decisions package to run
    from aiotstream.decisions.maintenance import MaintenanceSchedule

NS_PER_HOUR = 3_600 * S

STATE_CODES: dict[int, str] = {0: "planned_stop", 1: "running", 2: "idle", 3: "down"}
"""Machine state readings (metric ``kpi.state_metric``) carry these numeric codes."""

# name -> how two partials combine ("sum" or "max"); names ending in _s are seconds (kept as int ns inside)
TOTALS: dict[str, str] = {
    # windows and the model
    "frames": "sum", "windows": "sum", "scored_windows": "sum", "anomalous_windows": "sum",
                          "max_score": "max",
    "late_inputs": "sum", "drift_events": "sum", "model_calls": "sum", "model_latency_s": "sum",
    "model_latency_max_s": "max",
    # model variants (ONNX): the deciding score's moments; canary assets' and the shadow's windows apart
    "score_sum": "sum", "score_sq_sum": "sum",
    "canary_windows": "sum", "canary_anomalous_windows": "sum", "canary_score_sum": "sum",
    "canary_score_sq_sum": "sum", "canary_max_score": "max",
    "shadow_windows": "sum", "shadow_anomalous_windows": "sum", "shadow_score_sum": "sum",
    "shadow_score_sq_sum": "sum", "shadow_max_score": "max", "shadow_latency_s": "sum",
    # alerts and labels
    "alerts_opened": "sum", "alerts_info": "sum", "alerts_warning": "sum", "alerts_critical": "sum",
    "alerts_cleared": "sum", "alerts_acknowledged": "sum", "ack_delay_s": "sum", "alerts_escalated": "sum",
    "alerts_suppressed": "sum", "labels_true_fault": "sum", "labels_false_alarm": "sum",
    # time by machine state, failures, repairs
    "observed_s": "sum", "unobserved_s": "sum", "planned_s": "sum", "run_s": "sum", "idle_s": "sum",
                          "down_s": "sum",
    "maintenance_s": "sum", "failure_s": "sum", "operating_s": "sum", "failures": "sum", "repairs": "sum",
    "repair_s": "sum",
    # production
    "parts_total": "sum", "parts_good": "sum", "ideal_run_s": "sum", "parts_without_ideal": "sum",
    # energy
    "energy_kwh": "sum", "baseline_kwh": "sum", "power_samples": "sum", "baseline_samples": "sum",
    "energy_gap_s": "sum",
    # commands
    "commands_advisory": "sum", "commands_awaiting_approval": "sum", "commands_emitted": "sum",
    "commands_retried": "sum", "commands_acked": "sum", "commands_failed": "sum", "commands_expired": "sum",
    "commands_rejected": "sum", "commands_blocked": "sum", "commands_superseded": "sum",
}
TIME_TOTALS = frozenset(k for k in TOTALS if k.endswith("_s"))
FLOAT_TOTALS = frozenset({"max_score", "energy_kwh", "baseline_kwh", "score_sum", "score_sq_sum",
                          "canary_score_sum",
                          "canary_score_sq_sum", "canary_max_score", "shadow_score_sum",
                          "shadow_score_sq_sum",
                          "shadow_max_score"})


def new_totals() -> dict[str, int | float]:
    """Zeroed totals (time in int ns, counts int, energy and scores float)."""
    return {k: (0.0 if k in FLOAT_TOTALS else 0) for k in TOTALS}


def merge(a: dict[str, int | float], b: dict[str, int | float]) -> dict[str, int | float]:
    """Combine two partials exactly: sums add, maxima take the max.

    >>> merge({"frames": 2, "max_score": 0.5}, {"frames": 3, "max_score": 0.9})
    {'frames': 5, 'max_score': 0.9}
    """
    return {k: (max(a[k], b[k]) if TOTALS[k] == "max" else a[k] + b[k]) for k in a}


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or None when the denominator is 0 (undefined).

    >>> ratio(1, 4), ratio(1, 0)
    (0.25, None)
    """
    return num / den if den else None


def oee(run_ns: int, planned_ns: int, ideal_run_ns: int, parts_total: int, parts_good: int
        ) -> tuple[float | None, float | None, float | None, float | None]:
    """(availability, performance, quality, OEE) from time in ns and part counts.

    >>> a, p, q, o = oee(run_ns=400 * S, planned_ns=480 * S, ideal_run_ns=300 * S, parts_total=250,
    ...                  parts_good=240)
    >>> round(a, 4), round(p, 4), round(q, 4), round(o, 4)
    (0.8333, 0.75, 0.96, 0.6)
    """
    a = ratio(run_ns, planned_ns)
    p = ratio(ideal_run_ns, run_ns)
    q = ratio(parts_good, parts_total)
    o = a * p * q if a is not None and p is not None and q is not None else None
    return a, p, q, o


def trapezoid_kwh(t_ns: Iterable[int], p_kw: Iterable[float], max_gap_ns: int | None = None) -> float:
    """Energy in kWh of power samples (kW) by the trapezoid rule; gaps over ``max_gap_ns`` are skipped.

    >>> trapezoid_kwh([0, NS_PER_HOUR, 2 * NS_PER_HOUR], [10.0, 20.0, 20.0])  # 15 kWh + 20 kWh
    35.0
    >>> trapezoid_kwh([0, NS_PER_HOUR, 5 * NS_PER_HOUR], [10.0, 10.0, 10.0], max_gap_ns=NS_PER_HOUR)
    10.0
    """
    ts, ps = list(t_ns), list(p_kw)
    if len(ts) != len(ps):
        raise ValueError(f"{len(ts)} times but {len(ps)} power values")
    total = 0.0
    for i in range(1, len(ts)):
        dt = ts[i] - ts[i - 1]
        if dt < 0:
            raise ValueError("sample times must not decrease")
        if max_gap_ns is None or dt <= max_gap_ns:
            total += (ps[i - 1] + ps[i]) / 2.0 * dt / NS_PER_HOUR
    return total


def split_trapezoid(t0: int, p0: float, t1: int, p1: float,
                    cuts: Iterable[int]) -> list[tuple[int, int, float]]:
    """Split one trapezoid segment at the cut times inside it: ``[(a, b, kWh), ...]``.

    Power is linear between the samples, so the pieces add up to the whole segment exactly.

    >>> [(a, b, round(e, 6)) for a, b, e in split_trapezoid(0, 0.0, 2 * NS_PER_HOUR, 20.0, [NS_PER_HOUR])]
    [(0, 3600000000000, 5.0), (3600000000000, 7200000000000, 15.0)]
    """
    if t1 <= t0:
        return []
    points = [t0] + sorted(c for c in set(cuts) if t0 < c < t1) + [t1]

    def p(t: int) -> float:
        return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    return [(a, b, (p(a) + p(b)) / 2.0 * (b - a) / NS_PER_HOUR) for a, b in pairwise(points)]


def savings(actual_kwh: float, baseline_kwh: float) -> tuple[float, float | None]:
    """(savings kWh, savings %) against a baseline; the percentage is None for a zero baseline, and for one so
    small that the percentage is not a finite number.

    >>> savings(80.0, 100.0)
    (20.0, 20.0)
    >>> savings(1.0, 5e-324)
    (-1.0, None)
    """
    saved = baseline_kwh - actual_kwh
    pct = saved / baseline_kwh * 100.0 if baseline_kwh else None
    return saved, (pct if pct is not None and math.isfinite(pct) else None)


def derive(t: dict[str, int | float]) -> dict[str, float | None]:
    """The derived KPIs of a set of totals (see the module docstring for the definitions)."""
    perf_defined = t["parts_without_ideal"] == 0
    a, p, q, o = oee(t["run_s"], t["planned_s"], t["ideal_run_s"] if perf_defined else 0, t["parts_total"],
                     t["parts_good"])
    if not perf_defined or t["parts_total"] == 0:
        p, o = None, None
    energy = baseline = saved = pct = None
    if t["power_samples"]:
        energy = t["energy_kwh"]
    if t["baseline_samples"]:
        baseline = t["baseline_kwh"]
    if energy is not None and baseline is not None:
        saved, pct = savings(energy, baseline)
    labels = t["labels_true_fault"] + t["labels_false_alarm"]
    mttr = ratio(t["repair_s"], t["repairs"])
    mtbf = ratio(t["operating_s"], t["failures"])
    mtta = ratio(t["ack_delay_s"], t["alerts_acknowledged"])
    latency = ratio(t["model_latency_s"], t["model_calls"])
    out: dict[str, float | None] = {
        "availability": a, "performance": p, "quality": q, "oee": o,
        "mttr_s": None if mttr is None else mttr / S,
        "mtbf_s": None if mtbf is None else mtbf / S,
        "mtta_s": None if mtta is None else mtta / S,
        "false_alarm_rate": ratio(t["labels_false_alarm"], labels),
        "anomaly_rate": ratio(t["anomalous_windows"], t["scored_windows"]),
        "model_latency_ms": None if latency is None else latency / 1e6,
        "energy_kwh": energy, "baseline_kwh": baseline, "savings_kwh": saved, "savings_pct": pct,
    }
    assert tuple(out) == KPI_NAMES
    # a ratio of finite totals can still overflow (a subnormal denominator): undefined, like a zero one
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in out.items()}


def variant_kpis(t: dict[str, int | float]) -> dict[str, dict[str, float | None]] | None:
    """Per model variant (ONNX sites): windows, anomaly rate, score mean and spread, latency; None when no
    variant scored. ``champion`` counts the windows not on the canary; its maximum is not separable.

    >>> t = new_totals(); t.update(scored_windows=4, anomalous_windows=1, score_sum=1.6, score_sq_sum=1.0,
    ...                            canary_windows=1, canary_anomalous_windows=1, canary_score_sum=0.7,
    ...                            canary_score_sq_sum=0.49, canary_max_score=0.7)
    >>> v = variant_kpis(t)
    >>> v["champion"]["windows"], v["champion"]["anomaly_rate"], v["canary"]["mean_score"]
    (3, 0.0, 0.7)
    """
    if not (t["score_sum"] or t["shadow_windows"] or t["canary_windows"]):
        return None

    def stats(n: float, anomalous: float, s1: float, s2: float, top: float | None,
              lat_ns: float | None) -> dict:
        mean = ratio(s1, n)
        var = None if mean is None else max(0.0, s2 / n - mean * mean)
        return {"windows": n, "anomaly_rate": ratio(anomalous, n),
                "mean_score": None if mean is None else round(mean, 6),
                "std_score": None if var is None else round(math.sqrt(var), 6),
                "max_score": top if n else None,
                "latency_ms": None if lat_ns is None or not n else round(lat_ns / n / 1e6, 3)}

    c = t["canary_windows"]
    out = {"champion": stats(t["scored_windows"] - c, t["anomalous_windows"] - t["canary_anomalous_windows"],
                             t["score_sum"] - t["canary_score_sum"],
                             t["score_sq_sum"] - t["canary_score_sq_sum"],
                             None, None)}
    if c:
        out["canary"] = stats(c, t["canary_anomalous_windows"], t["canary_score_sum"],
                              t["canary_score_sq_sum"],
                              t["canary_max_score"], None)
    if t["shadow_windows"]:
        out["shadow"] = stats(t["shadow_windows"], t["shadow_anomalous_windows"], t["shadow_score_sum"],
                              t["shadow_score_sq_sum"], t["shadow_max_score"], t["shadow_latency_s"])
    return out


def public_totals(t: dict[str, int | float]) -> dict[str, int | float]:
    """Totals as records carry them: time in seconds (exact to the ns), the rest unchanged."""
    return {k: (round(v / S, 9) if k in TIME_TOTALS else v) for k, v in t.items()}


def from_public(t: dict[str, int | float]) -> dict[str, int | float]:
    """The inverse of :func:`public_totals`: totals read from records, ready to :func:`merge` and
    :func:`derive`.

    >>> from_public(public_totals({**new_totals(), "run_s": 1_500_000_001}))["run_s"]
    1500000001
    """
    return {k: (round(v * S) if k in TIME_TOTALS else v) for k, v in t.items()}


# ---- periods ---------------------------------------------------------------------------------------
class PeriodScheme(Protocol):
    """How event time is cut into KPI periods."""

    name: str
    length_ns: int | None  # None: periods of varying length (shifts)

    def period_of(self, t_ns: int) -> tuple[int, int, str] | None:
        """The period ``(start, end, label)`` containing ``t_ns`` (None: no period covers it)."""
        ...

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        """``(period_start, period_end, a, b, label)`` for each period overlapping ``[a, b)``, clipped."""
        ...


class Tumbling:
    """Periods ``[k L, (k + 1) L)`` of a fixed length L.

    >>> list(Tumbling(10).segments(5, 25))
    [(0, 10, 5, 10, ''), (10, 20, 10, 20, ''), (20, 30, 20, 25, '')]
    """

    def __init__(self, length_ns: int, name: str | None = None):
        if length_ns <= 0:
            raise ValueError(f"period length must be > 0, got {length_ns}")
        self.length_ns = length_ns
        self.name = name or f"{length_ns / S:g}s"

    def period_of(self, t_ns: int) -> tuple[int, int, str]:
        start = (t_ns // self.length_ns) * self.length_ns
        return start, start + self.length_ns, ""

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        t = a_ns
        while t < b_ns:
            s, e, _ = self.period_of(t)
            yield s, e, t, min(e, b_ns), ""
            t = e


class Shifts:
    """Daily shifts in a time zone: ``(name, start minute of the local day, hours)``.

    A shift keeps its length in hours across a daylight-saving change, and ends
    at the latest when the next shift starts; time between shifts is in no shift.

    >>> sh = Shifts([("A", 6 * 60, 8), ("B", 14 * 60, 8), ("C", 22 * 60, 8)], "UTC")
    >>> s, e, name = sh.period_of(1_767_225_600 * S)  # 2026-01-01T00:00Z: in the night shift
    >>> name, (e - s) // 3600 // S, (1_767_225_600 * S - s) // 3600 // S
    ('C', 8, 2)
    """

    name = "shift"
    length_ns = None

    def __init__(self, shifts: list[tuple[str, int, float]], timezone: str = "UTC"):
        if not shifts:
            raise ValueError("no shifts")
        self.shifts = sorted(shifts, key=lambda s: s[1])
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._hit: tuple[int, int, tuple[int, int, str] | None] = (0, 0, None)

    def _instances(self, t_ns: int) -> list[tuple[int, int, str]]:
        """Shift instances of the local days around ``t_ns`` (clipped so they do not overlap), in order."""
        day = datetime.fromtimestamp(t_ns // S, tz=self._tz).date()
        out: list[tuple[int, int, str]] = []
        for d in (day - timedelta(days=2), day - timedelta(days=1), day, day + timedelta(days=1)):
            midnight = datetime(d.year, d.month, d.day, tzinfo=self._tz)
            for name, minute, hours in self.shifts:
                start = midnight + timedelta(minutes=minute)
                # the wall-clock start in the zone (fold-aware), then a length in absolute hours
                start_ns = int(start.timestamp()) * S
                out.append((start_ns, start_ns + round(hours * 3600 * S), name))
        out.sort()
        # a shift ends at the latest when the next one starts
        return [(s, min(e, out[i + 1][0]) if i + 1 < len(out) else e, n) for i, (s, e, n) in enumerate(out)
                if (min(e, out[i + 1][0]) if i + 1 < len(out) else e) > s]

    def period_of(self, t_ns: int) -> tuple[int, int, str] | None:
        lo, hi, hit = self._hit
        if lo <= t_ns < hi:  # nearly every call asks about the same shift (or gap) as the one before
            return hit
        inst = self._instances(t_ns)
        prev_end = None
        for s, e, n in inst:
            if s <= t_ns < e:
                self._hit = (s, e, (s, e, n))
                return s, e, n
            if e <= t_ns:
                prev_end = e
            elif prev_end is not None:  # t falls between two shifts: remember the gap
                self._hit = (prev_end, s, None)
                return None
        return None

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        t = a_ns
        while t < b_ns:
            pr = self.period_of(t)
            if pr is None:  # in a gap between shifts: period_of remembered where it ends
                lo, hi, _ = self._hit
                if not lo <= t < hi:
                    return
                t = hi
                continue
            s, e, n = pr
            yield s, e, t, min(e, b_ns), n
            t = e


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
        for p in self._at(t_ns if exact_time else self.when(t_ns)):
            tot = p.totals
            for k, v in sums.items():
                tot[k] += v
            for k, v in maxima.items():
                tot[k] = max(tot[k], v)

    def maximum(self, name: str, value: float, t_ns: int, *, exact_time: bool = False) -> None:
        for p in self._at(t_ns if exact_time else self.when(t_ns)):
            p.totals[name] = max(p.totals[name], value)

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
        cuts = sorted({x for w in maintenance.windows.values() for x in w if a < x < t_ns})
        for lo, hi in zip([a] + cuts, cuts + [t_ns]):
            self._account(lo, hi, maintenance.active(lo))
        self.accounted_ns = t_ns

    def _account(self, a: int, b: int, maint: bool) -> None:
        state, failed = self.state, self.in_failure()
        keys = ["observed_s"]
        if maint:
            keys.append("maintenance_s")
        if state in ("running", "idle", "down"):
            keys.append("planned_s")
            keys.append({"running": "run_s", "idle": "idle_s", "down": "down_s"}[state])
        if failed:
            keys.append("failure_s")
        elif not maint and state in (None, "running"):
            keys.append("operating_s")
        for i, scheme in enumerate(self.schemes):
            for s, e, lo, hi, label in scheme.segments(a, b):
                tot = self._period(i, s, e, label).totals
                for k in keys:
                    tot[k] += hi - lo

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
        done = [p for p in self.periods.values()
                if p.end <= acc and p.end + self.emit_delay_ns <= clock_ns
                and not self._energy_pending(p.end, clock_ns)]
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


def make_schemes(periods_s: list[float], shifts: list[tuple[str, int, float]],
                 timezone: str) -> list[PeriodScheme]:
    """The period schemes of a KPI config: one tumbling scheme per period length, plus shifts if any."""
    schemes: list[PeriodScheme] = [Tumbling(round(p * S)) for p in periods_s]
    if shifts:
        schemes.append(Shifts(shifts, timezone))
    return schemes


# ---- records ---------------------------------------------------------------------------------------
def merge_spans(spans: Iterable[tuple[str, int, int, int]]) -> tuple[tuple[str, int, int, int], ...]:
    """Union of input spans per (topic, partition).

    >>> merge_spans([("t", 0, 5, 9), ("t", 0, 2, 6), ("u", 1, 0, 0)])
    (('t', 0, 2, 9), ('u', 1, 0, 0))
    """
    acc: dict[tuple[str, int], list[int]] = {}
    for t, p, a, b in spans:
        s = acc.setdefault((t, p), [a, b])
        s[0], s[1] = min(s[0], a), max(s[1], b)
    return tuple(sorted((t, p, a, b) for (t, p), (a, b) in acc.items()))


def kpi_record(ctx: FlowContext, r: PeriodResult | RollupResult, *, scope: str, model_sha: str,
               features: dict | None, model: dict | None) -> dict[str, Any]:
    """An ``aiotstream.kpi/2`` record for an asset's period or a roll-up."""
    asset = r.asset if scope == "asset" else None
    line = r.line if scope in ("asset", "line") else None
    scope_id = {"asset": r.asset, "line": r.line, "site": ctx.site}[scope]
    rollup = r if isinstance(r, RollupResult) else None
    revision = rollup.revision if rollup else 0
    return {
        "schema": "aiotstream.kpi/2",
        "id": make_id("kpi", ctx.site, ctx.config_hash, model_sha, scope, scope_id, r.scheme, r.start_ns,
                      revision),
        "scope": scope, "asset": asset, "line": line,
        "period": {"scheme": r.scheme, "label": r.label or None,
                   "length_s": None if r.length_ns is None else r.length_ns / S,
                   "start_ns": r.start_ns, "end_ns": r.end_ns},
        "assets_expected": rollup.expected if rollup else 1,
        "assets_reported": len(rollup.assets) if rollup else 1,
        "complete": rollup.complete if rollup else True,
        "revision": revision,
        "totals": public_totals(r.totals),
        "kpis": derive(r.totals),
        **({"variants": v} if (v := variant_kpis(r.totals)) is not None else {}),
        **ctx.block(inputs=inputs_block(r.spans), window=window_block(r.start_ns, r.end_ns),
                    features=features,
                    model=model),
    }


# ---- roll-ups ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RollupResult:
    scheme: str
    length_ns: int | None
    start_ns: int
    end_ns: int
    label: str
    asset: str | None
    line: str | None
    totals: dict[str, int | float]
    spans: tuple[tuple[str, int, int, int], ...]
    assets: tuple[str, ...]
    expected: int
    complete: bool
    revision: int


@dataclass(slots=True)
class _Pending:
    first: PeriodResult
    parts: dict[str, PeriodResult]
    first_seen_s: float
    revision: int = -1  # last emitted revision (-1: not emitted)
    missing: set[str] | None = None  # expected assets that have neither reported it nor passed its end


class RollupBook:
    """Adds the asset periods of one scope (a line or the site) into scope periods, exactly.

    An asset emits its periods in time order, so once an asset has reported a
    period that ends at or after a scope period's end, it will not report that
    scope period any more. A scope period is therefore final, and emitted, once
    every expected asset has reported it or moved past it; ``complete`` says
    whether every expected asset contributed. An asset that never reports
    (no data at all) would hold a period forever, so when tailing, a period
    is also emitted (incomplete) after ``wait_s`` of wall-clock time, and at
    the end of input everything left is emitted. An asset that reports after
    such an early emission triggers a new ``revision`` carrying everything so
    far: consumers keep the highest revision of a period. A repeated report of
    the same asset and period (a replay) replaces the earlier one, so replays
    do not double count.
    """

    def __init__(self, scope: str, scope_id: str, expected: set[str], keep_periods: int = 256):
        self.scope = scope
        self.scope_id = scope_id
        self.expected = frozenset(expected)
        self.keep_periods = keep_periods
        self.pending: dict[tuple[str, int], _Pending] = {}
        self.progress: dict[tuple[str, str], int] = {}  # (scheme, asset) -> end of its newest reported period
        self.done: OrderedDict[tuple[str, int], None] = OrderedDict()  # final periods (replays are ignored)
        self.newest: dict[str, int] = {}  # scheme -> end of the newest period any asset reported

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "newest" not in state:  # a snapshot from before ``newest`` was kept
            self.newest = {}
            for (scheme, _), end in self.progress.items():
                self.newest[scheme] = max(self.newest.get(scheme, end), end)

    def add(self, r: PeriodResult, now_s: float = 0.0) -> list[RollupResult]:
        """Take one asset's period. Cost: the scope's pending periods, not its assets (a period's
        ``missing`` set is made once, then shrinks as assets report or pass its end)."""
        key = (r.scheme, r.start_ns)
        prog = (r.scheme, r.asset)
        end = max(self.progress.get(prog, r.end_ns), r.end_ns)
        self.progress[prog] = end
        self.newest[r.scheme] = max(self.newest.get(r.scheme, end), end)
        for k, q in self.pending.items():  # this asset has now passed these periods' ends
            if k[0] == r.scheme and q.first.end_ns <= end:
                self._missing(k).discard(r.asset)
        if key in self.done:
            return []  # a replayed report of a period that is final already
        p = self.pending.get(key)
        if p is None:
            p = self.pending[key] = _Pending(r, {}, now_s)
        p.parts[r.asset] = r
        self._missing(key).discard(r.asset)
        out = []
        if p.revision >= 0:  # a late asset after an early (wall-clock) emission: a new revision
            out.append(self._emit(key, final=self._final(key)))
        for k in sorted((k for k in self.pending if k[0] == r.scheme), key=lambda k: k[1]):
            if self.pending[k].revision < 0 and self._final(k):
                out.append(self._emit(k, final=True))
        self._forget()
        return out

    def _missing(self, key: tuple[str, int]) -> set[str]:
        p = self.pending[key]
        if p.missing is None:  # once per period (or after a resume from a snapshot that did not keep it)
            p.missing = {a for a in self.expected
                         if a not in p.parts and self.progress.get((key[0], a), -1) < p.first.end_ns}
        return p.missing

    def _final(self, key: tuple[str, int]) -> bool:
        return not self._missing(key)

    def expire(self, now_s: float, wait_s: float) -> list[RollupResult]:
        """Emit (maybe incomplete) the periods first seen more than ``wait_s`` ago (wall clock), not emitted
        yet."""
        due = [k for k, p in self.pending.items() if p.revision < 0 and now_s - p.first_seen_s >= wait_s]
        return [self._emit(k, final=False) for k in sorted(due, key=lambda k: k[1])]

    def next_expiry_s(self, wait_s: float) -> float | None:
        times = [p.first_seen_s + wait_s for p in self.pending.values() if p.revision < 0]
        return min(times) if times else None

    def flush(self) -> list[RollupResult]:
        """End of input: emit every period not emitted yet."""
        keys = sorted((k for k, p in self.pending.items() if p.revision < 0), key=lambda k: k[1])
        return [self._emit(k, final=True) for k in keys]

    def _emit(self, key: tuple[str, int], final: bool) -> RollupResult:
        p = self.pending[key]
        p.revision += 1
        totals = new_totals()
        for part in p.parts.values():
            totals = merge(totals, part.totals)
        f = p.first
        res = RollupResult(f.scheme, f.length_ns, f.start_ns, f.end_ns, f.label, None,
                           self.scope_id if self.scope == "line" else None, totals,
                           merge_spans(s for part in p.parts.values() for s in part.spans),
                           tuple(sorted(p.parts)), len(self.expected), set(p.parts) >= self.expected,
                           p.revision)
        if final:
            del self.pending[key]
            self.done[key] = None
            while len(self.done) > self.keep_periods * 8:
                self.done.popitem(last=False)
        return res

    def _forget(self) -> None:
        """Drop early-emitted periods far behind the newest (a very late asset then gets no revision)."""
        newest = self.newest
        for key in [k for k, p in self.pending.items() if p.revision >= 0]:
            p = self.pending[key]
            length = p.first.end_ns - p.first.start_ns
            if newest.get(key[0], 0) - p.first.end_ns > self.keep_periods * length:
                del self.pending[key]
                self.done[key] = None


class RollupSite(Protocol):
    """What a line/site roll-up reads of its flow's runtime (the plant's SiteRuntime, the building's
    BuildingRuntime): the entities (assets or zones) per line (or floor) and the lineage blocks."""

    @property
    def ctx(self) -> FlowContext: ...
    @property
    def assets(self) -> Mapping[str, Any]: ...
    @property
    def lines(self) -> Mapping[str, set[str]]: ...
    @property
    def config(self) -> Any: ...
    @property
    def model_block(self) -> dict[str, Any]: ...
    @property
    def features_block(self) -> dict[str, Any] | None: ...


def rollup_inputs(o: Output) -> list[tuple[str, tuple[str, PeriodResult]]]:
    """The ``(scope key, (scope key, period))`` items an output feeds to the roll-ups (none but for an
    entity's KPI period)."""
    r = o.partial
    return [] if r is None else [(k, (k, r)) for k in rollup_keys(r)]


def rollup_keys(r: PeriodResult, enabled: bool = True) -> list[str]:
    """The roll-up scopes an asset period feeds: its line and the site.

    >>> rollup_keys(PeriodResult("10s", 10, 0, 10, "", "a", "line-1", {}, ()))
    ['line:line-1', 'site']
    """
    return [f"line:{r.line}", "site"] if enabled else []


def math_is_close(a: float | None, b: float | None, rel: float = 1e-12) -> bool:
    """Equality for derived KPIs in tests and checks (None only equals None).

    >>> math_is_close(0.1 + 0.2, 0.3), math_is_close(None, None), math_is_close(None, 0.0)
    (True, True, False)
    """
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
