"""benchmarks.asset_calls: the per-call and per-reading cost of the pm flow's analyze step (a harness check:
the figures are the benchmark's, recorded in benchmarks/RESULTS.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import asset_calls


def test_each_call_size_is_measured_and_fitted(tmp_path: Path) -> None:
    out = tmp_path / "ac.jsonl"
    assert asset_calls.main(["--assets", "3", "--rows", "120", "--skip", "60", "--per-call", "1,4,12",
                             "--detector", "on,off", "--json", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    runs = [r for r in recs if "fit" not in r]
    fits = [r for r in recs if "fit" in r]
    assert [(r["detector"], r["per_call"]) for r in runs] == [
        ("on", 1), ("on", 4), ("on", 12), ("off", 1), ("off", 4), ("off", 12)]
    for r in runs:
        assert r["timed_readings"] == 3 * 60  # rows 60..119 of each asset
        assert r["calls"] == 3 * 60 // r["per_call"]
        assert r["cpu_us_a_reading"] > 0 and r["readings_per_s"] > 0
    # how the readings are cut into calls does not change what the flow puts out
    for det in ("on", "off"):
        assert len({r["outputs"] for r in runs if r["detector"] == det}) == 1
    assert next(r["outputs"] for r in runs if r["detector"] == "on") > \
        next(r["outputs"] for r in runs if r["detector"] == "off")  # (the scalar records)
    assert [f["detector"] for f in fits] == ["on", "off"]
    assert all(len(f["points"]) == 3 for f in fits)


def test_the_fit_recovers_a_known_split() -> None:
    pts = [(k, 2.5 + 7.0 / k) for k in (1, 3, 10, 30)]
    a, b = asset_calls.fit(pts)
    assert a == pytest.approx(2.5) and b == pytest.approx(7.0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        asset_calls.main(["--per-call", "0"])
    with pytest.raises(SystemExit):
        asset_calls.main(["--detector", "maybe"])
    with pytest.raises(SystemExit, match="--skip"):
        asset_calls.measure(2, 1, 10, 10, True)


def test_a_setting_reaches_the_site_and_longer_kpi_periods_mean_fewer_records() -> None:
    base = asset_calls.measure(2, 10, 200, 80, True, rate_hz=1.0)
    longer = asset_calls.measure(2, 10, 200, 80, True, rate_hz=1.0,
                                 settings=["scalar.block_s=60", "kpi.periods_s=[60]"])
    assert longer["settings"] == ["scalar.block_s=60", "kpi.periods_s=[60]"]
    # 120 s timed per asset: a KPI record and a scalar block per 10 s period by default, per 60 s with the setting
    assert base["outputs"] == 2 * 2 * 12
    assert longer["outputs"] == 2 * 2 * 2
    with pytest.raises(Exception, match="periods_s"):  # a bad value fails at load, naming the field
        asset_calls.measure(2, 10, 200, 80, True, settings=["kpi.periods_s=[0]"])
    with pytest.raises(SystemExit, match="path=value"):
        asset_calls.with_settings({}, ["kpi.periods_s"])
