"""The whole flow in-process (Bytewax run_main, simulator source, no broker): outputs, ids, late data, state."""
from __future__ import annotations

import copy
import pickle
from collections import Counter

import pytest
from bytewax.testing import TestingSink, run_main

from aiotstream.codecs import encode_frame
from aiotstream.config import default_site
from aiotstream.dataflow import build_flow
from aiotstream.io.simulator import SimulatorSource
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Output, SourceMessage
from aiotstream.schemas import validator
from aiotstream.sim.plant import PlantSimulator, SimMessage

CFG = default_site(3, inputs={"tail": False}, kpi={"period_s": 5})


def run_flow(messages: list[SimMessage]) -> list[Output]:
    out: list[Output] = []
    run_main(build_flow(CFG, SimulatorSource(messages, CFG.site.id, batch=97), TestingSink(out), tail=False))
    return out


@pytest.fixture(scope="module")
def sim() -> PlantSimulator:
    return PlantSimulator(CFG.all_assets(), duration_s=40.0, n_faults=2, seed=3, warmup_s=22.0)


@pytest.fixture(scope="module")
def outputs(sim: PlantSimulator) -> list[Output]:
    return run_flow(list(sim.messages()))


def test_outputs_validate_and_cover_every_window(sim: PlantSimulator, outputs: list[Output]) -> None:
    v = validator()
    kinds = Counter(o.kind for o in outputs)
    for o in outputs:
        err = next(iter(v.iter_errors(o.record)), None)
        assert err is None, f"{o.kind}: {err.message} at {list(err.path)}"
        major = {"alert": 2, "kpi": 2}.get(o.kind, 1)
        assert o.record["schema"] == f"aiotstream.{o.kind}/{major}"
        if o.kind == "audit":  # keyed by its chain (the config load: chain "config")
            assert o.key == o.record["chain"]
            continue
        scope = o.record.get("scope", "asset")
        assert o.key == {"asset": o.record.get("asset"), "line": o.record.get("line"), "site": CFG.site.id}[scope]
    assert kinds["score"] == 3 * 40  # 3 assets x 40 one-second windows
    assert kinds["deadletter"] == 0
    kpis = [o.record for o in outputs if o.kind == "kpi"]
    for scope in ("asset", "line", "site"):  # every scope adds up to every frame, once
        assert sum(k["totals"]["frames"] for k in kpis if k["scope"] == scope) == sim.n_frames
    # 40 s in 5 s periods: 8 periods per asset (3), per line (2) and for the site
    assert Counter(k["scope"] for k in kpis) == {"asset": 24, "line": 16, "site": 8}


def test_ids_are_deterministic_across_runs(sim: PlantSimulator, outputs: list[Output]) -> None:
    again = run_flow(list(sim.messages()))
    assert sorted(o.record["id"] for o in again) == sorted(o.record["id"] for o in outputs)
    assert len({o.record["id"] for o in outputs}) == len(outputs)  # and unique
    # produced_at, the audit entries' wall_ns and the model's measured latency are wall-clock facts; everything
    # else must repeat exactly
    def strip(r: dict) -> dict:
        r = {k: v for k, v in r.items() if k not in ("produced_at", "wall_ns")}
        if "totals" in r:
            r["totals"] = {k: v for k, v in r["totals"].items() if not k.startswith("model_latency")}
            r["kpis"] = {k: v for k, v in r["kpis"].items() if k != "model_latency_ms"}
        return r

    assert sorted(map(str, (strip(o.record) for o in again))) == sorted(map(str, (strip(o.record) for o in outputs)))


def test_late_frame_is_dead_lettered_not_dropped(sim: PlantSimulator) -> None:
    msgs = list(sim.messages())
    asset = sim.assets[0].id
    # a frame from the first second of the run, sent after everything else: its window closed long ago
    old = next(m for m in msgs if m.asset == asset and m.stream == "waveform")
    late = SimMessage("waveform", asset, old.t_ns, old.payload)
    cut = len(msgs) * 3 // 4
    out = run_flow(msgs[:cut] + [late] + msgs[cut:])
    dead = [o.record for o in out if o.kind == "deadletter"]
    assert [d["reason"] for d in dead] == ["late"]
    assert dead[0]["asset"] == asset and dead[0]["payload_size"] == len(old.payload)
    assert sum(o.record["totals"]["late_inputs"] for o in out if o.kind == "kpi" and o.record["scope"] == "asset") == 1


def test_analyzer_state_survives_a_snapshot_round_trip(sim: PlantSimulator) -> None:
    """Resuming from a pickled snapshot gives the same outputs as running straight through."""
    rt = SiteRuntime(CFG)
    ingest = Ingestor(rt)
    msgs = [SourceMessage("t", 0, i, m.payload) for i, m in enumerate(sim.messages())]
    asset = sim.assets[1].id
    items = [it for _, it in (x for x in ingest.decode_batch(msgs) if isinstance(x, tuple)) if it.asset == asset]
    half = len(items) // 2

    straight = AssetAnalyzer(rt, asset)
    a = straight.on_items(items[:half], 0.0) + straight.on_items(items[half:], 0.0) + straight.flush()

    first = AssetAnalyzer(rt, asset)
    b = first.on_items(items[:half], 0.0)
    resumed = pickle.loads(pickle.dumps(copy.deepcopy(first))).attach(rt)
    b += resumed.on_items(items[half:], 0.0) + resumed.flush()
    assert [o.record["id"] for o in a] == [o.record["id"] for o in b]
    assert [o.record.get("score") for o in a] == [o.record.get("score") for o in b]


