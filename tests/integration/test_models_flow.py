"""ONNX models in the flow: batched scoring across assets, shadow, hot swap on the broker, a refused tampered
artifact, and drift alerts with retrain requests.

The models are trained here (small: 6 assets x 30 s of healthy simulator data) and signed with a key
made for the test, so nothing is downloaded.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from bytewax.testing import TestingSink, run_main
from support import Follow, stable, start_flow, stop_flow

from aiotstream.audit import verify
from aiotstream.config import SiteConfig, default_site
from aiotstream.dataflow import build_flow
from aiotstream.io.kafka import ensure_topics, input_topics, make_producer, output_topics
from aiotstream.io.simulator import SimulatorSource, write_to_kafka
from aiotstream.models.registry import ModelRegistry, generate_keypair
from aiotstream.pdm.training import train_and_publish
from aiotstream.schemas import validator
from aiotstream.sim.plant import Fault, PlantSimulator

pytestmark = pytest.mark.integration

S = 1_000_000_000
N_ASSETS = 4


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Versions 1.0.0 (IsolationForest), 1.0.0-ae, 1.0.0-int8, and 2.0.0: signed, then its bytes altered."""
    d = tmp_path_factory.mktemp("registry")
    priv, pub = generate_keypair(d / "keys")
    reg = ModelRegistry(d / "reg", verify_key=pub)
    train_and_publish(default_site(6), reg, "pm", "1.0.0", duration_s=30.0, seed=1, signing_key=priv,
                      n_estimators=50)
    ae = reg.load("pm", "1.0.0-ae")
    m = ae.manifest
    reg.publish("pm", "2.0.0", ae.onnx_bytes, feature_names=list(m.feature_names), training_data=m.training_data,
                metrics=m.metrics, score=m.score, signing_key=priv)
    onnx_path = reg.path("pm", "2.0.0") / "model.onnx"
    blob = bytearray(onnx_path.read_bytes())
    blob[-5] ^= 0xFF  # one flipped byte in a weight: the hash no longer matches the signed manifest
    onnx_path.write_bytes(bytes(blob))
    return {"root": d / "reg", "pub": pub}


def onnx_site(registry: dict[str, Path], site_id: str, **onnx: object) -> dict:
    data = default_site(N_ASSETS, site_id=site_id, inputs={"tail": False}).model_dump(mode="json")
    data["model"] = {"kind": "onnx", "name": "pm", "version": "1.0.0", "drift_detector": "none",
                     "onnx": {"registry": str(registry["root"]), "verify_key": str(registry["pub"]),
                              "max_batch": 64, "max_delay_ms": 50, **onnx}}
    return data


