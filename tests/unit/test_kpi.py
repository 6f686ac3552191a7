"""KPI maths against hand-computed cases: OEE, MTTR/MTBF, time accounting, counters, energy, shifts, roll-ups."""
from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import KPI_NAMES
from aiotstream.decisions.maintenance import MaintenanceSchedule
from aiotstream.kpi import (
    NS_PER_HOUR,
    KpiTracker,
    PeriodResult,
    RollupBook,
    Shifts,
    Tumbling,
    derive,
    merge,
    new_totals,
    oee,
    public_totals,
    savings,
    split_trapezoid,
    trapezoid_kwh,
)
from aiotstream.units import S

MIN = 60 * S


def ns(dt: str) -> int:
    return int(datetime.fromisoformat(dt).astimezone(UTC).timestamp()) * S


# ---- formulas ---------------------------------------------------------------------------------------
def test_oee_by_hand() -> None:
    # an 8 h shift with a 60 min planned break: planned 420 min; run 400 min; 360 parts at an ideal
    # 1 min each -> performance 360/400 = 0.9; 342 good -> quality 0.95; availability 400/420
    a, p, q, o = oee(400 * MIN, 420 * MIN, 360 * MIN, 360, 342)
    assert a == pytest.approx(400 / 420) and p == pytest.approx(0.9) and q == pytest.approx(0.95)
    assert o == pytest.approx(360 / 420 * 0.95)  # = A x P x Q = ideal time / planned x quality = 0.8142857
    assert o == pytest.approx(0.8142857, abs=1e-7)


def test_undefined_kpis_are_none_not_zero() -> None:
    k = derive(new_totals())
    assert set(k) == set(KPI_NAMES)
    assert all(v is None for v in k.values())
    t = new_totals()
    t.update(run_s=10 * S, planned_s=10 * S, parts_total=5, parts_good=5, parts_without_ideal=5)
    k = derive(t)
    assert k["availability"] == 1.0 and k["quality"] == 1.0
    assert k["performance"] is None and k["oee"] is None  # no ideal cycle time for some parts


def test_rollup_adds_sums_it_does_not_average_ratios() -> None:
    a, b = new_totals(), new_totals()
    a.update(repair_s=60 * S, repairs=1, labels_false_alarm=1, labels_true_fault=0, operating_s=100 * S, failures=1)
    b.update(repair_s=300 * S, repairs=3, labels_false_alarm=1, labels_true_fault=3, operating_s=900 * S, failures=3)
    k = derive(merge(a, b))
    assert k["mttr_s"] == pytest.approx(360 / 4)  # not (60 + 100) / 2 = 80
    assert k["mtbf_s"] == pytest.approx(1000 / 4)
    assert k["false_alarm_rate"] == pytest.approx(2 / 5)  # not (1.0 + 0.25) / 2


def test_energy_maths() -> None:
    assert trapezoid_kwh([0, NS_PER_HOUR], [4.0, 6.0]) == pytest.approx(5.0)
    assert savings(80.0, 100.0) == (20.0, 20.0)
    assert savings(10.0, 0.0) == (-10.0, None)
    pieces = split_trapezoid(0, 0.0, 4 * NS_PER_HOUR, 8.0, [NS_PER_HOUR, 3 * NS_PER_HOUR, 99 * NS_PER_HOUR])
    # power 0 -> 8 kW linearly over 4 h: 0-1 h: 1 kWh, 1-3 h: 8 kWh, 3-4 h: 7 kWh; total 16 kWh
    assert [round(e, 9) for _, _, e in pieces] == [1.0, 8.0, 7.0]
    assert sum(e for _, _, e in pieces) == pytest.approx(trapezoid_kwh([0, 4 * NS_PER_HOUR], [0.0, 8.0]))
    with pytest.raises(ValueError):
        trapezoid_kwh([2, 1], [0.0, 0.0])


def test_public_totals_are_seconds() -> None:
    t = new_totals()
    t.update(run_s=1_500_000_001, frames=3)
    p = public_totals(t)
    assert p["run_s"] == 1.500000001 and p["frames"] == 3


