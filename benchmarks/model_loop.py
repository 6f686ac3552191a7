"""The model loop on an ageing plant, end to end, and detection before and after (issue 20).

The plant is the ``realistic`` simulator with one asset whose vibration sensor gain rises by about 2x over
150 s and then stays (ageing that settles, ``RealisticSpec.drift_until_s``); load regimes, bursts, dropouts
and maintenance are off so that ageing is the only change. The champion is an autoencoder trained on the
same plant's healthy data before the ageing. The plant's data goes to Kafka paced at ``PACE`` x real time
while the flow (``aiotstream run``) and the loop (``aiotstream retrain --once``) run as their own processes:
drift -> retrain request -> dataset frozen from the Parquet lake -> candidate -> gate -> shadow -> canary ->
champion, with no person.

tests/integration/test_model_loop.py runs :func:`run_loop` on the test broker; by hand, this module also
measures detection with ``aiotstream evaluate`` (faults injected on every asset) for the champion before the
ageing, the champion after it, and the automatically promoted model after it::

    python -m benchmarks.model_loop            # ~6 min; figures to benchmarks/results/<date>-<host>-model-loop.json
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from aiotstream.config import SiteConfig, default_site
from aiotstream.io.kafka import ensure_topics, input_topics, output_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.models.registry import ModelRegistry, generate_keypair
from aiotstream.pdm.training import train_and_publish, training_config, window_rows
from aiotstream.sim.plant import Fault, PlantSimulator
from aiotstream.sim.realistic import RealisticPlantSimulator, RealisticSpec
from aiotstream.units import S

N_ASSETS = 4
SEED = 3  # with drift_fraction 0.3, seed 3 ages asset-001 alone
AGED = "asset-001"
PACE = 8.0  # event seconds per wall second
QUIET: dict[str, Any] = {"diurnal_amp": 0.0, "weekly_amp": 0.0, "ambient_c": 0.0, "regimes": (1.0,),
                         "bursts_per_hour": 0.0, "dropouts_per_hour": 0.0, "maintenance_fraction": 0.0,
                         "drift_temp_c_per_day": (0.0, 0.0)}
AGEING: dict[str, Any] = {**QUIET, "drift_fraction": 0.3, "drift_gain_per_day": (800.0, 900.0),
                          "drift_until_s": 150.0}
CHAMPION = "1.0.0-ae"
BAD = "9.0.0-ae"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "aiotstream.cli", *args]


def train_plant(d: Path) -> dict[str, Path]:
    """A signed registry under ``d`` with the champion ``pm@1.0.0-ae`` (trained on 120 s of the plant's healthy
    data) and a bad candidate ``pm@9.0.0-ae`` (trained on the plant's windows while every asset has an
    imbalance fault: healthy windows look anomalous to it)."""
    priv, pub = generate_keypair(d / "keys")
    reg = ModelRegistry(d / "reg", verify_key=pub)
    base = default_site(N_ASSETS, site_id="loop-train")
    tcfg = training_config(base)
    healthy = RealisticPlantSimulator(tcfg.all_assets(), duration_s=120.0, n_faults=0, seed=SEED,
                                      spec=RealisticSpec(**QUIET, drift_fraction=0.0))
    train_and_publish(base, reg, "pm", "1.0.0", rows=window_rows(tcfg, healthy), signing_key=priv,
                      n_estimators=50)
    probe = PlantSimulator(tcfg.all_assets(), duration_s=1.0, n_faults=0, seed=SEED)
    faults = [Fault(a.id, "imbalance", probe.start_ns, None, None) for a in tcfg.all_assets()]
    faulty = PlantSimulator(tcfg.all_assets(), duration_s=120.0, seed=SEED, faults=faults)
    train_and_publish(base, reg, "pm", "9.0.0", rows=window_rows(tcfg, faulty), signing_key=priv,
                      n_estimators=50)
    return {"root": d / "reg", "pub": pub, "priv": priv}


def loop_site(plant: dict[str, Path], tmp: Path, site_id: str, *, gate: bool,
              version: str = CHAMPION, settle_s: float = 120.0) -> Path:
    """The site: ONNX champion, KSWIN drift on the radial RMS, Parquet lake of scores and alerts, the loop
    (small sizes: 60 paired windows a phase; ``settle_s`` of data after the last drift point to learn from,
    120 s by default: longer than KSWIN needs to fire again)."""
    data = default_site(N_ASSETS, site_id=site_id).model_dump(mode="json")
    data["inputs"]["tail"] = True
    data["window"] = {"idle_close_s": 6}
    onnx: dict[str, Any] = {
        "registry": str(plant["root"]), "verify_key": str(plant["pub"]), "max_batch": 64, "max_delay_ms": 50,
        "loop": {"datasets": str(tmp / "datasets"), "lookback_s": 3600, "settle_s": settle_s, "min_rows": 100,
                 "canary_fraction": 0.5, "min_pairs": 60, "max_pairs": 4000, "cooldown_s": 0}}
    if gate:  # the gate's simulated held-out set is the same plant (seed), with faults
        onnx["gate"] = {"metric": "auc", "threshold": 0.7, "assets": N_ASSETS, "duration_s": 120, "faults": 2,
                        "seed": SEED}
    data["model"] = {"kind": "onnx", "name": "pm", "version": version, "drift_detector": "kswin",
                     "drift_delta": 1e-4, "drift_features": ["x.rms", "y.rms"], "onnx": onnx}
    data["outputs"] = {**data.get("outputs", {}), "parquet": {"directory": str(tmp / "lake"),
                                                              "kinds": ["score", "alert"]}}
    path = tmp / f"{site_id}.json"
    path.write_bytes(orjson.dumps(data))
    return path


class Pacer(threading.Thread):
    """Writes the simulator's messages to Kafka in 5 s slices of event time, ``PACE`` x real time."""

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


