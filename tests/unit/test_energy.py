"""The building flow's pure logic: waste rules, night baseload, baseline, batch ingest, zone intervals and
KPI arithmetic against hand-computed cases, and the [building] config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage

from aiotstream.config import SiteConfig
from aiotstream.energy.baseline import Baseline, features
from aiotstream.energy.ingest import BuildingIngest, ZoneBatch
from aiotstream.energy.runtime import HVAC, OCCUPANCY, POWER, BuildingRuntime
from aiotstream.energy.waste import (
    DayClock,
    IntervalSummary,
    NightBaseload,
    creep_value,
    empty_hvac_value,
    intervals_for,
    simultaneous_value,
)
from aiotstream.energy.zone import ZoneState
from aiotstream.errors import ConfigError
from aiotstream.kpi import RollupBook, derive, new_totals
from aiotstream.records import Output
from aiotstream.schemas import validator

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00Z, a midnight
ROOT = Path(__file__).resolve().parents[2]


def site(**building) -> SiteConfig:
    b = {"interval_s": 10, "day_s": 240, "zones": [{"id": "z1", "floor": "f1"}, {"id": "z2", "floor": "f1"}],
         "baseline": {"warmup_intervals": 2}, "waste": {"empty_hvac_after_s": 20, "simultaneous_after_s": 10,
                                                         "baseload_learn_nights": 1, "baseload_nights": 1}}
    b.update(building)
    return SiteConfig.from_dict({"site": {"id": "b1", "flow": "energy-optimization"}, "building": b,
                                 "window": {"allowed_lateness_s": 0}, "kpi": {"periods_s": [20]}})


# ---- waste rules -----------------------------------------------------------------------------------
def test_interval_energy_is_mean_power_times_length() -> None:
    s = IntervalSummary("z", 0, 60 * S, power_n=3, power_sum=3.0 + 6.0 + 9.0)  # mean 6 kW for a minute
    assert s.kwh() == pytest.approx(0.1)
    assert IntervalSummary("z", 0, 60 * S).kwh() is None  # no power sample: no energy, not 0


def test_hvac_in_an_empty_zone_counts_only_when_nobody_was_there() -> None:
    empty = IntervalSummary("z", 0, 1, occ_n=10, occupied_n=0, hvac_n=10, on_n=7)
    occupied = IntervalSummary("z", 0, 1, occ_n=10, occupied_n=1, hvac_n=10, on_n=10)
    unknown = IntervalSummary("z", 0, 1, occ_n=0, hvac_n=10, on_n=10)
    assert (empty_hvac_value(empty), empty_hvac_value(occupied), empty_hvac_value(unknown)) == (0.7, 0.0, 0.0)


def test_simultaneous_heating_and_cooling_is_the_fraction_in_state_3() -> None:
    assert simultaneous_value(IntervalSummary("z", 0, 1, hvac_n=8, on_n=8, heat_n=2, cool_n=2, both_n=4)) == 0.5
    assert simultaneous_value(IntervalSummary("z", 0, 1)) == 0.0


def test_durations_round_up_to_whole_intervals() -> None:
    assert [intervals_for(s, 60) for s in (60, 61, 900, 0.5)] == [1, 2, 15, 1]


def test_night_baseload_against_the_reference_nights() -> None:
    clock = DayClock(day_s=24)  # 1 s is an hour
    nb = NightBaseload(clock, start_h=0, end_h=4, learn_nights=2)
    out = []
    for day, kw in enumerate([1.0, 3.0, 2.4, 2.0]):
        for h in range(6):  # hours 0..3 are night; hour 4 finishes it
            kwh = (kw if h < 4 else 50.0) * 1 / 3600
            r = nb.add(day * 24 * S + h * S, day * 24 * S + (h + 1) * S, kwh)
            if r is not None:
                out.append(r)
    assert [(d, round(kw, 9), ref) for d, kw, ref in out] == [(0, 1.0, None), (1, 3.0, None), (2, 2.4, 2.0),
                                                              (3, 2.0, 2.0)]
    assert creep_value(2.4, 2.0) == pytest.approx(0.2) and creep_value(1.0, 0.0) == 0.0


def test_a_night_seen_for_less_than_half_its_length_is_skipped() -> None:
    nb = NightBaseload(DayClock(day_s=24), start_h=0, end_h=4, learn_nights=1)
    assert nb.add(3 * S, 4 * S, 1.0) is None and nb.add(4 * S, 5 * S, 1.0) is None  # 1 of 4 night hours
    assert nb.reference is None


def test_day_clock_with_an_offset() -> None:
    c = DayClock(day_s=86_400, utc_offset_h=2)
    assert c.hour(T0) == 2.0 and c.hour(T0 + 23 * 3600 * S) == 1.0


def test_day_clock_in_a_time_zone_follows_daylight_saving_time_across_both_changes() -> None:
    """Europe/Berlin: CEST (UTC+2) from 2026-03-29 01:00 UTC to 2026-10-25 01:00 UTC, CET (UTC+1) else."""
    c = DayClock(timezone="Europe/Berlin")
    spring, autumn = 1_774_746_000 * S, 1_792_890_000 * S  # the two changes, 01:00 UTC
    assert c.hour(spring - S) == pytest.approx(2.0 - 1 / 3600)  # 01:59:59 CET
    assert c.hour(spring) == 3.0  # 03:00 CEST: 02:00-03:00 local does not exist that night
    assert c.hour(autumn - S) == pytest.approx(3.0 - 1 / 3600)  # 02:59:59 CEST
    assert c.hour(autumn) == 2.0  # 02:00 CET again: that hour happens twice
    # the local day starts at local midnight: 22:00 UTC in summer, 23:00 UTC in winter
    summer_midnight, winter_midnight = 1_782_856_800 * S, 1_767_222_000 * S  # 2026-06-30 22:00, 2025-12-31 23:00
    assert c.day(summer_midnight) == c.day(summer_midnight - S) + 1
    assert c.day(winter_midnight) == c.day(winter_midnight - S) + 1
    assert c.day(winter_midnight) == 20_454  # 2026-01-01 is day 20,454 since 1970-01-01


def test_day_clock_refuses_a_time_zone_on_a_compressed_day() -> None:
    with pytest.raises(ValueError, match="24-hour days"):
        DayClock(day_s=600, timezone="Europe/Berlin")


def test_building_time_zone_is_checked_at_load_with_its_path() -> None:
    from aiotstream.config import default_site
    from aiotstream.errors import ConfigError
    zones = [{"id": "z1"}]
    for building, word in (({"timezone": "Mars/Olympus"}, "unknown time zone"),
                           ({"timezone": "Europe/Berlin", "day_s": 600, "interval_s": 60}, "24-hour days"),
                           ({"timezone": "Europe/Berlin", "utc_offset_h": 1.0}, "not both")):
        with pytest.raises(ConfigError) as e:
            default_site(1, building={**building, "zones": zones})
        assert e.value.problems[0][0] == "building.timezone" and word in e.value.problems[0][1]


# ---- baseline ----------------------------------------------------------------------------------------
def test_baseline_warms_up_then_learns_a_linear_relation() -> None:
    b = Baseline(warmup=50, learning_rate=0.05, drift="none")
    xs = []
    for i in range(3000):
        out = float(i % 30)
        s = IntervalSummary("z", 0, 1, temp_n=1, temp_sum=21.0, occ_n=1, occ_sum=float(i % 5), outdoor=out)
        x = features(s, hour=(i % 24))
        xs.append((x, 1.0 + 0.1 * out + 0.3 * (i % 5)))
        if i == 0:
            assert b.predict(x) is None
        b.learn(x, xs[-1][1])
    errs = [abs(b.predict(x) - y) for x, y in xs[-200:]]
    assert max(errs) < 0.15


def test_baseline_drift_on_a_residual_step() -> None:
    b = Baseline(warmup=1, drift="adwin", drift_delta=0.002)
    flags = [b.residual(1.0, 1.0) for _ in range(300)] + [b.residual(3.0, 1.0) for _ in range(300)]
    assert not any(flags[:300]) and any(flags[300:])


# ---- ingest and zone state ---------------------------------------------------------------------------
def msg(i: int, obj: dict | bytes) -> KafkaSourceMessage:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return KafkaSourceMessage(None, raw, topic="b1.readings", partition=0, offset=i)


def reading(zone: str, t: int, metric: str, value: float) -> dict:
    return {"asset": zone, "ts": t, "metric": metric, "value": value}


def test_a_poll_batch_becomes_per_zone_interval_partials_and_dead_letters() -> None:
    rt = BuildingRuntime(site())
    ing = BuildingIngest(rt, message_type=KafkaSourceMessage, now_ns=lambda: T0 + 3600 * S)
    batch = [msg(0, reading("z1", T0, "power_kw", 2.0)), msg(1, reading("z2", T0, "power_kw", 5.0)),
             msg(2, reading("z1", T0 + 1 * S, "power_kw", 4.0)), msg(3, reading("z1", T0 + 11 * S, "power_kw", 1.0)),
             msg(4, reading("z1", T0, "hvac_state", 3)), msg(5, reading("z1", T0 + S, "hvac_state", 1)),
             msg(6, reading("z1", T0, "hvac_state", 9)), msg(7, b"{nope"),
             msg(8, reading("weather", T0, "temperature", 7.5)), msg(9, reading("z1", T0, "occupancy", -1))]
    from aiotstream.runstats import STATS

    before = STATS.levels()["input_records"].get("reading", 0)
    out = ing.decode(batch)
    dead = sorted(o.record["reason"] for o in out if isinstance(o, Output))
    assert dead == ["bad_json", "bad_value", "bad_value"]
    assert STATS.levels()["input_records"]["reading"] - before == 7  # the metrics' records by kind: the good ones
    groups = dict(o for o in out if not isinstance(o, Output))
    z1, z2 = groups["z1"], groups["z2"]
    iv0 = T0 // (10 * S)
    # (meter, interval, count, sum, >0, ==1, ==2, ==3, newest ts, first, last); the ==k counts are computed for
    # every meter in one pass and read only for the HVAC state
    assert [r[:9] for r in z1.rows] == [(POWER, iv0, 2, 6.0, 2, 0, 1, 0, T0 + S),
                                        (POWER, iv0 + 1, 1, 1.0, 1, 1, 0, 0, T0 + 11 * S),
                                        (HVAC, iv0, 2, 4.0, 2, 1, 0, 1, T0 + S)]
    assert z1.spans == (("b1.readings", 0, 0, 5),) and z2.spans == (("b1.readings", 0, 1, 1),)
    assert z1.outdoor == z2.outdoor == ((iv0, 7.5, 1),)  # the outdoor temperature goes to every zone
    assert OCCUPANCY not in {r[0] for r in z1.rows}


def feed(state: ZoneState, zone: str, items: list[tuple[int, str, float]], start: int = 0) -> list[Output]:
    ing = BuildingIngest(state.rt, message_type=KafkaSourceMessage, now_ns=lambda: T0 + 10 * 3600 * S)
    out = ing.decode([msg(start + i, reading(zone, t, m, v)) for i, (t, m, v) in enumerate(items)])
    outs = [o for o in out if isinstance(o, Output)]
    for o in out:
        if isinstance(o, tuple) and o[0] == state.zone:  # the zone's own readings, or outdoor ones broadcast to it
            outs += state.on_batch(o[1])
    return outs


def test_a_far_future_maintenance_window_is_refused_in_the_building_flow_too() -> None:
    """Issue 15 item 8: the zones share the plant flow's bound on maintenance windows."""
    state = ZoneState(BuildingRuntime(site()), "z1")
    fb = {"schema": "aiotstream.feedback/1", "type": "maintenance", "asset": "z1", "ts": T0, "start": T0}
    ing = BuildingIngest(state.rt, message_type=KafkaSourceMessage, now_ns=lambda: T0 + 3600 * S)
    out = ing.decode([msg(0, {**fb, "end": 2**63 - 1}), msg(1, {**fb, "end": T0 + 3600 * S, "window_id": "w"})])
    (batch,) = [o[1] for o in out if isinstance(o, tuple)]
    (dead,) = state.on_batch(batch)
    assert dead.record["reason"] == "maintenance_too_long" and dead.record["source"]["offset"] == 0
    assert list(state.schedule.windows) == ["w"]


