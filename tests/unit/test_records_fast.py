"""The record builders' inlined paths against the code they replaced (kept here as the reference):
derive() with oee()/ratio() inline and its one finiteness check of the sum."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import KPI_NAMES
from aiotstream.kpi.totals import TOTALS, derive, new_totals, oee, ratio, savings
from aiotstream.units import S


def derive_reference(t: dict) -> dict:
    """derive() as it was before the ratios were inlined."""
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
    out = {
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
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in out.items()}


def exact(d: dict) -> list:
    """A dict's items with each value's type and repr (0.0 vs -0.0 vs 0, NaN, order of keys)."""
    return [(k, type(v).__name__, repr(v)) for k, v in d.items()]


def outcome(f, t):
    try:
        return exact(f(t))
    except Exception as e:  # noqa: BLE001 (the same exception type is the expected behaviour)
        return type(e).__name__


# small and boundary numbers, ints and floats, zeros of both signs, NaN, inf, subnormals, huge values
_floats = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e308, -1e308, math.inf, -math.inf,
                                     math.nan, 0.5, 1e-300]),
                    st.floats(allow_nan=True, allow_infinity=True))
_ints = st.one_of(st.sampled_from([0, 1, -1, 2, S, 10 * S, 3]), st.integers(-10**20, 10**20),
                  st.sampled_from([10**400, -10**400]))
_value = st.one_of(_floats, _ints)
_NAMES = sorted(TOTALS)


@st.composite
def totals(draw) -> dict:
    t = new_totals()
    for k in draw(st.lists(st.sampled_from(_NAMES), max_size=30)):
        t[k] = draw(_value)
    return t


@settings(max_examples=3000, deadline=None)
@given(totals())
def test_derive_matches_reference(t):
    assert outcome(derive, t) == outcome(derive_reference, t)


@given(totals(), st.sampled_from(_NAMES))
def test_derive_missing_key_raises_as_before(t, missing):
    del t[missing]
    assert outcome(derive, t) == outcome(derive_reference, t)


def test_derive_cases():
    t = new_totals()
    t.update(run_s=8 * S, planned_s=10 * S, ideal_run_s=4 * S, parts_total=10, parts_good=9)
    assert exact(derive(t)) == exact(derive_reference(t))
    t.update(planned_s=5e-324)  # finite totals, an infinite ratio: None
    assert derive(t)["availability"] is None and exact(derive(t)) == exact(derive_reference(t))
    t.update(power_samples=1, energy_kwh=math.nan, baseline_samples=1, baseline_kwh=2.0)
    assert exact(derive(t)) == exact(derive_reference(t))
