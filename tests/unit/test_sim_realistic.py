"""The realistic plant scenario (aiotstream.sim.realistic) and the easy scenario kept as it was."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import orjson
import pytest

from aiotstream.sim.plant import Fault, PlantSimulator, ProductionSpec
from aiotstream.sim.realistic import EVENT_KINDS, RealisticPlantSimulator, RealisticSpec, make_simulator
from aiotstream.units import S

QUIET = {"diurnal_amp": 0.0, "weekly_amp": 0.0, "regimes": (1.0,), "drift_fraction": 0.0,
         "bursts_per_hour": 0.0, "dropouts_per_hour": 0.0, "maintenance_fraction": 0.0, "ambient_c": 0.0}


def _digest(sim: PlantSimulator) -> str:
    h = hashlib.sha256()
    for m in sim.messages():
        h.update(m.stream.encode())
        h.update(m.payload)
    h.update(json.dumps(sim.truth_dict(), sort_keys=True).encode())
    return h.hexdigest()


# Produced by main at commit 478daef (before the scenarios) with the same code as _digest: the easy scenario
# must stay byte-identical, messages and ground truth.
EASY_MAIN = {
    "a": "346272ec38f4b5638b999b0132aced7fd5579f87bedbb7cd42db5f66b289068a",
    "b": "83cd31caf205b142bdbea9aa466edd990306b6969d3a99a71e0ee662152a2516",
}


def test_easy_is_byte_identical_to_main() -> None:
    a = make_simulator("easy", 4, duration_s=40.0, n_faults=4, seed=7)
    b = PlantSimulator(6, duration_s=45.0, n_faults=5, seed=3, production=ProductionSpec())
    assert {"a": _digest(a), "b": _digest(b)} == EASY_MAIN


def _realistic(**kw) -> RealisticPlantSimulator:
    spec = kw.pop("spec", RealisticSpec(day_s=20.0, regime_dwell_s=15.0, bursts_per_hour=400.0,
                                        dropouts_per_hour=200.0, maintenance_fraction=0.5))
    return RealisticPlantSimulator(kw.pop("assets", 4), duration_s=kw.pop("duration_s", 60.0),
                                   n_faults=kw.pop("n_faults", 2), seed=kw.pop("seed", 5), spec=spec,
                                   frame_samples=2_000, **kw)


def test_deterministic_and_seeded() -> None:
    a, b, c = _realistic(), _realistic(), _realistic(seed=6)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    kinds = {e["kind"] for e in a.truth_dict()["events"]}
    assert kinds <= set(EVENT_KINDS) and {"noise_burst", "dropout"} <= kinds
    # the counts promised are the counts delivered
    msgs = list(a.messages())
    assert len(msgs) == a.truth_dict()["counts"]["messages"] == a.n_frames + a.n_readings + len(a.feedback)


def test_same_faults_as_easy_and_no_nuisance_near_them() -> None:
    sim = _realistic(n_faults=4, duration_s=80.0)
    easy = PlantSimulator(4, duration_s=80.0, n_faults=4, seed=5, frame_samples=2_000)
    assert sim.faults == easy.faults
    guard = sim.spec.guard_s * S
    for e in sim.events:
        if e.kind in ("noise_burst", "dropout", "maintenance_reset"):
            assert e.onset_ns >= sim.start_ns + sim.warmup_s * S
            for f in sim.faults:
                if f.asset == e.asset:
                    f_end = sim.end_ns if f.end_ns is None else f.end_ns
                    assert e.end_ns <= f.onset_ns - guard or e.onset_ns >= f_end + guard, (e, f)


def test_stuck_at_window_is_constant_in_the_data() -> None:
    start = 1_767_225_600_000_000_000
    fault = Fault("asset-001", "sensor_stuck", start + 25 * S + 123_456, start + 37 * S, "y")
    sim = RealisticPlantSimulator(2, duration_s=50.0, faults=[fault], seed=2, frame_samples=2_000,
                                  spec=RealisticSpec(day_s=10.0, bursts_per_hour=0.0, dropouts_per_hour=0.0))
    t, x = [], []
    for _aid, _seq, t0, frame in sim.frames("asset-001"):
        t.append(t0 + np.arange(frame.shape[1]) * 100_000)  # 10 kHz
        x.append(frame[1])
    t, x = np.concatenate(t), np.concatenate(x)
    inside = (t >= fault.onset_ns) & (t < fault.end_ns)
    assert inside.sum() > 100_000
    assert np.unique(x[inside]).size == 1
    assert x[inside][0] == x[np.flatnonzero(inside)[0] - 1]  # the last value before the onset
    assert np.unique(x[~inside]).size > 1000  # the rest moves (load cycles, noise)


def test_maintenance_reset_is_a_level_shift_at_its_time_with_feedback() -> None:
    spec = RealisticSpec(**{**QUIET, "maintenance_fraction": 1.0, "maintenance_s": (10.0, 12.0),
                            "reset_gain": (1.3, 1.4), "reset_temp_c": (2.0, 2.5), "guard_s": 5.0})
    sim = RealisticPlantSimulator(1, duration_s=90.0, n_faults=0, seed=4, spec=spec, frame_samples=1_000)
    (ev,) = [e for e in sim.events if e.kind == "maintenance_reset"]
    gain, step = dict(ev.detail)["gain"], dict(ev.detail)["temp_step_c"]
    # the flow's maintenance message for the window
    (fb,) = sim.feedback
    body = orjson.loads(fb.payload)
    assert (body["type"], body["asset"], body["start"], body["end"]) == ("maintenance", ev.asset, ev.onset_ns,
                                                                         ev.end_ns)
    from aiotstream.codecs import decode_any
    from aiotstream.records import Position

    assert decode_any(fb.payload, Position("t", 0, 0)).type == "maintenance"
    before, after, during = [], [], 0
    for _a, _s, t0, frame in sim.frames():
        if ev.onset_ns <= t0 < ev.end_ns:
            during += 1
        elif ev.onset_ns - 10 * S <= t0 < ev.onset_ns:
            before.append(frame)
        elif ev.end_ns <= t0 < ev.end_ns + 10 * S:
            after.append(frame)
    assert during == 0  # the machine is stopped: no data
    rms = [float(np.sqrt(np.mean(np.concatenate(f, axis=1).astype(float) ** 2))) for f in (before, after)]
    assert rms[1] / rms[0] == pytest.approx(gain, rel=0.03)
    temps = list(sim.readings())
    tb = np.mean([v for _a, ts, _m, v in temps if ev.onset_ns - 10 * S <= ts < ev.onset_ns])
    ta = np.mean([v for _a, ts, _m, v in temps if ev.end_ns <= ts < ev.end_ns + 10 * S])
    assert ta - tb == pytest.approx(step, abs=0.15)
    assert not [ts for _a, ts, _m, _v in temps if ev.onset_ns <= ts < ev.end_ns]


def test_cycles_have_their_periods() -> None:
    day = 20.0
    spec = RealisticSpec(**{**QUIET, "day_s": day, "diurnal_amp": 0.15, "weekly_amp": 0.1})
    n_days = 28  # four weeks
    sim = RealisticPlantSimulator(1, duration_s=n_days * day, n_faults=0, seed=9, spec=spec)
    temp = np.array([v for _a, _ts, _m, v in sim.readings()])
    assert temp.size == n_days * day
    power = np.abs(np.fft.rfft(temp - temp.mean())) ** 2
    # the strongest line is the day, the strongest below it the week (bins = cycles in the run)
    assert int(np.argmax(power[1:])) + 1 == n_days
    assert int(np.argmax(power[1:n_days - 2])) + 1 == n_days // 7
    # and the load is the same sines
    t = np.arange(0, n_days * day, 0.5)
    lp = np.abs(np.fft.rfft(sim.load("asset-000", t) - 1.0)) ** 2
    assert int(np.argmax(lp[1:])) + 1 == n_days


def test_dropouts_and_bursts_in_the_data() -> None:
    spec = RealisticSpec(**{**QUIET, "dropouts_per_hour": 300.0, "bursts_per_hour": 300.0,
                            "burst_sigmas": (3.0, 3.0), "guard_s": 1.0})
    sim = RealisticPlantSimulator(1, duration_s=120.0, n_faults=0, seed=12, spec=spec, frame_samples=500)
    drops = [e for e in sim.events if e.kind == "dropout"]
    bursts = [e for e in sim.events if e.kind == "noise_burst"]
    assert drops and bursts
    frames = list(sim.frames())
    assert len(frames) == sim.n_frames
    for d in drops:
        assert not [1 for _a, _s, t0, _x in frames if d.onset_ns <= t0 < d.end_ns]
    b = bursts[0]
    ch = sim.assets[0].channels.index(b.channel)
    inside = [x[ch] for _a, _s, t0, x in frames if b.onset_ns <= t0 and t0 + 50 * 1_000_000 <= b.end_ns]
    outside = [x[ch] for _a, _s, t0, x in frames if t0 + 10 * S < b.onset_ns]
    assert inside and outside
    assert np.std(np.concatenate(inside)) > 1.5 * np.std(np.concatenate(outside))


def test_amplitude_scales_the_faults() -> None:
    start = 1_767_225_600_000_000_000
    f = Fault("asset-000", "temperature_drift", start + 21 * S, None, None)

    def slope(amp: float) -> float:
        sim = PlantSimulator(1, duration_s=40.0, faults=[f], fault_amplitude=amp)
        v = np.array([v for _a, _t, _m, v in sim.readings()])
        return float(v[39] - v[29]) / 10.0

    clean = PlantSimulator(1, duration_s=40.0, n_faults=0)
    base = np.array([v for _a, _t, _m, v in clean.readings()])
    base_slope = float(base[39] - base[29]) / 10.0
    assert slope(1.0) - base_slope == pytest.approx(0.3, abs=0.01)
    assert slope(0.25) - base_slope == pytest.approx(0.075, abs=0.01)
    with pytest.raises(ValueError, match="fault_amplitude"):
        PlantSimulator(1, n_faults=0, fault_amplitude=0.0)


def test_cli_simulate_scenario(tmp_path) -> None:
    from aiotstream.cli import main

    assert main(["simulate", "--out-dir", str(tmp_path / "r"), "--assets", "3", "--duration", "40",
                 "--faults", "1", "--scenario", "realistic", "--day-s", "20", "--amplitude", "0.5"]) == 0
    truth = json.loads((tmp_path / "r" / "truth.json").read_text())
    assert truth["scenario"] == "realistic" and truth["amplitude"] == 0.5 and truth["spec"]["day_s"] == 20.0
    assert main(["simulate", "--out-dir", str(tmp_path / "e"), "--assets", "3", "--duration", "40",
                 "--faults", "1"]) == 0
    assert "scenario" not in json.loads((tmp_path / "e" / "truth.json").read_text())


def test_gaps_hold_no_reading_of_any_metric_and_counts_match() -> None:
    spec = RealisticSpec(**{**QUIET, "dropouts_per_hour": 300.0, "maintenance_fraction": 1.0,
                            "maintenance_s": (5.0, 8.0), "guard_s": 1.0})
    sim = RealisticPlantSimulator(2, duration_s=60.0, n_faults=0, seed=3, spec=spec, frame_samples=2_000,
                                  warmup_s=5.0, production=ProductionSpec())
    msgs = list(sim.messages())
    assert len(msgs) == sim.truth_dict()["counts"]["messages"]
    gaps = [e for e in sim.events if e.kind in ("dropout", "maintenance_reset")]
    assert gaps
    for e in gaps:
        inside = [m for m in msgs if m.asset == e.asset and e.onset_ns <= m.t_ns < e.end_ns
                  and m.stream != "feedback"]
        assert not inside, (e, inside[:1])
    assert {orjson.loads(m.payload)["metric"] for m in msgs if m.stream == "reading"} >= {"state", "parts_total"}