def test_a_zone_in_maintenance_counts_in_the_active_suppressions_gauge_until_the_window_ends() -> None:
    """Issue 15 item 8: active suppressions are reported in the run summary for zones as for assets."""
    from aiotstream.decisions.maintenance import SuppressionGauge
    from aiotstream.runstats import RunStats

    state = ZoneState(BuildingRuntime(site()), "z1")
    stats = RunStats()
    state.suppression = SuppressionGauge(stats)
    fb = {"schema": "aiotstream.feedback/1", "type": "maintenance", "asset": "z1", "ts": T0, "start": T0,
          "end": T0 + 60 * S, "window_id": "w"}
    ing = BuildingIngest(state.rt, message_type=KafkaSourceMessage, now_ns=lambda: T0 + 3600 * S)
    (batch,) = [o[1] for o in ing.decode([msg(0, fb)]) if isinstance(o, tuple)]
    state.on_batch(batch)
    assert stats.get("gauges", "active_suppressions") == 0  # no interval closed yet: the zone has no clock
    feed(state, "z1", [(T0 + k * S, "power_kw", 1.0) for k in range(0, 40, 5)], start=10)
    feed(state, "weather", [(T0 + 39 * S, "temperature", 10.0)], start=50)
    assert state.clock_ns is not None and T0 < state.clock_ns < T0 + 60 * S
    assert stats.get("gauges", "active_suppressions") == 1
    feed(state, "z1", [(T0 + k * S, "power_kw", 1.0) for k in range(40, 100, 5)], start=100)
    feed(state, "weather", [(T0 + 99 * S, "temperature", 10.0)], start=150)
    assert state.clock_ns >= T0 + 60 * S  # past the window's end
    assert stats.get("gauges", "active_suppressions") == 0


