"""The window detector of an asset is made at its first window of frames (AssetAnalyzer.detector).

An asset of scalar readings only never makes one (nor imports scipy.special for it: ~0.2 s of CPU at the
flow's first window). The detector made late must be the one made with the asset: same scores, same outputs;
a snapshot from before the change (the detector in the state) keeps its own; a maintenance reset's new one
replaces it.
"""
from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from aiotstream.config import SiteConfig
from aiotstream.models.online import make_detector
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Frame, Position, Reading
from tests.unit.test_analysis_decisions import START, Plant, plant_items, site

S = 1_000_000_000


def _readings_site() -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "lz"}, "assets": [{"id": "p1", "line": "l1"}], "inputs": {"tail": False},
        "model": {"drift_detector": "none"}, "scalar": {"enabled": True, "readings_only": True},
    })


def _readings(seconds: int) -> list[Reading]:
    rng = np.random.default_rng(3)
    return [Reading("p1", START + s * S + 5 * i, m, float(v), Position("sc.readings", 0, s * 2 + i))
            for s in range(seconds) for i, (m, v) in enumerate(zip(("a", "b"), rng.normal(size=2)))]


def test_an_asset_of_readings_only_makes_no_window_detector() -> None:
    a = AssetAnalyzer(SiteRuntime(_readings_site()), "p1")
    outs = a.on_items(_readings(40), None) + a.flush()
    assert any(o.kind == "scalar" for o in outs)  # the asset ran: its rows were scored
    assert "detector" not in a.__dict__
    state = pickle.loads(pickle.dumps(a))
    assert "detector" not in state.__dict__
    # asked for, it is made then (and kept): the configured kind, warm-up not begun
    rt = SiteRuntime(_readings_site())
    state.attach(rt)
    d = state.detector
    assert d is state.detector and type(d) is type(make_detector(rt.config.model.kind, state.columns))
    assert not d.warm


def test_no_scipy_special_for_a_flow_of_readings_only() -> None:
    code = (
        "import sys\n"
        "from tests.unit.test_lazy_window_detector import _readings, _readings_site\n"
        "from aiotstream.pdm.asset import AssetAnalyzer\n"
        "from aiotstream.pdm.runtime import SiteRuntime\n"
        "a = AssetAnalyzer(SiteRuntime(_readings_site()), 'p1')\n"
        "a.on_items(_readings(30), None); a.flush()\n"
        "print('scipy.special' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _timeless(v: Any) -> Any:
    """A record without its wall-clock fields (produced_at, model latencies)."""
    if isinstance(v, dict):
        return {k: _timeless(x) for k, x in v.items() if k != "produced_at" and "latency" not in k}
    return [_timeless(x) for x in v] if isinstance(v, list) else v


def _records(outs: list[Any]) -> list[tuple[str, Any]]:
    return [(o.kind, _timeless(o.record)) for o in outs]


@pytest.mark.parametrize("kind", ["zscore", "calibrated", "hst"])
def test_a_detector_made_at_the_first_frame_scores_as_one_made_with_the_asset(kind: str) -> None:
    cfg = site(model={"kind": kind})
    late, early = Plant(cfg), Plant(cfg)
    # the asset made its detector with itself (the code before the change): set before any input
    early.a.detector = make_detector(kind, early.a.columns, warmup=cfg.model.warmup_windows,
                                     n_trees=cfg.model.n_trees, height=cfg.model.height,
                                     window_size=cfg.model.window_size, seed=cfg.model.seed)
    assert "detector" not in late.a.__dict__
    # a few readings first (no frame): still none made
    readings = [i for i in plant_items() if isinstance(i, Reading) and i.ts_ns < START + 3 * S]
    assert readings and not any(isinstance(i, Frame) for i in readings)
    late.a.on_items(readings, 0.0)
    early.a.on_items(list(readings), 0.0)
    assert "detector" not in late.a.__dict__
    late.fed_until = early.fed_until = START + 3 * S
    for sec in range(4, 60):
        assert _records(late.feed_until(START + sec * S)) == _records(early.feed_until(START + sec * S))
    assert "detector" in late.a.__dict__
    assert any(o.kind == "score" for o in late.outs)


def test_a_snapshot_keeps_its_detector_and_a_reset_replaces_it() -> None:
    p = Plant(site())
    p.feed_until(START + 20 * S)
    learnt = p.a.detector
    assert learnt.warm  # 10 windows of warm-up in this site
    back = pickle.loads(pickle.dumps(p.a)).attach(p.rt)
    assert back.__dict__["detector"] is not learnt  # its own copy, from the state
    assert np.array_equal(back.detector.mean, learnt.mean)  # type: ignore[attr-defined]
    back.detector = fresh = make_detector("zscore", back.columns)
    assert back.detector is fresh and back.__dict__["detector"] is fresh
