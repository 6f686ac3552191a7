"""The model loop end to end on the real broker (issue 20): an ageing asset -> drift -> retrain request ->
dataset frozen from the Parquet lake -> candidate trained and gated -> shadow -> canary -> champion, with no
person; and a bad candidate (trained on faulty data) rolled back with the reason.

The plant is the ``realistic`` simulator with one asset whose vibration sensor gain rises by about 2x over
150 s and then stays (ageing that settles, ``RealisticSpec.drift_until_s``); load regimes, bursts, dropouts
and maintenance are off so that ageing is the only change. The champion is an autoencoder trained on the same
plant's healthy data before the ageing. The data is written to Kafka paced at PACE x real time while the flow
(``aiotstream run``) and the service (``aiotstream retrain --once``) run as their own processes.
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from support import Follow, cli, start_flow, stop_flow

from aiotstream.audit import verify
from aiotstream.config import SiteConfig, default_site
from aiotstream.io.kafka import ensure_topics, input_topics, output_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.models.registry import ModelRegistry, generate_keypair
from aiotstream.pdm.training import train_and_publish, training_config, window_rows
from aiotstream.schemas import validator
from aiotstream.sim.plant import PlantSimulator
from aiotstream.sim.realistic import RealisticPlantSimulator, RealisticSpec

pytestmark = pytest.mark.integration

S = 1_000_000_000
N_ASSETS = 4
SEED = 3  # with drift_fraction 0.3, seed 3 ages asset-001 alone (checked below)
PACE = 8.0  # event seconds per wall second
QUIET = {"diurnal_amp": 0.0, "weekly_amp": 0.0, "ambient_c": 0.0, "regimes": (1.0,), "bursts_per_hour": 0.0,
         "dropouts_per_hour": 0.0, "maintenance_fraction": 0.0, "drift_temp_c_per_day": (0.0, 0.0)}
AGEING = RealisticSpec(**QUIET, drift_fraction=0.3, drift_gain_per_day=(800.0, 900.0), drift_until_s=150.0)


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A registry with the champion ``pm@1.0.0-ae`` (trained on 120 s of the plant's healthy data) and a bad
    candidate ``pm@9.0.0-ae`` (trained on windows of the plant's assets while each has an imbalance fault)."""
    d = tmp_path_factory.mktemp("loop")
    priv, pub = generate_keypair(d / "keys")
    reg = ModelRegistry(d / "reg", verify_key=pub)
    base = default_site(N_ASSETS, site_id="loop-train")
    tcfg = training_config(base)
    healthy = RealisticPlantSimulator(tcfg.all_assets(), duration_s=120.0, n_faults=0, seed=SEED,
                                      spec=RealisticSpec(**QUIET, drift_fraction=0.0))
    train_and_publish(base, reg, "pm", "1.0.0", rows=window_rows(tcfg, healthy), signing_key=priv,
                      n_estimators=50)
    from aiotstream.sim.plant import Fault

    probe = PlantSimulator(tcfg.all_assets(), duration_s=1.0, n_faults=0, seed=SEED)
    faulty = PlantSimulator(tcfg.all_assets(), duration_s=120.0, seed=SEED,
                            faults=[Fault(a.id, "imbalance", probe.start_ns, None, None) for a in tcfg.all_assets()])
    train_and_publish(base, reg, "pm", "9.0.0", rows=window_rows(tcfg, faulty), signing_key=priv, n_estimators=50)
    return {"root": d / "reg", "pub": pub, "priv": priv, "dir": d}


def loop_site(plant: dict[str, Path], tmp: Path, site_id: str, *, gate: bool) -> Path:
    data = default_site(N_ASSETS, site_id=site_id).model_dump(mode="json")
    data["inputs"]["tail"] = True
    data["window"] = {"idle_close_s": 6}
    onnx: dict = {"registry": str(plant["root"]), "verify_key": str(plant["pub"]), "max_batch": 64,
                  "max_delay_ms": 50,
                  "loop": {"datasets": str(tmp / "datasets"), "lookback_s": 120, "settle_s": 40, "min_rows": 100,
                           "canary_fraction": 0.5, "min_pairs": 60, "max_pairs": 4000, "cooldown_s": 0}}
    if gate:  # the gate's simulated held-out set is the same plant (seed), with faults
        onnx["gate"] = {"metric": "auc", "threshold": 0.7, "assets": N_ASSETS, "duration_s": 120, "faults": 2,
                        "seed": SEED}
    data["model"] = {"kind": "onnx", "name": "pm", "version": "1.0.0-ae", "drift_detector": "kswin",
                     "drift_delta": 1e-4, "drift_features": ["x.rms", "y.rms"], "onnx": onnx}
    data["outputs"] = {**data.get("outputs", {}), "parquet": {"directory": str(tmp / "lake"),
                                                              "kinds": ["score", "alert"]}}
    path = tmp / f"{site_id}.json"
    path.write_bytes(orjson.dumps(data))
    return path


