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
from collections.abc import Iterable
from functools import reduce
from itertools import chain, pairwise
from operator import add, itemgetter

from aiotstream.config import KPI_NAMES
from aiotstream.units import S

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
    # the streaming detector on scalar readings (rows scored, rows with its alert open, re-baselines)
    "scalar_rows": "sum", "scalar_alert_rows": "sum", "scalar_max_score": "max", "baseline_changes": "sum",
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
FLOAT_TOTALS = frozenset({"max_score", "scalar_max_score",
                          "energy_kwh", "baseline_kwh", "score_sum", "score_sq_sum",
                          "canary_score_sum",
                          "canary_score_sq_sum", "canary_max_score", "shadow_score_sum",
                          "shadow_score_sq_sum",
                          "shadow_max_score"})


_ZERO_TOTALS: dict[str, int | float] = {k: (0.0 if k in FLOAT_TOTALS else 0) for k in TOTALS}
_TIME_TOTALS_ORDER = tuple(k for k in TOTALS if k in TIME_TOTALS)
_MAX_TOTALS = tuple(k for k, how in TOTALS.items() if how == "max")


def new_totals() -> dict[str, int | float]:
    """Zeroed totals (time in int ns, counts int, energy and scores float)."""
    return _ZERO_TOTALS.copy()


def merge(a: dict[str, int | float], b: dict[str, int | float]) -> dict[str, int | float]:
    """Combine two partials exactly: sums add, maxima take the max.

    >>> merge({"frames": 2, "max_score": 0.5}, {"frames": 3, "max_score": 0.9})
    {'frames': 5, 'max_score': 0.9}
    """
    out = {k: a[k] + b[k] for k in a}  # (the maxima then replaced, in place: the keys keep a's order)
    for k in _MAX_TOTALS:
        if k in out:
            out[k] = max(a[k], b[k])
    return out


_MERGE_CHUNK = 1024  # parts read at a time by merge_all (their values copied: ~0.5 MB, cache-sized)
_TOTALS_GETTER = itemgetter(*TOTALS)
_TOTALS_HOW = tuple(TOTALS.values())


def merge_all(parts: Iterable[dict[str, int | float]], chunk: int = _MERGE_CHUNK) -> dict[str, int | float]:
    """``merge(...merge(merge(new_totals(), p1), p2)..., pn)``, the same values (each key folded left to
    right in the same order), key by key in C rather than a dict per part (a roll-up of many assets).

    Each part is read once (all its values by one ``itemgetter``), ``chunk`` parts at a time, and each key
    folded over the chunk's column: a roll-up of 20,000 assets' dicts, scattered over a flow's heap, took
    one cache miss per key and part when each key was a pass over all the parts. Folding chunk after chunk
    is the same left fold (an int sum is exact in any grouping; a float, once there, continues the fold).

    >>> merge_all([{**new_totals(), "frames": 2, "max_score": 0.5}, {**new_totals(), "frames": 3}])["frames"]
    5
    """
    parts = parts if isinstance(parts, list) else list(parts)
    acc = list(_ZERO_TOTALS.values())
    for lo in range(0, len(parts), chunk):
        cols = zip(*map(_TOTALS_GETTER, parts[lo:lo + chunk]))  # (the chunk's columns, one per key)
        for i, (how, col) in enumerate(zip(_TOTALS_HOW, cols)):
            start = acc[i]
            if how == "max":  # (max of the start and the parts in order: the fold's comparisons, in one call)
                acc[i] = max(chain((start,), col))
            elif type(start) is int and type(total := sum(col, start)) is int:
                # an int sum: every part's value was an int, whose sum is exact in any order (sum adds them in
                # C, without a call per part); any float among them (sum's float additions may differ from the
                # left fold's in later Pythons) and the left fold below decides
                acc[i] = total
            else:
                acc[i] = reduce(add, col, start)
    return dict(zip(TOTALS, acc))


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
    # (once per KPI record: oee() and the ratios inline, each as ratio() divides and reading the totals in
    # the same order, rather than a call per ratio)
    perf_defined = t["parts_without_ideal"] == 0
    run, planned = t["run_s"], t["planned_s"]
    ideal = t["ideal_run_s"] if perf_defined else 0
    total, good = t["parts_total"], t["parts_good"]
    a = run / planned if planned else None
    p = ideal / run if run else None
    q = good / total if total else None
    o = a * p * q if a is not None and p is not None and q is not None else None
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
    repair, repairs = t["repair_s"], t["repairs"]
    operating, failures = t["operating_s"], t["failures"]
    ack_delay, acked = t["ack_delay_s"], t["alerts_acknowledged"]
    latency, calls = t["model_latency_s"], t["model_calls"]
    false_alarms = t["labels_false_alarm"]
    anomalous, scored = t["anomalous_windows"], t["scored_windows"]
    out: dict[str, float | None] = {
        "availability": a, "performance": p, "quality": q, "oee": o,
        "mttr_s": repair / repairs / S if repairs else None,
        "mtbf_s": operating / failures / S if failures else None,
        "mtta_s": ack_delay / acked / S if acked else None,
        "false_alarm_rate": false_alarms / labels if labels else None,
        "anomaly_rate": anomalous / scored if scored else None,
        "model_latency_ms": latency / calls / 1e6 if calls else None,
        "energy_kwh": energy, "baseline_kwh": baseline, "savings_kwh": saved, "savings_pct": pct,
    }
    assert tuple(out) == KPI_NAMES
    # a ratio of finite totals can still overflow (a subnormal denominator): undefined, like a zero one.
    # The values' sum is finite only if every value is (an inf or NaN term keeps the sum inf or NaN): then
    # the dict is kept as it is; anything else (a non-finite value, a value the sum cannot add) is checked
    # value by value
    try:
        finite = math.isfinite(sum(filter(None, out.values()), 0.0))
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        finite = False
    if finite:
        return out
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
    out = t.copy()  # (the time totals, all named in TOTALS, then replaced in place: the keys keep t's order)
    for k in _TIME_TOTALS_ORDER:
        v = out.get(k)
        if v:
            # a whole number of seconds in int ns (an asset's observed time, usually): v / S is that integer
            # exactly, which round keeps; float() of it without the division and round's decimal conversion
            out[k] = float(v // S) if type(v) is int and not v % S else round(v / S, 9)
        elif v is not None:
            out[k] = v / S  # (0 -> 0.0, -0.0 -> -0.0: what round gives)
    return out


def from_public(t: dict[str, int | float]) -> dict[str, int | float]:
    """The inverse of :func:`public_totals`: totals read from records, ready to :func:`merge` and
    :func:`derive`.

    >>> from_public(public_totals({**new_totals(), "run_s": 1_500_000_001}))["run_s"]
    1500000001
    """
    return {k: (round(v * S) if k in TIME_TOTALS else v) for k, v in t.items()}