def read_all(brokers: str, topics: dict[str, str], timeout: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Every record of the site's output topics, from the beginning to the end, by kind."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": "model-loop-reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    parts = [TopicPartition(t, p, 0) for t in topics.values()
             for p in c.list_topics(t, timeout=10).topics[t].partitions]
    c.assign(parts)
    kinds = {t: k for k, t in topics.items()}
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in topics}
    done: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(parts) and time.monotonic() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done.add((m.topic(), m.partition()))
                    continue
                raise RuntimeError(m.error())
            out[kinds[m.topic()]].append(orjson.loads(m.value()))
    c.close()
    if len(done) < len(parts):
        raise RuntimeError(f"did not reach the end of the output topics within {timeout} s")
    return out


def run_loop(brokers: str, plant: dict[str, Path], tmp: Path, site_id: str, *, gate: bool,
             extra: tuple[str, ...] = (), duration_s: float = 900.0, settle_s: float = 120.0) -> dict[str, Any]:
    """The flow, the paced plant and ``aiotstream retrain --once`` until the loop ends; then every output
    record. Returns ``cfg``, ``sim``, ``records`` (by kind), ``finished`` (the service's summary lines),
    ``loop_log``, ``sent_s`` (event time written) and ``wall_s``."""
    site = loop_site(plant, tmp, site_id, gate=gate, settle_s=settle_s)
    cfg = SiteConfig.load(site)
    sim = RealisticPlantSimulator(cfg.all_assets(), duration_s=duration_s, n_faults=0, seed=SEED,
                                  spec=RealisticSpec(**AGEING))
    ageing = [e.asset for e in sim.events if e.kind == "sensor_drift"]
    if ageing != [AGED]:
        raise RuntimeError(f"the plant ages {ageing}, expected [{AGED!r}] (seed {SEED})")
    topics = output_topics(cfg)
    ensure_topics(brokers, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    flow_log, loop_log = tmp / f"{site_id}-flow.log", tmp / f"{site_id}-loop.log"
    t0 = time.monotonic()
    with flow_log.open("w") as ff:
        flow = subprocess.Popen(cli("run", "--site", str(site), "--brokers", brokers, "--epoch-s", "1",
                                    "--recovery", str(tmp / f"{site_id}-recovery")),
                                stdout=ff, stderr=subprocess.STDOUT)
    pacer = Pacer(sim, brokers, wave, read)
    with loop_log.open("w") as lf:
        service = subprocess.Popen(cli("retrain", "--site", str(site), "--brokers", brokers, "--signing-key",
                                       str(plant["priv"]), "--state", str(tmp / f"{site_id}-state.json"),
                                       "--once", *extra), stdout=subprocess.PIPE, stderr=lf)
    pacer.start()
    try:
        try:
            stdout, _ = service.communicate(timeout=duration_s / PACE + 120)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the loop did not end; {pacer.sent_s:.0f} s of event time sent; "
                               f"{loop_log.read_text()[-3000:]}") from None
        if flow.poll() is not None:
            raise RuntimeError(f"the flow exited: {flow_log.read_text()[-3000:]}")
        if service.returncode != 0:
            raise RuntimeError(f"aiotstream retrain exited {service.returncode}: {loop_log.read_text()[-3000:]}")
        time.sleep(3)  # the last promotions reach the flow and their records the topics
    finally:
        pacer.stop.set()
        if service.poll() is None:
            service.kill()
        flow.terminate()
        try:
            flow.wait(30)
        except subprocess.TimeoutExpired:
            flow.kill()
    return {"cfg": cfg, "sim": sim, "records": read_all(brokers, topics),
            "finished": [orjson.loads(x) for x in stdout.splitlines()], "loop_log": loop_log.read_text(),
            "sent_s": pacer.sent_s, "wall_s": time.monotonic() - t0}