class Pacer(threading.Thread):
    """Writes the simulator's messages to Kafka in 5 s slices of event time, PACE x real time."""

    def __init__(self, sim: PlantSimulator, brokers: str, wave: str, read: str):
        super().__init__(daemon=True)
        self.msgs = list(sim.messages())
        self.start_ns = sim.start_ns
        self.brokers, self.wave, self.read = brokers, wave, read
        self.stop = threading.Event()
        self.sent_s = 0.0

    def run(self) -> None:
        t0 = time.monotonic()
        i = 0
        while i < len(self.msgs) and not self.stop.is_set():
            edge = self.start_ns + round((self.sent_s + 5.0) * S)
            j = i
            while j < len(self.msgs) and self.msgs[j].t_ns < edge:
                j += 1
            write_to_kafka(self.msgs[i:j], self.brokers, self.wave, self.read)
            i, self.sent_s = j, self.sent_s + 5.0
            lag = t0 + self.sent_s / PACE - time.monotonic()
            if lag > 0:
                self.stop.wait(lag)


def run_loop(kafka_broker: str, plant: dict[str, Path], tmp: Path, site_id: str, *, gate: bool,
             extra: tuple[str, ...] = (), duration_s: float = 900.0) -> dict:
    site = loop_site(plant, tmp, site_id, gate=gate)
    cfg = SiteConfig.load(site)
    sim = RealisticPlantSimulator(cfg.all_assets(), duration_s=duration_s, n_faults=0, seed=SEED, spec=AGEING)
    ageing = [e for e in sim.events if e.kind == "sensor_drift"]
    assert [e.asset for e in ageing] == ["asset-001"]
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    flow_log, loop_log = tmp / f"{site_id}-flow.log", tmp / f"{site_id}-loop.log"
    flow = start_flow(site, kafka_broker, flow_log, "--recovery", str(tmp / f"{site_id}-recovery"))
    pacer = Pacer(sim, kafka_broker, wave, read)
    out = Follow(kafka_broker, topics, group=f"it-{site_id}")
    with loop_log.open("w") as lf:
        service = subprocess.Popen(cli("retrain", "--site", str(site), "--brokers", kafka_broker, "--signing-key",
                                       str(plant["priv"]), "--state", str(tmp / f"{site_id}-state.json"),
                                       "--once", *extra), stdout=subprocess.PIPE, stderr=lf)
    pacer.start()
    try:
        deadline = time.monotonic() + duration_s / PACE + 120
        while service.poll() is None and time.monotonic() < deadline:
            out.poll()
            if flow.poll() is not None:
                raise AssertionError(f"the flow exited: {flow_log.read_text()[-3000:]}")
        assert service.poll() is not None, (f"the loop did not end; sent {pacer.sent_s:.0f} s; "
                                            f"{loop_log.read_text()[-3000:]}")
        stdout = service.stdout.read() if service.stdout else b""
        assert service.returncode == 0, loop_log.read_text()[-3000:]
        time.sleep(3)  # the last promotions' effects
        for _ in range(20):
            out.poll()
    finally:
        pacer.stop.set()
        if service.poll() is None:
            service.kill()
        stop_flow(flow)
    out.c.close()
    return {"cfg": cfg, "sim": sim, "out": out, "finished": [orjson.loads(x) for x in stdout.splitlines()],
            "loop_log": loop_log.read_text(), "sent_s": pacer.sent_s}


