"""``aiotstream evaluate --simulate realistic --site FILE --spec KEY=VALUE``: the site's own assets and detection
are evaluated (not the built-in site), and the scenario numbers given reach the simulator (its truth)."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from support import run_cli

pytestmark = pytest.mark.integration


def test_evaluate_runs_the_sites_assets_and_detection_under_the_given_scenario(tmp_path: Path) -> None:
    site = tmp_path / "site.json"
    site.write_bytes(orjson.dumps({
        "site": {"id": "eval-site"}, "assets": [{"id": "pump-a", "line": "l1"}, {"id": "pump-b", "line": "l1"}],
        "model": {"drift_detector": "none"},
        "outputs": {"parquet": {"directory": str(tmp_path / "lake"), "kinds": ["score", "alert"]}}}))
    # the lake is left out: evaluate writes JSONL
    out = tmp_path / "ev"
    run_cli("evaluate", "--simulate", "realistic", "--site", str(site), "--duration-s", "60", "--faults", "1",
            "--spec", "regimes=[1.0]", "--spec", "drift_fraction=1", "--spec", "drift_until_s=20",
            "--spec", "maintenance_fraction=0", "--no-plot", "--out", str(out), "--json", str(tmp_path / "r.json"))
    truth = orjson.loads((out / "truth.json").read_bytes())
    assert {f["asset"] for f in truth["faults"]} <= {"pump-a", "pump-b"} and len(truth["faults"]) == 1
    assert truth["spec"]["regimes"] == [1.0] and truth["spec"]["drift_until_s"] == 20
    drift = [e for e in truth["events"] if e["kind"] == "sensor_drift"]
    assert sorted(e["asset"] for e in drift) == ["pump-a", "pump-b"]
    assert all(e["end_ns"] - e["onset_ns"] == 20 * 10**9 for e in drift)
    scores = [orjson.loads(x) for x in (out / "scores.jsonl").read_bytes().splitlines()]
    assert {s["asset"] for s in scores} == {"pump-a", "pump-b"} and {s["site"] for s in scores} == {"eval-site"}
    assert not (tmp_path / "lake").exists()
    assert orjson.loads((tmp_path / "r.json").read_bytes())["mode"] == "simulate"