# ---- time accounting ------------------------------------------------------------------------------------
def tracker(**kw: object) -> KpiTracker:
    return KpiTracker("a", "l", [Tumbling(10 * S)], **kw)  # type: ignore[arg-type]


def periods(tr: KpiTracker, clock: int) -> dict[int, dict]:
    return {r.start_ns // S: r.totals for r in tr.close(clock)}


def test_time_by_state_failure_and_maintenance_across_period_edges() -> None:
    m = MaintenanceSchedule()
    m.set("m", 22 * S, 25 * S)
    tr = tracker(failures="state")
    tr.begin(0)
    assert tr.set_state(1, 0, m) is None  # running
    tr.set_state(2, 12 * S, m)  # idle
    tr.set_state(3, 15 * S, m)  # down: a failure
    tr.set_state(1, 18 * S, m)  # running: repaired after 3 s
    tr.advance(30 * S, m)
    p = periods(tr, 30 * S)
    assert sorted(p) == [0, 10, 20]
    sec = {k: {n: v / S for n, v in t.items() if n.endswith("_s") and v} for k, t in p.items()}
    assert sec[0] == {"observed_s": 10, "planned_s": 10, "run_s": 10, "operating_s": 10}
    # 10-12 running, 12-15 idle, 15-18 down, 18-20 running
    assert sec[10] == {"observed_s": 10, "planned_s": 10, "run_s": 4, "idle_s": 3, "down_s": 3, "failure_s": 3,
                       "operating_s": 4, "repair_s": 3}
    assert (p[10]["failures"], p[10]["repairs"]) == (1, 1)
    # maintenance 22-25 is not operating time; the state (running) still says planned and run
    assert sec[20] == {"observed_s": 10, "planned_s": 10, "run_s": 10, "maintenance_s": 3, "operating_s": 7}
    k = derive(p[10])
    assert (k["mttr_s"], k["mtbf_s"], k["availability"]) == (3.0, 4.0, 0.4)


@pytest.mark.parametrize(("mode", "failures", "repair_s"), [("alerts", 1, 7), ("state", 1, 5), ("both", 1, 10)])
def test_failure_sources(mode: str, failures: int, repair_s: int) -> None:
    # an alert open 5..12 and the state down 10..15: alerts only 7 s, state only 5 s, either: one failure 5..15
    m = MaintenanceSchedule()
    tr = KpiTracker("a", "l", [Tumbling(100 * S)], failures=mode)
    tr.begin(0)
    tr.set_state(1, 0, m)
    tr.alert_failure("anomaly", True, 5 * S, m)
    tr.set_state(3, 10 * S, m)
    tr.alert_failure("anomaly", False, 12 * S, m)
    tr.set_state(1, 15 * S, m)
    tr.advance(100 * S, m)
    (t,) = periods(tr, 100 * S).values()
    assert (t["failures"], t["repairs"], t["repair_s"] // S, t["failure_s"] // S) == (failures, 1, repair_s, repair_s)


def test_unknown_state_code_is_a_problem_and_changes_nothing() -> None:
    tr = tracker()
    assert "unknown" in (tr.set_state(7, 0, MaintenanceSchedule()) or "")
    assert tr.state is None


def test_part_counters_deltas_resets_and_ideal_time() -> None:
    tr = tracker(ideal_cycle_ns=2 * S)
    tr.begin(0)
    for t, v in [(0, 0), (3, 5), (12, 9), (14, 2), (16, 4)]:  # 14: the counter reset (9 -> 2 counts 2)
        assert tr.counter("parts_total", v, t * S) is None
    assert tr.counter("parts_good", 1.5, 0) is not None and tr.counter("parts_good", -1, 0) is not None
    tr.advance(20 * S, MaintenanceSchedule())
    p = periods(tr, 20 * S)
    assert (p[0]["parts_total"], p[10]["parts_total"]) == (5, 8)
    assert (p[0]["ideal_run_s"], p[10]["ideal_run_s"]) == (10 * S, 16 * S)
    tr2 = tracker()
    tr2.counter("parts_total", 0, 0)
    tr2.counter("parts_total", 3, S)
    tr2.advance(10 * S, MaintenanceSchedule())
    assert periods(tr2, 10 * S)[0]["parts_without_ideal"] == 3


def test_power_is_integrated_by_trapezoid_split_at_period_edges_and_gaps_are_skipped() -> None:
    h = NS_PER_HOUR
    tr = KpiTracker("a", "l", [Tumbling(h)], energy_max_gap_ns=h)
    tr.begin(0)
    m = MaintenanceSchedule()
    for t, kw in [(0, 10.0), (h // 2, 20.0), (3 * h // 2, 20.0)]:
        tr.power("energy", kw, t)
    tr.advance(2 * h, m)
    # the last sample (1.5 h) may still integrate into [1 h, 2 h): that period waits
    assert [r.start_ns for r in tr.close(2 * h)] == [0]
    tr.power("energy", 0.0, 4 * h)  # 2.5 h after the last one: a gap, not integrated
    tr.advance(5 * h, m)
    p = {r.start_ns // h: r.totals for r in tr.close(5 * h)}
    assert p[1]["energy_kwh"] == pytest.approx(10.0)  # 0.5 h x 20 kW
    assert p[4]["energy_gap_s"] == 5 * h // 2  # counted when the sample that ends the gap arrives
    # [0, 1 h): 0.5 h x (10 + 20) / 2 + 0.5 h x 20 = 7.5 + 10
    tr2 = KpiTracker("a", "l", [Tumbling(h)], energy_max_gap_ns=h)
    tr2.begin(0)
    for t, kw in [(0, 10.0), (h // 2, 20.0), (3 * h // 2, 20.0)]:
        tr2.power("energy", kw, t)
        tr2.power("baseline", 25.0, t)
    tr2.advance(2 * h, m)
    (first,) = tr2.close(2 * h)
    assert first.totals["energy_kwh"] == pytest.approx(17.5) and first.totals["baseline_kwh"] == pytest.approx(25.0)
    k = derive(first.totals)
    assert (k["savings_kwh"], k["savings_pct"]) == (pytest.approx(7.5), pytest.approx(30.0))


def test_events_in_the_past_count_in_the_open_period() -> None:
    tr = tracker()
    tr.begin(0)
    tr.advance(25 * S, MaintenanceSchedule())
    tr.count("alerts_acknowledged", 1, 3 * S)  # period [0, 10) is accounted already: counted at 25 s
    p = {r.start_ns // S: r.totals for r in tr.flush()}
    assert p[20]["alerts_acknowledged"] == 1 and p[0]["alerts_acknowledged"] == 0
    tr.count("windows", 1, 3 * S, exact_time=True)  # a window's counts go to the period of its start


def test_emit_delay_holds_a_period_until_sliding_windows_that_start_in_it_have_closed() -> None:
    tr = KpiTracker("a", "l", [Tumbling(10 * S)], emit_delay_ns=S // 2)
    tr.begin(0)
    tr.advance(10 * S, MaintenanceSchedule())
    assert tr.close(10 * S) == []
    assert [r.start_ns for r in tr.close(10 * S + S // 2)] == [0]


# ---- periods ------------------------------------------------------------------------------------------
def test_shifts_in_a_time_zone() -> None:
    sh = Shifts([("A", 6 * 60, 8), ("B", 14 * 60, 8), ("C", 22 * 60, 8)], "Europe/Berlin")
    # winter (UTC+1): shift A starts 06:00 local = 05:00 UTC
    s, e, name = sh.period_of(ns("2026-01-15T05:30:00+00:00"))  # type: ignore[misc]
    assert (name, s, e) == ("A", ns("2026-01-15T05:00:00+00:00"), ns("2026-01-15T13:00:00+00:00"))
    segs = list(sh.segments(ns("2026-01-15T12:00:00+00:00"), ns("2026-01-15T14:00:00+00:00")))
    assert [(n, (b - a) // (60 * S)) for _, _, a, b, n in segs] == [("A", 60), ("B", 60)]
    # the night of the spring-forward change: C starts 22:00 CET (21:00 UTC) and lasts 8 h, but A starts at
    # 06:00 CEST = 04:00 UTC, so C ends then: 7 h
    s, e, name = sh.period_of(ns("2026-03-29T01:00:00+00:00"))  # type: ignore[misc]
    assert (name, s, (e - s) // NS_PER_HOUR) == ("C", ns("2026-03-28T21:00:00+00:00"), 7)


def test_shifts_with_gaps_leave_time_out() -> None:
    sh = Shifts([("day", 8 * 60, 8)], "UTC")
    assert sh.period_of(ns("2026-01-15T07:00:00+00:00")) is None
    segs = list(sh.segments(ns("2026-01-15T07:00:00+00:00"), ns("2026-01-15T09:00:00+00:00")))
    assert [(a, b) for _, _, a, b, _ in segs] == [(ns("2026-01-15T08:00:00+00:00"), ns("2026-01-15T09:00:00+00:00"))]


def test_tracker_with_shift_scheme_accounts_only_shift_time() -> None:
    tr = KpiTracker("a", "l", [Shifts([("day", 8 * 60, 8)], "UTC")])
    m = MaintenanceSchedule()
    t0 = ns("2026-01-15T06:00:00+00:00")
    tr.begin(t0)
    tr.advance(t0 + 4 * NS_PER_HOUR, m)
    (r,) = tr.flush()
    assert (r.scheme, r.label, r.totals["observed_s"]) == ("shift", "day", 2 * NS_PER_HOUR)


# ---- roll-ups -----------------------------------------------------------------------------------------
def part(asset: str, start_s: int, **totals: int) -> PeriodResult:
    t = new_totals()
    t.update(totals)
    return PeriodResult("10s", 10 * S, start_s * S, (start_s + 10) * S, "", asset, "l1", t,
                        (("x", 0, start_s, start_s + 1),))


def test_rollup_emits_when_every_asset_reported() -> None:
    b = RollupBook("line", "l1", {"a", "b"})
    assert b.add(part("a", 0, frames=3, repairs=1, repair_s=4 * S)) == []
    (r,) = b.add(part("b", 0, frames=5, repairs=1, repair_s=8 * S))
    assert (r.complete, r.assets, r.revision, r.totals["frames"]) == (True, ("a", "b"), 0, 8)
    assert derive(r.totals)["mttr_s"] == 6.0
    assert r.spans == (("x", 0, 0, 1),)
    assert b.add(part("a", 0, frames=3)) == []  # a replay of a final period is ignored


def test_rollup_period_is_final_once_every_asset_moved_past_it() -> None:
    b = RollupBook("site", "s", {"a", "b"})
    assert b.add(part("a", 0, frames=1)) == []
    assert b.add(part("a", 10, frames=1)) == []
    out = b.add(part("b", 10, frames=2))  # b had no data in [0, 10): it will never report it
    assert [(r.start_ns // S, r.complete, r.assets) for r in out] == [(0, False, ("a",)), (10, True, ("a", "b"))]


def test_rollup_wall_clock_expiry_then_a_revision_for_the_late_asset() -> None:
    b = RollupBook("line", "l1", {"a", "b"})
    b.add(part("a", 0, frames=1), now_s=100.0)
    assert b.expire(159.0, 60.0) == [] and b.next_expiry_s(60.0) == 160.0
    (r0,) = b.expire(160.0, 60.0)
    assert (r0.complete, r0.revision, r0.totals["frames"]) == (False, 0, 1)
    (r1,) = b.add(part("b", 0, frames=2))
    assert (r1.complete, r1.revision, r1.totals["frames"]) == (True, 1, 3)
    assert b.flush() == []


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_rollup_property_every_period_once_with_exact_sums(data: st.DataObject) -> None:
    assets = [f"a{i}" for i in range(data.draw(st.integers(1, 4)))]
    reports = {a: [(p, data.draw(st.integers(0, 50))) for p in range(6) if data.draw(st.booleans())] for a in assets}
    # interleave the assets' streams (each stays in order, as an asset emits its periods in order)
    queues = {a: list(r) for a, r in reports.items()}
    book = RollupBook("site", "s", set(assets))
    emitted = []
    while any(queues.values()):
        a = data.draw(st.sampled_from([a for a, q in queues.items() if q]))
        p, frames = queues[a].pop(0)
        emitted += book.add(part(a, p * 10, frames=frames))
        if data.draw(st.booleans()):  # replays of the same report do not count twice
            emitted += book.add(part(a, p * 10, frames=frames))
    emitted += book.flush()
    expect: dict[int, int] = {}
    for rs in reports.values():
        for p, frames in rs:
            expect[p * 10] = expect.get(p * 10, 0) + frames
    assert sorted(r.start_ns // S for r in emitted) == sorted(expect)
    assert {r.start_ns // S: r.totals["frames"] for r in emitted} == expect
    for r in emitted:
        contributors = {a for a, rs in reports.items() if any(p * 10 == r.start_ns // S for p, _ in rs)}
        assert set(r.assets) == contributors and r.complete == (contributors == set(assets))


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.integers(0, 6 * 24 * 3600), min_size=1, max_size=40))
def test_shift_lookup_cache_never_changes_an_answer(times: list[int]) -> None:
    spec = [("early", 5 * 60, 7.5), ("late", 13 * 60, 8), ("night", 23 * 60, 4)]  # gaps 12:30-13:00, 21:00-23:00
    shared = Shifts(spec, "Europe/Berlin")
    base = ns("2026-03-27T00:00:00+00:00")  # spans the spring-forward night
    for t in times:
        assert shared.period_of(base + t * S) == Shifts(spec, "Europe/Berlin").period_of(base + t * S)


@settings(max_examples=60, deadline=None)
@given(a=st.integers(0, 5 * 24 * 3600), length=st.integers(1, 40 * 3600))
def test_shift_segments_cover_exactly_the_shift_time_of_an_interval(a: int, length: int) -> None:
    spec = [("early", 5 * 60, 7.5), ("late", 13 * 60, 8), ("night", 23 * 60, 4)]
    sh = Shifts(spec, "Europe/Berlin")
    base = ns("2026-03-27T00:00:00+00:00")
    lo, hi = base + a * S, base + (a + length) * S
    segs = list(sh.segments(lo, hi))
    for s, e, x, y, name in segs:
        assert lo <= x < y <= hi and s <= x and y <= e
        assert Shifts(spec, "Europe/Berlin").period_of(x) == (s, e, name)
    assert all(p[3] <= q[2] for p, q in pairwise(segs))
    # between two segments (and at the ends) there is no shift: probe the gaps' edges
    edges = [lo] + [y for *_, y, _ in segs[:-1]] if segs else [lo]
    for t in edges:
        if t < hi and not any(x <= t < y for _, _, x, y, _ in segs):
            assert Shifts(spec, "Europe/Berlin").period_of(t) is None


def test_derived_kpis_are_never_infinite_even_with_a_subnormal_denominator():
    """Found by `python -m benchmarks.fuzz` (readings): a baseline of a few 1e-320 kWh made savings_pct -inf,
    which the sink could only replace by a dead letter (the KPI record lost)."""
    from aiotstream.kpi import derive, new_totals

    t = new_totals()
    t.update(power_samples=3, energy_kwh=2.0, baseline_samples=3, baseline_kwh=5e-324, repairs=1, repair_s=1e308,
             operating_s=1e308, failures=1)
    d = derive(t)
    assert d["savings_pct"] is None and d["savings_kwh"] == -2.0
    assert all(v is None or math.isfinite(v) for v in d.values())
