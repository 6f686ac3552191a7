"""Golden outputs: the flows' decisions do not change when the code moves.

Three fixed-seed runs write their alerts, commands, KPIs, scores and dead letters as JSON Lines; each file must
equal, byte for byte, the one under ``tests/golden/`` (generated before the package was reorganised), except the
lineage fields that name the code's version (``code_version``) or the wall clock (``produced_at``), and the
model-latency KPIs (wall-clock timings of the model call):

- ``demo``: ``aiotstream demo`` itself (a child process), 3 assets, 60 s, 2 faults, 60 malformed messages;
- ``plant-control``: the plant flow with control rules (auto and advisory, an interlock, acks that time out),
  a threshold alert rule, escalation and a maintenance window, so commands are made too;
Scores and the streaming detector's scalar scores are kept as their line count and sha256 (they are large);
the rest as the files themselves.

- ``building``: the building (energy) flow: waste alerts, setback commands, zone/floor/site KPIs, dead letters.

To regenerate after an intended change of behaviour: ``AIOT_GOLDEN_UPDATE=1 pytest tests/integration/test_golden.py``
and say why in the commit.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bytewax.testing import TestingSource, run_main

from aiotstream.config import SiteConfig, default_site
from aiotstream.io.files import JsonlSink
from aiotstream.records import SourceMessage

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ROOT = Path(__file__).resolve().parents[2]
FILES = ("alerts", "commands", "kpis", "scores", "deadletter", "scalar_scores")
DIGESTS = ("scores", "scalar_scores")  # many and large: kept as line count and sha256
UPDATE = os.environ.get("AIOT_GOLDEN_UPDATE") == "1"
S = 1_000_000_000
START = 1_767_225_600_000_000_000
_MASK = re.compile(rb'"(code_version|produced_at)":"[^"]*"')
_TIMED = re.compile(rb'"(model_latency_s|model_latency_max_s|model_latency_ms)":[-+.0-9eE]+')


def masked(path: Path) -> bytes:
    """The file's bytes with the lineage fields that name the code version or the wall clock blanked, and the
    KPIs that time the model call (wall-clock measurements, never decisions) blanked too."""
    if not path.exists():
        return b""
    return _TIMED.sub(rb'"\1":0', _MASK.sub(rb'"\1":"*"', path.read_bytes()))


def digest(data: bytes) -> bytes:
    """Scores are many and large: the golden file keeps their line count and sha256 only."""
    return f"{len(data.splitlines())} {hashlib.sha256(data).hexdigest()}\n".encode()


def compare(name: str, out: Path) -> None:
    want_dir = GOLDEN / name
    kept = {f: (f"{f}.jsonl.sha256" if f in DIGESTS else f"{f}.jsonl") for f in FILES}
    if UPDATE:
        want_dir.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            data = masked(out / f"{f}.jsonl")
            (want_dir / kept[f]).write_bytes(digest(data) if f in DIGESTS else data)
    for f in FILES:
        want = (want_dir / kept[f]).read_bytes()
        got = masked(out / f"{f}.jsonl")
        if f in DIGESTS:
            got = digest(got)
        if got != want:
            w, g = want.splitlines(), got.splitlines()
            first = next((i for i, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
            pytest.fail(f"{name}/{f}.jsonl differs from the golden file: {len(g)} lines vs {len(w)}; first "
                        f"difference at line {first + 1}:\n  want {w[first][:400] if first < len(w) else None!r}\n"
                        f"  got  {g[first][:400] if first < len(g) else None!r}")
    assert (want_dir / "alerts.jsonl").stat().st_size > 0  # the runs must decide something


def test_demo_outputs_equal_the_golden_files(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "aiotstream.cli", "demo", "--out", str(tmp_path), "--assets", "3",
                           "--duration", "60", "--faults", "2", "--malformed", "60", "--seed", "7"],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    compare("demo", tmp_path)


def plant_control_config() -> SiteConfig:
    return default_site(4, site_id="golden-plant", inputs={"tail": False},
                        assets=[{"id": f"m-{i:03d}", "line": f"line-{i % 2 + 1}", "ideal_cycle_time_s": 2.0}
                                for i in range(4)],
                        model={"warmup_windows": 10},
                        alerts={"escalate_after_s": 4, "max_escalations": 2, "clear_windows": 2, "cooldown_s": 5,
                                "rules": [{"type": "overtemp", "signal": "temperature.max", "open_threshold": 41,
                                           "clear_threshold": 40, "critical_threshold": 45}]},
                        maintenance=[{"assets": ["m-003"], "start": "2026-01-01T00:00:30Z",
                                      "end": "2026-01-01T00:00:40Z", "reason": "golden"}],
                        kpi={"periods_s": [10, 30]},
                        control={
                            "actuators": [
                                {"name": "speed", "unit": "rpm", "initial": 1800, "min": 600, "max": 1800,
                                 "max_step": 400, "ack_timeout_s": 2, "max_retries": 1,
                                 "interlocks": [{"name": "not-down", "states": ["down"]}]},
                                {"name": "coolant", "initial": 0, "min": 0, "max": 1, "ack_timeout_s": 0}],
                            "rules": [
                                {"name": "slow", "actuator": "speed", "mode": "auto",
                                 "when": {"alert_type": "anomaly"}, "action": {"delta": -300},
                                 "revert": {"set": 1800}},
                                {"name": "cool", "actuator": "coolant", "mode": "advisory",
                                 "when": {"signal": "temperature.max", "above": 40}, "action": {"set": 1},
                                 "revert": {"set": 0}}]})


def test_plant_flow_with_control_equals_the_golden_files(tmp_path: Path) -> None:
    from aiotstream.dataflow import build_flow
    from aiotstream.io.simulator import SimulatorSource
    from aiotstream.sim.plant import Fault, PlantSimulator, ProductionSpec

    cfg = plant_control_config()
    faults = [Fault("m-001", "imbalance", START + 20 * S, None, None),
              Fault("m-002", "temperature_drift", START + 15 * S, None, None),
              Fault("m-003", "bearing_wear", START + 25 * S, None, None),
              Fault("m-000", "sensor_stuck", START + 30 * S, START + 40 * S, "y")]
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=5, warmup_s=0.0, faults=faults,
                         production=ProductionSpec(cycle_time_s=2.0, scrap_rate=0.05, down_delay_s=1.0))
    run_main(build_flow(cfg, SimulatorSource(list(sim.messages()), cfg.site.id, batch=97), JsonlSink(tmp_path),
                        tail=False, snapshots=False))
    compare("plant-control", tmp_path)


def test_building_flow_equals_the_golden_files(tmp_path: Path) -> None:
    from aiotstream.dataflow.building import build_building_flow
    from aiotstream.sim.building import BuildingSimulator

    cfg = SiteConfig.from_dict({
        "site": {"id": "golden-bldg", "flow": "energy-optimization"},
        "building": {
            "interval_s": 5, "day_s": 60,
            "zone_groups": [{"prefix": f"f{f}-z", "count": 6, "floor": f"floor-{f}", "adjacency": "chain"}
                            for f in (1, 2)],
            "baseline": {"warmup_intervals": 12, "learning_rate": 0.05},
            "waste": {"empty_hvac_after_s": 10, "simultaneous_after_s": 10, "baseload_learn_nights": 1,
                      "baseload_nights": 2, "baseload_creep": 0.15, "night_end_h": 5},
        },
        "window": {"allowed_lateness_s": 2},
        "alerts": {"escalate_after_s": 0},
        "inputs": {"tail": False, "poll_batch": 5000},
        "kpi": {"periods_s": [60]},
        "control": {
            "actuators": [{"name": "setback", "unit": "degC", "initial": 0, "min": 0, "max": 4, "ack_timeout_s": 0,
                           "interlocks": [{"name": "occupied", "metric": "occupancy", "above": 0}]}],
            "rules": [{"name": "setback-empty-zone", "actuator": "setback", "mode": "auto",
                       "when": {"alert_type": "hvac_empty_zone"}, "action": {"set": 3}, "revert": {"set": 0}}],
        },
    })
    sim = BuildingSimulator([(z.id, z.floor) for z in cfg.building.all_zones()], duration_s=180, day_s=60, seed=3,
                            start_ns=START, pairs=1, neighbours=cfg.building.neighbours())
    topic = cfg.inputs.topics[0]
    raw = [*sim.messages(), *((k, v) for k, v, _ in sim.malformed())]
    msgs = [SourceMessage(topic, 0, i, v, k) for i, (k, v) in enumerate(raw)]
    run_main(build_building_flow(cfg, TestingSource(msgs, batch_size=1000), JsonlSink(tmp_path), tail=False,
                                 snapshots=False))
    compare("building", tmp_path)
