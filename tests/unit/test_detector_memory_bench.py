"""benchmarks.detector_memory: one entry per detector with its figures (a harness check: the figures are
the benchmark's, recorded in benchmarks/RESULTS.md)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import detector_memory


def test_every_detector_gets_its_per_asset_figures(tmp_path: Path) -> None:
    out = tmp_path / "dm.json"
    assert detector_memory.main(["--assets", "2", "--rows", "8", "--full-rows", "60", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["detectors"]) == {"calibrated", "zscore", "hst", "streaming (1 channel)",
                                     "streaming (8 channels)"}
    for name, r in res["detectors"].items():
        assert r["held_bytes_per_asset"] > 0 and r["pickled_bytes"] > 0 and r["us_per_row"] > 0, name
        assert r["mb_per_1000_assets"] == round(r["held_bytes_per_asset"] * 1000 / 1e6, 2)
        assert r["pickled_full_bytes"] > 0
    # the HST trees are shared (built before the count): an asset holds its masses, not 3.8 MB of trees
    assert res["detectors"]["hst"]["held_bytes_per_asset"] < 100_000
    # the streaming detector's rings grow with its channels
    assert res["detectors"]["streaming (8 channels)"]["held_bytes_per_asset"] > \
        res["detectors"]["streaming (1 channel)"]["held_bytes_per_asset"]
    # a snapshot carries the part of its rings that is filled: 60 rows more than 4
    for ch in ("1 channel", "8 channels"):
        r = res["detectors"][f"streaming ({ch})"]
        assert r["pickled_full_bytes"] > r["pickled_bytes"], ch