def test_every_window_is_scored_once_by_the_batcher_with_its_shadow(registry: dict[str, Path]) -> None:
    cfg = SiteConfig.from_dict(onnx_site(registry, "onnx-a", shadow="1.0.0-int8"))
    probe = PlantSimulator(cfg.all_assets(), duration_s=1.0, n_faults=0, seed=5)
    onset = probe.start_ns + 30 * S
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=5,
                         faults=[Fault("asset-001", "imbalance", onset, None, None)])
    out: list = []
    run_main(build_flow(cfg, SimulatorSource(list(sim.messages()), cfg.site.id, batch=97), TestingSink(out),
                        tail=False))
    v = validator()
    for o in out:
        err = next(iter(v.iter_errors(o.record)), None)
        assert err is None, f"{o.kind}: {err.message}"
    scores = [o.record for o in out if o.kind == "score"]
    windows = Counter((r["asset"], r["window"]["start_ns"]) for r in scores)
    expected = {(m.asset, m.t_ns // S * S) for m in sim.messages() if m.stream == "waveform"}
    assert set(windows) == expected and max(windows.values()) == 1  # none lost, none twice
    assert {(r["model"]["version"], r["model"]["variant"], r["model"]["kind"]) for r in scores} == {
        ("1.0.0", "champion", "onnx")}
    assert {r["shadow"]["model"]["version"] for r in scores} == {"1.0.0-int8"}
    assert max(r["latency"]["batch_rows"] for r in scores) > 1  # rows of several assets per call
    # the model sees the imbalance: the faulty asset's windows after the onset score above its own before
    mine = [r for r in scores if r["asset"] == "asset-001"]
    before = [r["score"] for r in mine if r["window"]["end_ns"] <= onset]
    after = [r["score"] for r in mine if r["window"]["start_ns"] >= onset + 5 * S]
    assert sum(after) / len(after) > sum(before) / len(before) + 0.25
    assert any(o.kind == "alert" and o.record["asset"] == "asset-001" and o.record["event"] == "opened" for o in out)
    # per-variant KPIs: the site roll-ups carry champion and shadow, with every scored window counted once
    site = [o.record for o in out if o.kind == "kpi" and o.record["scope"] == "site"]
    assert sum(k["variants"]["shadow"]["windows"] for k in site) == len(scores)
    assert sum(k["variants"]["champion"]["windows"] for k in site) == len(scores)


def test_a_tampered_champion_stops_the_flow_at_start_with_the_reason(registry: dict[str, Path]) -> None:
    from aiotstream.errors import ModelRefused

    cfg = SiteConfig.from_dict({**onnx_site(registry, "onnx-b"), "model": {
        **onnx_site(registry, "onnx-b")["model"], "version": "2.0.0"}})
    with pytest.raises(ModelRefused, match="sha256"):
        build_flow(cfg, SimulatorSource([], cfg.site.id), TestingSink([]), tail=False)


# ---- hot swap on the broker -----------------------------------------------------------------------------------
def test_hot_swap_while_running_no_window_lost_or_scored_twice_and_a_tampered_artifact_is_refused(
        kafka_broker: str, registry: dict[str, Path], tmp_path: Path) -> None:
    data = onnx_site(registry, "it-swap")
    data["inputs"]["tail"] = True
    # a stream silent for idle_close_s while another delivers stops holding the watermark back; with 2 s, a
    # loaded CI run dead-lettered the whole second half as late (704 of them): most likely one topic of the
    # second half was read over 2 s before the other
    data["window"] = {"idle_close_s": 6}
    site = tmp_path / "site.json"
    site.write_bytes(orjson.dumps(data))
    cfg = SiteConfig.load(site)
    sim = PlantSimulator(cfg.all_assets(), duration_s=40.0, seed=8, n_faults=0)
    msgs = list(sim.messages())
    split = sim.start_ns + 20 * S
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    assert cfg.control_topics() == ["it-swap.control"]
    wave, read = cfg.inputs.topics
    write_to_kafka((m for m in msgs if m.t_ns < split), kafka_broker, wave, read)
    log = tmp_path / "flow.log"
    proc = start_flow(site, kafka_broker, log)
    out = Follow(kafka_broker, topics, group="it-models")
    n_first = len({(m.asset, m.t_ns // S) for m in msgs if m.stream == "waveform" and m.t_ns < split - 2 * S})
    try:
        out.wait_for("scores of the first half", lambda: len(out.records["score"]) >= n_first, proc, log)
        p = make_producer(kafka_broker)
        for version in ("2.0.0", "1.0.0-ae"):  # the tampered artifact first, then a good one
            p.produce("it-swap.control", orjson.dumps({"type": "promote", "version": version,
                                                       "variant": "champion", "by": "ops"}), key=b"pm")
        assert p.flush(10) == 0
        out.wait_for("the refusal and the promotion", lambda: len(out.records["model"]) >= 2, proc, log)
        write_to_kafka((m for m in msgs if m.t_ns >= split), kafka_broker, wave, read)
        expected = {(m.asset, m.t_ns // S * S) for m in msgs if m.stream == "waveform"}
        out.wait_for("every window's score",
                 lambda: {(r["asset"], r["window"]["start_ns"]) for r in out.records["score"]} >= expected, proc, log)
        time.sleep(2)  # anything scored twice would show up by now
        out.poll()
    finally:
        stop_flow(proc)
    out.c.close()

    refused, promoted = sorted(out.records["model"], key=lambda r: r["source"]["offset"])
    assert refused["event"] == "refused" and refused["ref"] == "pm@2.0.0" and "sha256" in refused["reason"]
    assert promoted["event"] == "promoted" and promoted["ref"] == "pm@1.0.0-ae" and promoted["by"] == "ops"
    assert refused["model"] is None and promoted["model"]["version"] == "1.0.0-ae"
    # the audit trail: both control messages, by their sender, in the control partition's chain, in order
    models = [(e["chain"], e["principal"], e["what"], e["details"]["ref"]) for e in out.records["audit"]
              if e["what"].startswith("model.")]
    chain = f"input:it-swap.control:{refused['source']['partition']}"
    assert models == [(chain, "ops", "model.refused", "pm@2.0.0"), (chain, "ops", "model.champion", "pm@1.0.0-ae")]
    assert verify(out.records["audit"]).problem is None
    scores = out.records["score"]
    windows = Counter((r["asset"], r["window"]["start_ns"]) for r in scores)
    assert set(windows) == expected and max(windows.values()) == 1, "a window was lost or scored twice"
    # per asset, in window order: the old champion, then the new one; never back, never the tampered one
    for asset in {a for a, _ in expected}:
        versions = [r["model"]["version"] for r in sorted(scores, key=lambda r: r["window"]["start_ns"])
                    if r["asset"] == asset]
        switch = versions.index("1.0.0-ae")
        assert 0 < switch and set(versions[:switch]) == {"1.0.0"} and set(versions[switch:]) == {"1.0.0-ae"}, asset
    v = validator()
    for kind, recs in out.records.items():
        for r in recs:
            err = next(iter(v.iter_errors(r)), None)
            assert err is None, f"{kind}: {err.message}"


# ---- drift ----------------------------------------------------------------------------------------------------
DRIFT_DELAY_WINDOWS = 30  # KSWIN tests the newest 30 windows (drift_stat_size) against older ones


def drift_run(shifted: bool, seed: int) -> tuple[list, int]:
    cfg = default_site(2, site_id="drift", inputs={"tail": False},
                       model={"drift_detector": "kswin", "drift_delta": 1e-4, "drift_features": ["x.rms"],
                              "drift_stat_size": DRIFT_DELAY_WINDOWS})
    probe = PlantSimulator(cfg.all_assets(), duration_s=1.0, n_faults=0, seed=seed)
    onset = probe.start_ns + 150 * S
    faults = [Fault("asset-001", "imbalance", onset, None, None)] if shifted else []
    sim = PlantSimulator(cfg.all_assets(), duration_s=300.0, seed=seed, faults=faults)
    out: list = []
    run_main(build_flow(cfg, SimulatorSource(list(sim.messages()), cfg.site.id, batch=211), TestingSink(out),
                        tail=False))
    return out, onset


@pytest.mark.parametrize("seed", [2, 3])
def test_a_known_shift_raises_a_drift_alert_and_a_retrain_request_and_a_stationary_stream_none(seed: int) -> None:
    calm, _ = drift_run(False, seed)
    assert not [o for o in calm if o.kind == "alert" and o.record["alert_type"] == "drift"]
    assert not [o for o in calm if o.kind == "model"]
    out, onset = drift_run(True, seed)
    drift_alerts = [o.record for o in out if o.kind == "alert" and o.record["alert_type"] == "drift"
                    and o.record["event"] == "opened"]
    requests = [o.record for o in out if o.kind == "model" and o.record["event"] == "retrain_request"]
    x_rms = [r for r in requests if r["feature"] == "x.rms"]
    assert x_rms and {r["asset"] for r in x_rms} == {"asset-001"}
    first = min(x_rms, key=lambda r: r["window_range"][1])
    assert onset <= first["window_range"][1] <= onset + (DRIFT_DELAY_WINDOWS + 1) * S
    assert first["window_range"][0] < onset and first["detector"] == "kswin"
    assert [a["asset"] for a in drift_alerts] == ["asset-001"]
    assert drift_alerts[0]["detail"]["signal"] in {"x.rms", "score"}
    v = validator()
    for r in requests + drift_alerts:
        assert next(iter(v.iter_errors(r)), None) is None


def test_windows_waiting_for_their_score_survive_a_snapshot_and_are_scored_once_after_the_resume(
        registry: dict[str, Path]) -> None:
    """A snapshot taken while windows wait in the batcher; the resumed analyzer (a new process: a new
    batcher that never saw them) resubmits them and decides exactly as the original would have."""
    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime

    cfg = SiteConfig.from_dict(onnx_site(registry, "onnx-r", max_delay_ms=60_000, max_batch=10_000))
    sim = PlantSimulator(cfg.all_assets()[:1], duration_s=20.0, seed=4, n_faults=0)
    rt = SiteRuntime(cfg)
    msgs = [m for m in sim.messages()]
    from aiotstream.records import SourceMessage

    topics = {"waveform": cfg.inputs.topics[0], "reading": cfg.inputs.topics[-1]}
    items = [x[1] for x in Ingestor(rt, now_ns=lambda: sim.end_ns + 10**13).decode_batch(
        [SourceMessage(topics[m.stream], 0, i, m.payload) for i, m in enumerate(msgs)])]
    first = [i for i in items if getattr(i, "t0_ns", getattr(i, "ts_ns", 0)) < sim.start_ns + 12 * S]
    rest = items[len(first):]

    logic = AnalyzerLogic(rt, None, None)
    early, _ = logic.on_batch([first])
    assert logic.analyzer.pending and not [o for o in early if o.kind == "score"]  # all waiting (max_delay 60 s)
    snap = logic.snapshot()
    original = early + logic.on_batch([rest])[0] + logic.on_eof()[0]
    resumed_rt = SiteRuntime(cfg)  # a restarted process
    resumed = AnalyzerLogic(resumed_rt, snap, None)
    replay = resumed.on_batch([rest])[0] + resumed.on_eof()[0]
    scores = [o.record for o in original if o.kind == "score"]
    assert len({r["window"]["start_ns"] for r in scores}) == len(scores) > 10
    assert [(o.kind, stable(o.record)) for o in replay] == [(o.kind, stable(o.record)) for o in original
                                                             if o not in early]
    assert resumed_rt.models.batcher.rows == len(scores)  # every window scored once in the new process


def test_scores_reach_a_waiting_asset_while_another_asset_of_the_worker_runs(registry: dict[str, Path]) -> None:
    """Asset A's rows wait in the batcher; asset B's batch fills it (``max_batch``): B's activation scores the
    batch and runs A's decisions too, so A does not wait for Bytewax to activate it again. Every window is
    decided exactly once, and the same as when each asset waits for its own turn (nothing changed but who
    hands over the scores)."""
    from aiotstream.dataflow.plant import AnalyzerLogic
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime
    from aiotstream.records import SourceMessage

    def decoded(cfg: SiteConfig) -> dict[str, list]:
        sim = PlantSimulator(cfg.all_assets()[:2], duration_s=12.0, seed=4, n_faults=0)
        topics = {"waveform": cfg.inputs.topics[0], "reading": cfg.inputs.topics[-1]}
        msgs = [SourceMessage(topics[m.stream], 0, i, m.payload) for i, m in enumerate(sim.messages())]
        by_asset: dict[str, list] = {}
        for asset, item in Ingestor(SiteRuntime(cfg), now_ns=lambda: sim.end_ns + 10**13).decode_batch(msgs):
            by_asset.setdefault(asset, []).append(item)
        return by_asset

    def run(max_batch: int) -> tuple[list, list, list, int]:
        cfg = SiteConfig.from_dict(onnx_site(registry, "onnx-d", max_delay_ms=60_000, max_batch=max_batch))
        items = decoded(cfg)
        a, b = sorted(items)
        rt = SiteRuntime(cfg)
        la, lb = AnalyzerLogic(rt, None, None), AnalyzerLogic(rt, None, None)
        first_a, _ = la.on_batch([items[a]])
        waiting_a = len(la.analyzer.pending)
        first_b, _ = lb.on_batch([items[b]])
        rest = la.on_notify()[0] + lb.on_notify()[0] + la.on_eof()[0] + lb.on_eof()[0]
        return first_a, first_b, rest, waiting_a

    *alone, n_a = run(max_batch=10_000)  # a batcher that never fills: everything is scored at end of input
    assert n_a >= 8
    first_a, first_b, rest, _ = run(max_batch=n_a + 5)  # B's 5th row fills the batch
    assert not [o for o in first_a if o.kind == "score"]  # A's rows wait (max_delay 60 s)
    handed = [o.record for o in first_b if o.kind == "score"]
    a, b = sorted({r["asset"] for r in handed})
    assert len([r for r in handed if r["asset"] == a]) == n_a  # all of A's, from B's activation
    assert len([r for r in handed if r["asset"] == b]) == 5
    scores = [o.record for o in first_a + first_b + rest if o.kind == "score"]
    assert max(Counter((r["asset"], r["window"]["start_ns"]) for r in scores).values()) == 1
    # the same scores and alerts as when every window waits for the end of input (the ids differ: the
    # config, max_batch included, is part of them)
    def decisions(outs: list) -> tuple[dict, list]:
        return ({(o.record["asset"], o.record["window"]["start_ns"]): o.record["score"] for o in outs
                 if o.kind == "score"},
                sorted((o.record["asset"], o.record["type"], o.record["event"], o.record["opened_at"])
                       for o in outs if o.kind == "alert"))
    assert decisions(first_a + first_b + rest) == decisions([o for part in alone for o in part])


def test_two_workers_each_batch_their_own_assets_and_score_like_one(registry: dict[str, Path]) -> None:
    """Two workers in one process (threads): each has its own batcher and hands scores only to its own
    assets; every window is scored once, with the scores and alerts of a one-worker run."""
    from bytewax.testing import cluster_main

    cfg = SiteConfig.from_dict(onnx_site(registry, "onnx-w", max_batch=16))
    sim = PlantSimulator(cfg.all_assets(), duration_s=40.0, seed=6,
                         faults=[Fault("asset-002", "imbalance", PlantSimulator(
                             cfg.all_assets(), duration_s=1.0, n_faults=0, seed=6).start_ns + 20 * S, None, None)])
    msgs = list(sim.messages())

    def run(workers: int) -> list:
        out: list = []
        flow = build_flow(cfg, SimulatorSource(msgs, cfg.site.id, batch=53), TestingSink(out), tail=False)
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers)
        return out

    def decisions(out: list) -> tuple[Counter, dict, list]:
        scores = [o.record for o in out if o.kind == "score"]
        return (Counter((r["asset"], r["window"]["start_ns"]) for r in scores),
                {(r["asset"], r["window"]["start_ns"]): r["score"] for r in scores},
                sorted(stable(o.record)["id"] for o in out if o.kind == "alert"))

    from aiotstream.routing import worker_of

    assert sorted(worker_of(a.id, 2) for a in cfg.all_assets()) == [0, 0, 1, 1]  # both workers hold assets
    one, two = decisions(run(1)), decisions(run(2))
    assert max(two[0].values()) == 1 and set(two[0]) == set(one[0])  # none lost, none twice
    assert two[1] == one[1] and two[2] == one[2] and two[2]  # same scores and alerts (some alerts)