def test_zone_kpis_against_hand_computed_energy_and_savings() -> None:
    rt = BuildingRuntime(site())
    z = ZoneState(rt, "z1")
    # four 10 s intervals at 3.6 kW (0.01 kWh each), then one more to close the second period
    items = [(T0 + k * S, "power_kw", 3.6) for k in range(0, 50, 2)]
    outs = feed(z, "z1", items) + z.flush()
    kpis = sorted((o.record for o in outs if o.kind == "kpi"), key=lambda r: r["period"]["start_ns"])
    assert [r["period"]["start_ns"] - T0 for r in kpis] == [0, 20 * S, 40 * S]
    first, second = kpis[0], kpis[1]
    # period 1 = the two warm-up intervals: baseline = actual, but no model baseline yet -> savings undefined
    assert first["totals"]["energy_kwh"] == pytest.approx(0.02) and first["totals"]["baseline_samples"] == 0
    assert first["kpis"]["baseline_kwh"] is None and first["kpis"]["savings_kwh"] is None
    assert first["totals"]["power_samples"] == 10 and first["totals"]["windows"] == 2
    # period 2: the model baseline counts; savings = baseline - actual, exactly from the totals
    t = second["totals"]
    assert t["baseline_samples"] == 2 and t["energy_kwh"] == pytest.approx(0.02)
    assert second["kpis"]["savings_kwh"] == pytest.approx(t["baseline_kwh"] - t["energy_kwh"])
    assert second["kpis"]["savings_pct"] == pytest.approx((t["baseline_kwh"] - t["energy_kwh"]) / t["baseline_kwh"]
                                                          * 100)
    v = validator("kpi")
    for r in kpis:
        assert not list(v.iter_errors(r))
        assert r["asset"] == "z1" and r["line"] == "f1" and r["scope"] == "asset"


