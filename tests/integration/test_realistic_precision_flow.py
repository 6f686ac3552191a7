"""Noise bursts and load regime changes through the whole plant flow (in-process Bytewax, no broker) raise no
fault alert, while faults at 0.25x of the easy sizes do, counted by :mod:`aiotstream.evaluation` as
``aiotstream evaluate --simulate realistic`` counts (issue 17: the calibrated window detector, its load
factor and persistence, and the scalar detector held during a load change). The same run with the old
z-score window detector (``[model] kind = "zscore"``) alerts on them: the test can fail."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from bytewax.testing import run_main

from aiotstream.config import default_site
from aiotstream.dataflow import build_flow
from aiotstream.evaluation.simulated import score_run
from aiotstream.io.files import JsonlSink
from aiotstream.io.simulator import SimulatorSource
from aiotstream.sim.realistic import RealisticPlantSimulator, RealisticSpec
from aiotstream.units import S

N = 4
# many nuisances in a short run: a burst every ~2 min and a load regime change every ~2.5 min per asset, no
# maintenance and no dropouts (their own tests), two of the four assets with a fault at 0.25x
SPEC = RealisticSpec(bursts_per_hour=30.0, regime_dwell_s=150.0, dropouts_per_hour=0.0,
                     maintenance_fraction=0.0)


def _run(tmp_path: Path, kind: str) -> tuple[dict, dict]:
    cfg = default_site(N, inputs={"tail": False}, model={"kind": kind},
                       assets=[{"id": f"asset-{i:03d}", "line": f"line-{i % 2 + 1}"} for i in range(N)])
    sim = RealisticPlantSimulator(cfg.all_assets(), duration_s=300.0, n_faults=2, seed=3, amplitude=0.25,
                                  spec=SPEC)
    out = tmp_path / kind
    out.mkdir()
    run_main(build_flow(cfg, SimulatorSource(sim.messages, cfg.site.id), JsonlSink(out), tail=False,
                        snapshots=False))
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines() if x]
    frame_ns = round(sim.frame_samples / sim.assets[0].sample_rate_hz * S)
    truth = sim.truth_dict()
    return truth, score_run(truth, alerts, lead_ns=frame_ns)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    return _run(tmp_path_factory.mktemp("calibrated"), "calibrated")


def test_the_run_has_bursts_and_regime_changes_on_clean_assets(calibrated: tuple[dict, dict]) -> None:
    truth, _ = calibrated
    faulty = {f["asset"] for f in truth["faults"]}
    kinds = [e["kind"] for e in truth["events"] if e["asset"] not in faulty]
    assert kinds.count("noise_burst") >= 3 and kinds.count("regime_change") >= 2, kinds


def test_bursts_and_regime_changes_raise_no_alert_and_faults_do(calibrated: tuple[dict, dict]) -> None:
    _, r = calibrated
    assert r["events"]["false_alerts"] == 0, r["false_alerts"]
    assert r["events"]["recall"] == 1.0, r["per_fault"]


def test_the_zscore_window_detector_alerts_on_them(tmp_path: Path) -> None:
    _, r = _run(tmp_path, "zscore")
    assert r["events"]["false_alerts"] >= 2, r["false_alerts"]
    assert {"noise_burst", "regime_change"} & set(r["false_alerts_near"]), r["false_alerts_near"]