def test_config_mismatch_and_unknown_assets_become_dead_letters() -> None:
    rt = SiteRuntime(CFG)
    ingest = Ingestor(rt, now_ns=lambda: 1_767_225_600_000_000_000)
    import numpy as np

    t0 = 1_767_225_600_000_000_000
    good = encode_frame("asset-000", 0, t0, 10_000.0, np.zeros((3, 16), np.float32))
    two_ch = encode_frame("asset-000", 1, t0, 10_000.0, np.zeros((2, 16), np.float32))
    rate = encode_frame("asset-000", 2, t0, 8_000.0, np.zeros((3, 16), np.float32))
    stranger = encode_frame("nope", 3, t0, 10_000.0, np.zeros((3, 16), np.float32))
    future = encode_frame("asset-000", 4, t0 + 10**12, 10_000.0, np.zeros((3, 16), np.float32))
    out = ingest.decode_batch([SourceMessage("t", 0, i, b) for i, b in enumerate([good, two_ch, rate, stranger, future])])
    reasons = [x.record["reason"] for x in out if isinstance(x, Output)]
    assert reasons == ["shape_mismatch", "sample_rate_mismatch", "unknown_asset", "future_timestamp"]
    (key, frame), = [x for x in out if isinstance(x, tuple)]
    assert key == "asset-000" and frame.samples is None and frame.partials.shape == (3, 11) and frame.spectral is None


def test_spectral_feature_set_through_the_flow() -> None:
    """vibration-spectral with custom bands: band columns in every score, bands in the lineage, schema-valid,
    and a window's values equal the twins on its frames (time domain on the concatenated samples,
    spectral by the Welch rule)."""
    import numpy as np

    from aiotstream.features import reference

    bands = [[0, 100], [100, 1000], [1000, 5000]]
    cfg = default_site(1, inputs={"tail": False}, features={"set": "vibration-spectral", "bands": bands})
    sim = PlantSimulator(cfg.all_assets(), duration_s=4.0, n_faults=0, seed=5)
    out: list[Output] = []
    run_main(build_flow(cfg, SimulatorSource(list(sim.messages()), cfg.site.id, batch=13), TestingSink(out),
                        tail=False))
    v = validator()
    scores = sorted((o.record for o in out if o.kind == "score"), key=lambda r: r["window"]["start_ns"])
    assert len(scores) == 4
    for o in out:
        err = next(iter(v.iter_errors(o.record)), None)
        assert err is None, f"{o.kind}: {err.message} at {list(err.path)}"
    rec = scores[1]
    assert rec["features"] == {"set": "vibration-spectral", "version": 1,
                               "bands": [[0.0, 100.0], [100.0, 1000.0], [1000.0, 5000.0]]}
    assert {"x.band_0_100", "x.band_100_1000", "z.band_1000_5000", "y.centroid", "x.e1x"} <= set(rec["values"])
    # the twins on the same frames (frames belong to the window that holds their first sample)
    start, end = rec["window"]["start_ns"], rec["window"]["end_ns"]
    frames = np.stack([x for _, _, t0, x in sim.frames() if start <= t0 < end])  # (F, C, N) in time order
    whole = np.concatenate(list(frames), axis=1)  # (C, F*N)
    t_want = reference.time_features(whole)
    s_want = reference.window_spectral_features(frames, 10_000.0, bands, rpm=1800.0)
    for ci, ch in enumerate("xyz"):
        assert rec["values"][f"{ch}.kurtosis"] == pytest.approx(t_want[ci, 8], rel=1e-5, abs=1e-6)
        assert rec["values"][f"{ch}.zcr"] == pytest.approx(t_want[ci, 9], abs=1e-6)
        for bi, (lo, hi) in enumerate(bands):
            assert rec["values"][f"{ch}.band_{lo}_{hi}"] == pytest.approx(s_want[ci, bi], rel=1e-4, abs=1e-6)
        assert rec["values"][f"{ch}.dominant"] == pytest.approx(s_want[ci, 4], abs=1e-6)


def test_retransmitted_frames_count_once_and_show_in_the_run_summary(sim: PlantSimulator,
                                                                     outputs: list[Output]) -> None:
    """Issue 15 #3: a device retransmit (the same frame again, here 25 of them, some in the same poll batch,
    some much later) was counted twice in its window. Through the whole Bytewax flow, the scores hold every
    frame once, and the run summary says how many were dropped."""
    from aiotstream.runstats import STATS

    msgs = list(sim.messages())
    frames = [m for m in msgs if m.stream == "waveform"]
    again = frames[::len(frames) // 25][:25]
    mixed = msgs[:len(msgs) // 2] + again[:10] + msgs[len(msgs) // 2:] + again[10:]
    before = STATS.get("dropped", "duplicate_frame")
    out = run_flow(sorted(mixed, key=lambda m: m.t_ns))  # each retransmit right behind its original
    assert STATS.get("dropped", "duplicate_frame") - before == 25
    assert f"duplicate_frame {STATS.get('dropped', 'duplicate_frame'):,}" in STATS.summary()
    assert sum(o.record["frames"] for o in out if o.kind == "score") == sim.n_frames
    assert sorted(o.record["id"] for o in out) == sorted(o.record["id"] for o in outputs)