def test_an_ageing_asset_is_retrained_on_recorded_data_judged_and_promoted_without_a_person(
        kafka_broker: str, plant: dict[str, Path], tmp_path: Path) -> None:
    from aiotstream.datasets import DatasetStore
    from aiotstream.models.card import CardLog

    r = run_loop(kafka_broker, plant, tmp_path, "loop-age", gate=True)
    out, sim = r["out"], r["sim"]
    assert [f["event"] for f in r["finished"]] == ["champion"], r["loop_log"][-3000:]
    candidate = r["finished"][0]["candidate"]
    assert candidate.startswith("pm@1.0.0+d") and candidate.endswith("-ae")
    # the request that started it: drift on the ageing asset
    requests = [m for m in out.records["model"] if m["event"] == "retrain_request"]
    assert requests and requests[0]["asset"] == "asset-001"
    # the promotions, in order, each by the loop with its reason; the flow audited each
    promos = [(m["event"], m["variant"], m["ref"]) for m in sorted(out.records["model"],
                                                                      key=lambda m: m["source"]["offset"] if m.get("source") else -1)
              if m.get("by") == "model-loop"]
    assert promos == [("promoted", "shadow", candidate), ("promoted", "shadow", "pm@1.0.0-ae"),
                      ("promoted", "canary", candidate), ("promoted", "champion", candidate),
                      ("promoted", "shadow", None)], promos
    audited = [e for e in out.records["audit"] if e["what"].startswith("model.") and e["principal"] == "model-loop"]
    assert len(audited) == 5 and verify(out.records["audit"]).problem is None
    # the candidate's manifest names a dataset whose files still hash to the manifest's values
    reg = ModelRegistry(plant["root"], verify_key=plant["pub"], datasets=DatasetStore(tmp_path / "datasets"))
    name, _, version = candidate.partition("@")
    art = reg.load(name, version)  # verifies the model and its dataset
    ds = art.manifest.extra["dataset"]
    assert art.manifest.training_data == f"dataset:{ds}"
    DatasetStore(tmp_path / "datasets").verify(ds)
    # the dataset holds the aged asset's windows after the drift point (the new normal)
    rows, _ = DatasetStore(tmp_path / "datasets").rows(ds, list(art.manifest.feature_names), labels="all")
    aged = [s for a, s in zip(rows.assets, rows.start_ns) if a == "asset-001"]
    assert aged and max(aged) >= requests[0]["window_range"][1]
    # after the promotion the aged asset is quiet again: the new champion flags far fewer of its windows
    scores = out.records["score"]
    after = sim.start_ns + 150 * S
    old = [s["anomalous"] for s in scores if s["asset"] == "asset-001" and s["window"]["start_ns"] >= after
           and s["model"]["version"] == "1.0.0-ae" and s["model"]["variant"] == "champion"]
    new = [s["anomalous"] for s in scores if s["asset"] == "asset-001" and s["model"]["version"] == version
           and s["model"]["variant"] == "champion"]
    assert len(old) >= 20 and len(new) >= 20, (len(old), len(new))
    assert np.mean(new) < 0.2 and np.mean(old) > 0.8, (np.mean(new), np.mean(old))
    # the model card tells why the model is live
    events = [e["event"] for e in CardLog(plant["root"]).events(name, version)]
    assert events[0] == "trained" and events[-1] == "champion" and events.count("verdict") == 2
    v = validator()
    for kind in ("model", "audit"):
        for rec in out.records[kind]:
            assert next(iter(v.iter_errors(rec)), None) is None


def test_a_bad_candidate_is_rolled_back_automatically_with_the_reason(
        kafka_broker: str, plant: dict[str, Path], tmp_path: Path) -> None:
    r = run_loop(kafka_broker, plant, tmp_path, "loop-bad", gate=False, extra=("--candidate", "9.0.0-ae"),
                 duration_s=400.0)
    out = r["out"]
    assert [f["event"] for f in r["finished"]] == ["rolled_back"], r["loop_log"][-3000:]
    reason = r["finished"][0]["reason"]
    assert "shadow verdict" in reason and "candidate" in reason, reason
    promos = [(m["variant"], m["ref"]) for m in out.records["model"] if m.get("by") == "model-loop"]
    assert promos == [("shadow", "pm@9.0.0-ae"), ("shadow", None)], promos
    # the champion decided throughout: no window was decided by the bad candidate
    assert Counter((s["model"]["version"], s["model"]["variant"]) for s in out.records["score"]).keys() == {
        ("1.0.0-ae", "champion")}
