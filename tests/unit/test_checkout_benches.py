"""The benchmarks that run replays of each checkout in turn (benchmarks.common.alternate_checkouts):
benchmarks.snapshots (a replay with --recovery, its live snapshots read from the store, a resume) and
benchmarks.startup. Harness checks: the figures are the benchmarks', recorded in benchmarks/RESULTS.md."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import snapshots, startup


def test_a_replay_and_a_resume_with_their_snapshots(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    assert snapshots.main(["--assets", "3", "--readings", "12", "--rounds", "1", "--json", str(out)]) == 0
    *runs, summary = [json.loads(line) for line in out.read_text().splitlines()]
    (r,) = runs
    # one snapshot per asset (and a few of the flow's other keyed steps), read from the SQLite store
    assert r["snapshot_rows"] >= 3 and r["snapshot_bytes"] > 0
    assert r["recovery_dir_bytes"] >= r["snapshot_bytes"]
    assert r["snapshot_bytes_per_asset"] == round(r["snapshot_bytes"] / 3)
    assert r["replay_wall_s"] > 0 and r["resume_wall_s"] > 0 and r["same_outputs"] is True
    assert summary["all_outputs_same"] is True
    (t,) = summary["trees"].values()
    assert t["snapshot_bytes_ratio_to_first"] == 1.0


def test_startup_runs_each_checkout_and_compares_their_outputs(tmp_path: Path) -> None:
    out = tmp_path / "st.jsonl"
    assert startup.main(["--assets", "20", "--rounds", "2", "--json", str(out)]) == 0
    *runs, summary = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["round"] for r in runs] == [0, 1] and all(r["same_outputs"] and r["wall_s"] > 0 for r in runs)
    (t,) = summary["trees"].values()
    assert t["wall_s_ratio_to_first"] == 1.0 and t["cpu_s_median"] > 0 and summary["assets"] == 20