def evaluate(site: Path, out: Path, spec: dict[str, Any], duration_s: float, faults: int) -> dict[str, Any]:
    """``aiotstream evaluate --simulate realistic`` on the site's model with the scenario numbers ``spec``."""
    items = []
    for k, v in spec.items():
        items += ["--spec", f"{k}={orjson.dumps(list(v) if isinstance(v, tuple) else v).decode()}"]
    js = out.parent / f"{out.name}-figures.json"
    proc = subprocess.run(cli("evaluate", "--simulate", "realistic", "--site", str(site), "--seed", str(SEED),
                              "--duration-s", f"{duration_s:g}", "--faults", str(faults), "--no-plot",
                              "--out", str(out), "--json", str(js), *items), capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"aiotstream evaluate exited {proc.returncode}: {proc.stderr[-2000:]}")
    return orjson.loads(js.read_bytes())


def main(argv: list[str] | None = None) -> int:
    from aiotstream.io.broker import TansuBroker
    from benchmarks.common import save

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-duration", type=float, default=900.0, help="event seconds per evaluation run")
    ap.add_argument("--faults", type=int, default=N_ASSETS, help="faults per evaluation run (one per asset)")
    ap.add_argument("--settle-s", type=float, default=600.0,
                    help="[model.onnx.loop] settle_s: event seconds of data after the last drift point the "
                         "candidate learns from (default 600; the broker test uses 120)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="model-loop-"))
    plant = train_plant(tmp)
    with TansuBroker(port=0, log_path=tmp / "tansu.log") as broker:
        r = run_loop(broker.bootstrap, plant, tmp, "bench-loop", gate=True, settle_s=args.settle_s,
                     duration_s=max(900.0, 200.0 + args.settle_s + 500.0))
    fin = r["finished"]
    print(f"loop: {[f['event'] for f in fin]} in {r['wall_s']:.0f} s wall, {r['sent_s']:.0f} s of event time; "
          f"{fin[-1]['reason'] if fin else ''}", file=sys.stderr)
    if not fin or fin[-1]["event"] != "champion":
        print(r["loop_log"][-3000:], file=sys.stderr)
        return 1
    promoted = fin[-1]["candidate"].partition("@")[2]
    aged = {**AGEING, "drift_offset_s": AGEING["drift_until_s"]}  # the plant after its ageing, from t = 0
    runs = {"before ageing, champion": (CHAMPION, {**QUIET, "drift_fraction": 0.0}),
            "after ageing, champion": (CHAMPION, aged),
            "after ageing, promoted by the loop": (promoted, aged)}
    figures: dict[str, Any] = {}
    for label, (version, spec) in runs.items():
        site = loop_site(plant, tmp, f"eval-{len(figures)}", gate=False, version=version)
        res = evaluate(site, tmp / f"eval-{len(figures)}", spec, args.eval_duration, args.faults)
        figures[label] = {"version": version, "spec": spec, **{k: res[k] for k in ("events", "per_fault",
                                                                                     "false_alerts")}}
        ev = res["events"]
        print(f"{label:36s} {version:24s} recall {ev['recall']:.3f} ({ev['detected']}/{ev['faults']}) "
              f"precision {ev['precision']:.3f} ({ev['true_alerts']}/{ev['alerts']}) false alerts "
              f"{ev['false_alerts']} delay median {ev['delay_s']['median']}", file=sys.stderr)
    save("model-loop", {"loop": {"finished": fin, "wall_s": r["wall_s"], "event_s": r["sent_s"]},
                        "evaluate": figures, "eval_duration_s": args.eval_duration, "faults": args.faults,
                        "settle_s": args.settle_s,
                        "seed": SEED})
    return 0


if __name__ == "__main__":
    sys.exit(main())
