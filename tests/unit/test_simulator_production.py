"""The simulator's production model (state, part counters, downtime during faults) and explicit faults."""
from __future__ import annotations

import orjson
import pytest

from aiotstream.sim.plant import STATE_CODES, Fault, PlantSimulator, ProductionSpec

S = 1_000_000_000
START = 1_767_225_600_000_000_000


def readings(sim: PlantSimulator, asset: str, metric: str, msgs: list | None = None) -> list[tuple[int, float]]:
    out = []
    for m in msgs if msgs is not None else sim.messages():
        if m.stream == "reading" and m.asset == asset:
            r = orjson.loads(m.payload)
            if r["metric"] == metric:
                out.append((r["ts"], r["value"]))
    return out


def test_production_adds_readings_and_changes_nothing_else() -> None:
    plain = PlantSimulator(2, duration_s=30.0, n_faults=1, seed=5, warmup_s=5.0)
    prod = PlantSimulator(2, duration_s=30.0, n_faults=1, seed=5, warmup_s=5.0, production=ProductionSpec())
    base = [m.payload for m in plain.messages()]
    extra = [m.payload for m in prod.messages()
             if m.stream == "reading" and orjson.loads(m.payload)["metric"] != "temperature"]
    assert [m.payload for m in prod.messages() if m.payload not in set(extra)] == base
    assert prod.n_readings == plain.n_readings + len(extra)
    assert prod.faults == plain.faults


def test_state_timeline_planned_stop_downtime_and_counters() -> None:
    fault = Fault("asset-000", "sensor_stuck", START + 20 * S, START + 30 * S, "x")
    spec = ProductionSpec(cycle_time_s=1.0, speed=(1.0, 1.0), scrap_rate=0.0, idle_per_hour=0.0,
                          planned_stops=((5.0, 5.0),), down_delay_s=2.0)
    sim = PlantSimulator(1, duration_s=40.0, faults=[fault], production=spec)
    msgs = list(sim.messages())
    states = readings(sim, "asset-000", "state", msgs)
    code = STATE_CODES
    assert states == [(START, code["running"]), (START + 5 * S, code["planned_stop"]), (START + 10 * S, code["running"]),
                      (START + 22 * S, code["down"]), (START + 30 * S, code["running"])]
    truth = sim.production_truth()["asset-000"]
    # running 0-5, 10-22, 30-40 = 27 s; planned stop 5 s; down 22-30 = 8 s
    assert (truth["running_ns"], truth["planned_stop_ns"], truth["down_ns"], truth["idle_ns"]) == (
        27 * S, 5 * S, 8 * S, 0)
    # 1 s cycles: 5 + 12 + 10 parts complete; the counters (every 1 s, last at 39 s) report 26 of them
    total = readings(sim, "asset-000", "parts_total", msgs)
    good = readings(sim, "asset-000", "parts_good", msgs)
    assert len(total) == len(good) == 40
    assert [v for _, v in total] == sorted(v for _, v in total) and total[-1] == (START + 39 * S, 26.0)
    assert good == total and truth["parts_total"] == truth["parts_good"] == 26
    assert sim.production_truth(START + 10 * S)["asset-000"]["parts_total"] == 5


def test_scrap_idle_and_determinism() -> None:
    spec = ProductionSpec(cycle_time_s=0.5, scrap_rate=0.3, idle_per_hour=1800.0)
    a = PlantSimulator(2, duration_s=60.0, n_faults=0, seed=9, production=spec, frame_samples=4096)
    b = PlantSimulator(2, duration_s=60.0, n_faults=0, seed=9, production=spec, frame_samples=4096)
    msgs = list(a.messages())
    assert [m.payload for m in msgs] == [m.payload for m in b.messages()]
    for aid, t in a.production_truth().items():
        assert 0 < t["parts_good"] < t["parts_total"]
        assert t["idle_ns"] > 0
        assert sum(v for k, v in t.items() if k.endswith("_ns")) == 60 * S
        assert readings(a, aid, "parts_good", msgs)[-1][1] == t["parts_good"]


def test_explicit_faults_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown asset"):
        PlantSimulator(1, duration_s=10.0, faults=[Fault("nope", "imbalance", START, None, None)])
    with pytest.raises(ValueError, match="outside the run"):
        PlantSimulator(1, duration_s=10.0, faults=[Fault("asset-000", "imbalance", START + 11 * S, None, None)])
    with pytest.raises(ValueError, match="needs a channel"):
        PlantSimulator(1, duration_s=10.0, faults=[Fault("asset-000", "spike_burst", START, START + S, None)])
    with pytest.raises(ValueError, match="ordered"):
        ProductionSpec(speed=(1.2, 1.0))