def test_building_rollup_is_exact_not_an_average_of_ratios() -> None:
    book = RollupBook("site", "b1", {"z1", "z2"})
    from aiotstream.kpi import PeriodResult

    def part(zone: str, energy: float, baseline: float) -> PeriodResult:
        t = {**new_totals(), "energy_kwh": energy, "baseline_kwh": baseline, "power_samples": 1,
             "baseline_samples": 1}
        return PeriodResult("20s", 20 * S, 0, 20 * S, "", zone, "f1", t, ())

    # zone savings: +2 of 12 (16.7 %) and -1 of 4 (-25 %); the building saves 1 of 16 = 6.25 %
    book.add(part("z1", 10.0, 12.0))
    (res,) = book.add(part("z2", 5.0, 4.0))
    k = derive(res.totals)
    assert (k["energy_kwh"], k["baseline_kwh"], k["savings_kwh"], k["savings_pct"]) == (15.0, 16.0, 1.0, 6.25)


def test_empty_zone_hvac_opens_after_n_intervals_and_commands_a_setback() -> None:
    cfg = site()
    data = cfg.model_dump(mode="json")
    data["control"] = {"actuators": [{"name": "setback", "initial": 0, "min": 0, "max": 4, "ack_timeout_s": 0,
                                      "interlocks": [{"name": "occupied", "metric": "occupancy", "above": 0}]}],
                       "rules": [{"name": "setback-empty", "actuator": "setback", "mode": "auto",
                                  "when": {"alert_type": "hvac_empty_zone"}, "action": {"set": 3},
                                  "revert": {"set": 0}}]}
    rt = BuildingRuntime(SiteConfig.from_dict(data))
    z = ZoneState(rt, "z1")
    items = []
    for k in range(60):  # 6 intervals: HVAC heats an empty zone in intervals 1-3 (30 s > 20 s), then stops
        on = 10 <= k < 40
        items += [(T0 + k * S, "occupancy", 0.0), (T0 + k * S, "hvac_state", 1.0 if on else 0.0),
                  (T0 + k * S, "power_kw", 3.0 if on else 1.0)]
    outs = feed(z, "z1", items) + z.flush()
    alerts = [o.record for o in outs if o.kind == "alert"]
    assert [(a["alert_type"], a["event"], (a["at_ns"] - T0) // S) for a in alerts] == [
        ("hvac_empty_zone", "opened", 30), ("hvac_empty_zone", "cleared", 60)]
    assert alerts[0]["detail"]["occupied_fraction"] == 0.0
    cmds = [o.record for o in outs if o.kind == "command"]
    assert [(c["status"], c["value"], c["trigger"]["alert_type"]) for c in cmds] == [
        ("emitted", 3.0, "hvac_empty_zone"), ("emitted", 0.0, "hvac_empty_zone")]
    v = validator()
    assert not [e for o in outs for e in v.iter_errors(o.record)]


def test_a_reading_for_a_closed_interval_is_a_late_dead_letter() -> None:
    rt = BuildingRuntime(site())
    z = ZoneState(rt, "z1")
    feed(z, "z1", [(T0, "power_kw", 1.0), (T0 + 25 * S, "power_kw", 1.0)])
    feed(z, "weather", [(T0 + 25 * S, "temperature", 10.0)], start=50)  # the outdoor readings pass too
    outs = feed(z, "z1", [(T0 + 3 * S, "power_kw", 9.0)], start=100)
    assert [(o.record["reason"], o.record["source"]["offset"]) for o in outs] == [("late", 100)]


def test_late_readings_of_a_shuffled_batch_dead_letter_their_own_bytes() -> None:
    """The rows are sorted by (zone, meter, interval) and a late reading's dead letter picks its bytes back
    from the poll's values through that order (ZoneBatch.values, a Picked view): each dead letter's payload
    must be its own offset's message, whatever order the batch came in, and a block must dead-letter what
    the same messages one by one do."""
    import base64
    import pickle
    import random
    from itertools import pairwise

    from aiotstream.energy.ingest import Picked
    from aiotstream.records import MessageBlock

    rt = BuildingRuntime(site())
    rnd = random.Random(7)
    items = [(z, T0 + rnd.randrange(0, 45) * S, rnd.choice(["power_kw", "occupancy"]), float(k))
             for k in range(60) for z in (rnd.choice(["z1", "z2"]),)]
    raws = [orjson.dumps(reading(*it)) for it in items]

    def late(blocks: int) -> list[tuple[int, bytes]]:
        state = {z: ZoneState(rt, z) for z in ("z1", "z2")}
        for z, zs in state.items():  # intervals before 35 s closed by a reading and the outdoor one at 35 s
            feed(zs, z, [(T0, "power_kw", 1.0), (T0 + 35 * S, "power_kw", 1.0)])
            feed(zs, "weather", [(T0 + 35 * S, "temperature", 10.0)], start=50)
        ing = BuildingIngest(rt, message_type=KafkaSourceMessage, now_ns=lambda: T0 + 3600 * S)
        # one block, or two of two partitions (offsets 100-129 and 130-159) in one poll, or the messages
        cut = [0, 30, 60] if blocks == 2 else [0, 60]
        batch = [MessageBlock("b1.readings", p, raws[a:b], list(range(100 + a, 100 + b)))
                 for p, (a, b) in enumerate(pairwise(cut))] if blocks else \
            [msg(100 + k, r) for k, r in enumerate(raws)]
        dead = []
        for o in ing.decode(batch):
            if isinstance(o, tuple):
                zb = o[1]
                assert isinstance(zb.values, Picked)
                assert pickle.loads(pickle.dumps(zb.values)) == list(zb.values) == zb.values
                dead += state[o[0]].on_batch(zb)
        return sorted((o.record["source"]["offset"], base64.b64decode(o.record["payload_b64"])) for o in dead
                      if o.kind == "deadletter" and o.record["reason"] == "late")

    got = late(1)
    assert got == late(0) == late(2)
    assert all(raw == raws[off - 100] for off, raw in got)  # each payload is its own offset's message
    first = {100 + k for k, (_, t, _, _) in enumerate(items) if t < T0 + 10 * S}  # interval 0 closed surely
    assert first <= {off for off, _ in got} and len(got) < len(items)


# ---- config ------------------------------------------------------------------------------------------
def test_building_site_file_loads_and_its_commented_examples_too(tmp_path: Path) -> None:
    path = ROOT / "flows" / "sites" / "building-1.toml"
    c = SiteConfig.load(path)
    assert len(c.building.all_zones()) == 500 and c.site.flow == "energy-optimization"
    rt = BuildingRuntime(c)
    assert len(rt.lines) == 6 and [r.name for r in rt.control_specs("f1-z001")[1]] == ["setback-empty-zone"]
    lines = []
    for line in path.read_text().splitlines():
        body = line[2:] if line.startswith("# ") else ("" if line == "#" else line)
        lines.append(body if line.startswith("#") and not body[:1].isupper() else line)
    full = tmp_path / "b.toml"
    full.write_text("\n".join(lines))
    assert SiteConfig.load(full).inputs.mqtt is not None


@pytest.mark.parametrize(("change", "path"), [
    ({"interval_s": 7}, "building"),
    ({"outdoor_asset": "z1"}, "building.outdoor_asset"),
    ({"meters": {"power": "x", "temperature": "x"}}, "building.meters"),
    ({"waste": {"night_start_h": 6, "night_end_h": 5}}, "building.waste"),
    ({"zones": [{"id": "bad id"}]}, "building.zones[0].id"),
])
def test_bad_building_config_fails_with_the_field_path(change: dict, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        site(**change)
    assert path in [p for p, _ in e.value.problems], e.value.problems


def test_energy_flow_needs_a_building_and_whole_intervals_per_period() -> None:
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict({"site": {"id": "b", "flow": "energy-optimization"}})
    assert any("[building]" in m for _, m in e.value.problems)
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict({"site": {"id": "b"}, "building": {"interval_s": 60, "zones": [{"id": "z"}]},
                              "kpi": {"periods_s": [90]}})
    assert [p for p, _ in e.value.problems] == ["kpi.periods_s"]



def test_a_message_block_decodes_like_the_same_messages_one_by_one() -> None:
    from aiotstream.records import MessageBlock

    rt = BuildingRuntime(site())
    items = [reading(z, T0 + k * S, m, float(k % 3)) for k in range(30) for z in ("z1", "z2")
             for m in ("power_kw", "temperature", "occupancy", "hvac_state")]
    items += [reading("weather", T0, "temperature", 4.0), reading("z9", T0, "power_kw", 1.0)]
    raws = [orjson.dumps(o) for o in items]

    def run(batch: list) -> tuple:
        out = BuildingIngest(rt, message_type=KafkaSourceMessage, now_ns=lambda: T0 + 3600 * S).decode(batch)
        dead = sorted((o.record["reason"], o.record["source"]["offset"]) for o in out if isinstance(o, Output))
        groups = {z: (g.rows, g.spans, g.outdoor, g.values) for z, g in (o for o in out if not isinstance(o, Output))}
        return dead, groups

    one_by_one = run([msg(i, r) for i, r in enumerate(raws)])
    block = run([MessageBlock("b1.readings", 0, raws, list(range(len(raws))))])
    assert block == one_by_one and one_by_one[0] == [("unknown_asset", len(raws) - 1)]
    # one malformed message in a block: the block falls back to message by message, nothing else is lost
    worse = run([MessageBlock("b1.readings", 0, [*raws, b"{oops"], list(range(len(raws) + 1)))])
    assert worse[1] == one_by_one[1] and ("bad_json", len(raws)) in worse[0]


def test_spans_per_zone_over_several_partitions() -> None:
    from aiotstream.energy.ingest import _spans

    names = [("t", 0), ("t", 1)]
    P = np.array([0, 1, 0, 1, 1])
    O = np.array([5, 9, 3, 2, 7])
    # zone 0 = readings 0..2, zone 1 = readings 3..4
    assert _spans(names, P, O, np.array([0, 3]), np.array([3, 5])) == [
        (("t", 0, 3, 5), ("t", 1, 9, 9)), (("t", 1, 2, 7),)]


def test_sites_without_a_building_keep_their_config_hash() -> None:
    c = SiteConfig.from_dict({"site": {"id": "p"}, "assets": [{"id": "a"}]})
    assert "building" not in c.normalised()
    assert "building" in site().normalised()


def test_heating_next_to_cooling_is_flagged_on_both_zones_of_the_pair() -> None:
    from aiotstream.energy.floor import FloorState, ZoneHvac, fighting

    cfg = site(zone_groups=[{"prefix": "c", "count": 3, "floor": "f2", "adjacency": "chain"}],
               waste={"simultaneous_after_s": 20, "simultaneous_fraction": 0.5})
    rt = BuildingRuntime(cfg)
    assert rt.neighbours == {"c001": {"c002"}, "c002": {"c001", "c003"}, "c003": {"c002"}}
    fl = FloorState(rt, "f2")
    L = 10 * S
    outs = []
    for k in range(5):  # c001 heats while c002 cools in intervals 0-2; c003 is off throughout
        h = [ZoneHvac("c001", "f2", T0 + k * L, T0 + (k + 1) * L, 1.0 if k < 3 else 0.0, 0.0, ()),
             ZoneHvac("c002", "f2", T0 + k * L, T0 + (k + 1) * L, 0.0, 0.8 if k < 3 else 0.0, ()),
             ZoneHvac("c003", "f2", T0 + k * L, T0 + (k + 1) * L, 0.0, 0.0, ())]
        outs += fl.add(h)
    outs += fl.flush()
    ev = [(o.record["asset"], o.record["event"], (o.record["at_ns"] - T0) // L) for o in outs]
    # 20 s = 2 intervals to open (at the end of interval 1); 2 quiet intervals to clear (end of interval 4)
    assert ev == [("c001", "opened", 2), ("c002", "opened", 2), ("c001", "cleared", 5), ("c002", "cleared", 5)]
    assert outs[0].record["detail"]["neighbour"] == "c002"
    assert fighting(ZoneHvac("a", "f", 0, 1, 0.3, 0.6, ()), [ZoneHvac("b", "f", 0, 1, 0.9, 0.1, ())]) == (0.6, "b")


def test_a_floor_waits_for_every_zone_with_neighbours_unless_it_lags_far_behind() -> None:
    from aiotstream.energy.floor import FloorState, ZoneHvac

    cfg = site(zone_groups=[{"prefix": "c", "count": 2, "floor": "f2", "adjacency": "chain"}],
               waste={"simultaneous_after_s": 10})
    fl = FloorState(BuildingRuntime(cfg), "f2", lag=2)
    L = 10 * S

    def hv(zone: str, k: int, heat: float, cool: float) -> ZoneHvac:
        return ZoneHvac(zone, "f2", T0 + k * L, T0 + (k + 1) * L, heat, cool, ())

    assert fl.add([hv("c001", 0, 1.0, 0.0)]) == []  # c002 has not reported interval 0 yet
    assert [o.record["asset"] for o in fl.add([hv("c002", 0, 0.0, 1.0)])] == ["c001", "c002"]
    assert fl.add([hv("c001", 1, 0.0, 0.0), hv("c001", 2, 0.0, 0.0)]) == []
    fl.add([hv("c001", 3, 0.0, 0.0)])  # c002 silent: interval 1 is evaluated once the floor is 2 intervals on
    assert 1 * L + T0 not in fl.pending and 2 * L + T0 in fl.pending


def test_an_interval_waits_for_the_outdoor_readings_so_replays_do_not_depend_on_read_timing() -> None:
    """The outdoor temperature is a baseline feature from another partition: an interval closes only once the
    outdoor readings have passed it (or when the flow stops waiting), so its summary always includes them."""
    rt = BuildingRuntime(site())
    z = ZoneState(rt, "z1")
    assert not feed(z, "z1", [(T0 + k * S, "power_kw", 1.0) for k in range(0, 35, 5)])  # 3 intervals' worth
    assert z.open and z.next_iv is None  # nothing closed: no outdoor reading yet
    feed(z, "weather", [(T0 + 5 * S, "temperature", 10.0), (T0 + 15 * S, "temperature", 12.0)], start=50)
    assert z.next_iv == T0 // (10 * S) + 1 and z.last_outdoor == 10.0  # the first interval, with its 10.0
    outs = z.on_batch(ZoneBatch("z1"), hold_for_outdoor=False)  # a silent sensor: the flow stops waiting
    assert z.next_iv == T0 // (10 * S) + 3 and z.last_outdoor == 12.0
    assert not [o for o in outs if o.kind == "deadletter"]


def test_a_zone_reports_its_open_alerts_and_pending_commands_to_the_metrics() -> None:
    """Issue 18: the building flow's zones add to the metrics' open alerts and pending commands as assets do."""
    from aiotstream.runstats import RunStats, Share

    data = site().model_dump(mode="json")
    data["control"] = {"actuators": [{"name": "setback", "initial": 0, "min": 0, "max": 4, "ack_timeout_s": 0}],
                       "rules": [{"name": "setback-empty", "actuator": "setback", "mode": "approval",
                                  "approval_timeout_s": 3600, "when": {"alert_type": "hvac_empty_zone"},
                                  "action": {"set": 3}}]}
    z = ZoneState(BuildingRuntime(SiteConfig.from_dict(data)), "z1")
    stats = RunStats()
    z.alert_share, z.command_share = Share("open_alerts", stats), Share("pending_commands", stats)

    def items(ks: range) -> list:
        on = range(10, 40)  # HVAC heats the empty zone from 10 s to 40 s: the alert opens at 30 s, clears at 60 s
        return [x for k in ks for x in ((T0 + k * S, "occupancy", 0.0), (T0 + k * S, "hvac_state", float(k in on)),
                                         (T0 + k * S, "power_kw", 3.0 if k in on else 1.0))]

    outs = feed(z, "z1", items(range(45)))
    outs += feed(z, "weather", [(T0 + 44 * S, "temperature", 10.0)], start=500)  # the zone's intervals close
    (opened,) = [o.record for o in outs if o.kind == "alert"]
    assert opened["event"] == "opened"
    levels = stats.levels()
    assert levels["open_alerts"] == {opened["severity"]: 1}
    assert levels["pending_commands"] == {"awaiting_approval": 1}
    from aiotstream.runstats import STATS

    closed = STATS.histograms().get(("window_close_latency_seconds", ()), [0, 0.0])
    feed(z, "z1", items(range(45, 80)), start=1000)
    feed(z, "weather", [(T0 + 79 * S, "temperature", 10.0)], start=2000)
    assert stats.levels()["open_alerts"] == {opened["severity"]: 0}
    # its closed intervals are windows for the close latency histogram and the watermark (the interval ends)
    after = STATS.histograms()[("window_close_latency_seconds", ())]
    assert sum(after[:-1]) - sum(closed[:-1]) == (z.clock_ns - (T0 + 40 * S)) // (10 * S) > 0
    assert z.clock_ns in STATS.watermarks()
