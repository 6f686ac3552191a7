"""Decisions through the whole Bytewax flow in-process: OEE inputs -> asset, line and site KPIs vs ground truth."""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from bytewax.testing import TestingSink, run_main

from aiotstream.config import SiteConfig
from aiotstream.dataflow import build_flow
from aiotstream.io.simulator import SimulatorSource
from aiotstream.kpi import derive, from_public
from aiotstream.records import Output
from aiotstream.schemas import validator
from aiotstream.sim.plant import Fault, PlantSimulator, ProductionSpec

S = 1_000_000_000
START = 1_767_225_600_000_000_000
CFG = SiteConfig.from_dict({
    "site": {"id": "oee"},
    "asset_groups": [{"prefix": "m-", "count": 2, "line": "press", "ideal_cycle_time_s": 2.0},
                     {"prefix": "w-", "count": 2, "line": "weld", "ideal_cycle_time_s": 2.0}],
    "inputs": {"tail": False},
    "model": {"warmup_windows": 10},
    "kpi": {"periods_s": [10, 30]},
})
SPEC = ProductionSpec(cycle_time_s=2.0, scrap_rate=0.05, idle_per_hour=240.0, planned_stops=((10.0, 5.0),),
                      down_delay_s=1.0)
FAULTS = [Fault("m-001", "imbalance", START + 25 * S, None, None),
          Fault("w-002", "sensor_stuck", START + 30 * S, START + 38 * S, "y")]


@pytest.fixture(scope="module")
def run() -> tuple[PlantSimulator, list[Output]]:
    sim = PlantSimulator(CFG.all_assets(), duration_s=45.0, seed=2, warmup_s=0.0, faults=FAULTS, production=SPEC)
    out: list[Output] = []
    run_main(build_flow(CFG, SimulatorSource(list(sim.messages()), CFG.site.id, batch=113), TestingSink(out),
                        tail=False))
    return sim, out


def test_every_record_validates(run: tuple[PlantSimulator, list[Output]]) -> None:
    v = validator()
    for o in run[1]:
        err = next(iter(v.iter_errors(o.record)), None)
        assert err is None, f"{o.kind}: {err.message} at {list(err.path)}"
    assert not [o for o in run[1] if o.kind == "deadletter"]


def test_asset_kpis_equal_the_simulators_truth(run: tuple[PlantSimulator, list[Output]]) -> None:
    sim, out = run
    truth = sim.production_truth()
    for scheme in ("10s", "30s"):
        per_asset: dict[str, Counter] = defaultdict(Counter)
        for o in out:
            r = o.record
            if o.kind == "kpi" and r["scope"] == "asset" and r["period"]["scheme"] == scheme:
                per_asset[r["asset"]].update(r["totals"])
        assert set(per_asset) == set(truth)
        for aid, t in truth.items():
            got = per_asset[aid]
            assert got["observed_s"] == pytest.approx(45.0)
            assert got["run_s"] == pytest.approx(t["running_ns"] / S, abs=1e-6)
            assert got["down_s"] == pytest.approx(t["down_ns"] / S, abs=1e-6)
            assert got["idle_s"] == pytest.approx(t["idle_ns"] / S, abs=1e-6)
            assert got["planned_s"] == pytest.approx((t["running_ns"] + t["idle_ns"] + t["down_ns"]) / S, abs=1e-6)
            assert (got["parts_total"], got["parts_good"]) == (t["parts_total"], t["parts_good"])
            assert got["ideal_run_s"] == pytest.approx(2.0 * t["parts_total"])
    # the faulty machines were down: the imbalance from 26 s to the end, the stuck sensor from 31 s to 38 s
    assert truth["m-001"]["down_ns"] == 19 * S and truth["w-002"]["down_ns"] == 7 * S


def test_line_and_site_rollups_add_up_exactly(run: tuple[PlantSimulator, list[Output]]) -> None:
    sim, out = run
    kpis = [o.record for o in out if o.kind == "kpi"]
    # 45 s: five 10 s periods and two 30 s periods (the last ones cut short by the end of the input)
    assert Counter((k["scope"], k["period"]["scheme"]) for k in kpis) == {
        ("asset", "10s"): 20, ("asset", "30s"): 8, ("line", "10s"): 10, ("line", "30s"): 4,
        ("site", "10s"): 5, ("site", "30s"): 2}
    assert all(k["complete"] and k["revision"] == 0 for k in kpis)
    lines = {a.id: a.line for a in CFG.all_assets()}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for k in kpis:
        if k["scope"] == "asset":
            key = (k["period"]["scheme"], k["period"]["start_ns"])
            groups[("line", lines[k["asset"]], *key)].append(k)
            groups[("site", None, *key)].append(k)
    for k in kpis:
        if k["scope"] == "asset":
            continue
        parts = groups[(k["scope"], k["line"], k["period"]["scheme"], k["period"]["start_ns"])]
        assert k["assets_reported"] == len(parts) == k["assets_expected"]
        for name, value in k["totals"].items():
            agg = max if name in ("max_score", "model_latency_max_s") else sum
            assert value == pytest.approx(agg(p["totals"][name] for p in parts), abs=1e-9), name
    # site OEE over the run from the summed totals equals OEE from the truth (never an average of ratios)
    site = Counter()
    for k in kpis:
        if k["scope"] == "site" and k["period"]["scheme"] == "30s":
            site.update(k["totals"])
    t = sim.production_truth().values()
    run_s = sum(x["running_ns"] for x in t) / S
    planned_s = sum(x["running_ns"] + x["idle_ns"] + x["down_ns"] for x in t) / S
    total, good = sum(x["parts_total"] for x in t), sum(x["parts_good"] for x in t)
    d = derive(from_public(dict(site)))
    assert d["availability"] == pytest.approx(run_s / planned_s, rel=1e-9)
    assert d["performance"] == pytest.approx(2.0 * total / run_s, rel=1e-9)
    assert d["quality"] == pytest.approx(good / total, rel=1e-12)
    assert d["oee"] == pytest.approx(run_s / planned_s * 2.0 * total / run_s * good / total, rel=1e-9)
    averaged = sum(k["kpis"]["oee"] for k in kpis if k["scope"] == "asset" and k["period"]["scheme"] == "30s"
                   and k["kpis"]["oee"] is not None) / 8
    assert abs(averaged - d["oee"]) > 1e-3  # the naive average of ratios would be a different number
