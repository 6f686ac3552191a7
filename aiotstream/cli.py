"""``aiotstream``: validate | broker | simulate | run | replay | demo | bench | train.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad config, 130 stopped by Ctrl-C/SIGINT.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from aiotstream.config import SiteConfig, default_site
from aiotstream.errors import AiotError, ConfigError
from aiotstream.routing import Placement

DEMO_CYCLE_S = 2.0  # the demo plant's ideal cycle time per part


def _load_site(args: argparse.Namespace) -> SiteConfig:
    if getattr(args, "site", None):
        return SiteConfig.load(args.site)
    return default_site(getattr(args, "assets", 5) or 5)


def cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            cfg = SiteConfig.load(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = 2
            continue
        n = len(cfg.all_assets())
        print(f"{path}: OK: site {cfg.site.id!r}, {n} asset(s), config_hash {cfg.config_hash}")
    return status


def cmd_broker(args: argparse.Namespace) -> int:
    from aiotstream.io.broker import TansuBroker

    broker = TansuBroker(port=args.port).start()
    print(f"Kafka-protocol broker (Tansu, memory storage) on {broker.bootstrap}", flush=True)
    print(f"bootstrap.servers={broker.bootstrap}    (Ctrl-C stops it; its data goes with it)", flush=True)
    try:
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.5)
        print("broker exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def _simulator(args: argparse.Namespace, cfg: SiteConfig, production: bool = False):
    from aiotstream.simulator import PlantSimulator, ProductionSpec, malformed_messages

    spec = ProductionSpec(cycle_time_s=DEMO_CYCLE_S) if production else None
    try:
        sim = PlantSimulator(cfg.all_assets(), duration_s=args.duration, n_faults=args.faults, seed=args.seed,
                             production=spec)
    except ValueError as exc:  # e.g. a run too short for its faults: say so without a traceback
        raise AiotError(f"simulate: {exc} (--duration, --faults)") from None
    bad = malformed_messages(args.malformed, assets=[a.id for a in cfg.all_assets()], start_ns=sim.start_ns,
                             seed=args.seed) if args.malformed else []
    return sim, bad


def cmd_simulate(args: argparse.Namespace) -> int:
    from aiotstream.io.simulator import interleave

    cfg = _load_site(args)
    sim, bad = _simulator(args, cfg)
    print(f"simulating {len(sim.assets)} asset(s) x {args.duration:g} s: {sim.n_frames:,} frames, "
          f"{sim.n_readings:,} readings, {len(sim.faults)} fault(s), {len(bad)} malformed", file=sys.stderr)
    if args.truth:
        sim.write_truth(args.truth)
    if args.out_dir:
        counts = sim.write_files(args.out_dir, partitions=args.file_partitions)
        print(f"wrote {counts} to {args.out_dir}", file=sys.stderr)
        return 0
    from aiotstream.io.kafka import ensure_topics
    from aiotstream.io.simulator import write_to_kafka

    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    wave_topic, read_topic = cfg.inputs.topics[0], cfg.inputs.topics[-1]
    ensure_topics(brokers, [wave_topic, read_topic], partitions=args.partitions)
    t0 = time.monotonic()
    counts = write_to_kafka(interleave(sim.messages(), bad), brokers, wave_topic, read_topic, progress=True)
    print(f"produced {counts} to {brokers} ({wave_topic}, {read_topic}) in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    return 0


def _sinks(args: argparse.Namespace, cfg: SiteConfig, brokers: str) -> tuple[Any, list[Any], str]:
    """Main sink (JSONL dir or Kafka topics) and the extra ones (Parquet lake, MQTT device topics)."""
    from aiotstream.io.kafka import KafkaOutputSink, ensure_topics, output_topics

    if args.out_dir:
        from aiotstream.io.files import JsonlSink

        sink, where = JsonlSink(args.out_dir), f"{args.out_dir}/*.jsonl"
    else:
        ensure_topics(brokers, list(output_topics(cfg).values()), partitions=cfg.outputs.partitions)
        sink, where = KafkaOutputSink(cfg, brokers), ", ".join(output_topics(cfg).values())
    also: list[Any] = []
    parquet = cfg.outputs.parquet
    if getattr(args, "parquet_dir", None):
        from aiotstream.config import ParquetOutput

        parquet = ParquetOutput(**{**(parquet.model_dump() if parquet else {}), "directory": args.parquet_dir})
    if parquet is not None:
        from aiotstream.io.parquet import ParquetSink

        also.append(ParquetSink(parquet, cfg.site.id))
        where += f" + {', '.join(parquet.kinds)} as Parquet in {parquet.directory}"
    if cfg.outputs.mqtt is not None:
        from aiotstream.io.mqtt import MqttSink

        m = cfg.outputs.mqtt
        also.append(MqttSink(m, cfg.site.id))
        where += f" + {', '.join(m.kinds)} over MQTT to {m.host}:{m.port} {m.topic}"
    return sink, also, where


GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Garbage-collect less often while a flow runs.

    A flow keeps hundreds of thousands of long-lived objects (HalfSpaceTrees
    nodes: 25 trees x 511 per asset) and allocates many short-lived ones per
    window; with CPython's default thresholds (700, 10, 10) the collector ran
    often enough to take 17% of a waveform run (py-spy --native). Freezing what
    exists at start-up (modules, the flow) and raising the thresholds gave
    +34% and +48% frames/s in two side-by-side runs of the 40-asset scaling
    workload. Cyclic garbage still gets
    collected, just in larger, rarer sweeps.
    """
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _run_flow(args: argparse.Namespace, cfg: SiteConfig, source: Any, tail: bool, src_text: str,
              brokers: str) -> int:
    from bytewax.run import cli_main

    from aiotstream.config import FLOW_ENERGY
    from aiotstream.dataflow import build_flow

    if cfg.site.flow == FLOW_ENERGY:  # site.flow picks the flow; the building flow's own builder
        from aiotstream.energy.flow import build_building_flow as build_flow

    sink, also, where = _sinks(args, cfg, brokers)
    # without --recovery nothing reads the per-epoch state snapshots, so they are not taken
    flow = build_flow(cfg, source, sink, tail=tail, also=also, snapshots=bool(args.recovery))
    print(f"running {cfg.site.flow} for site {cfg.site.id!r} (config_hash {cfg.config_hash}): {src_text} -> "
          f"{where}" + ("" if tail else " (until the end of the input)"), file=sys.stderr, flush=True)
    addresses = args.addresses.split(";") if args.addresses else None
    recovery = None
    if args.recovery:
        n_procs = len(addresses or [None])
        recovery = recovery_config(Path(args.recovery), args.recovery_partitions or args.workers * n_procs,
                                   args.backup_s, process_id=args.process_id or 0, processes=n_procs)
        print(f"recovery: {args.recovery} (snapshot every {args.epoch_s:g} s)", file=sys.stderr, flush=True)
    from bytewax.errors import BytewaxRuntimeError

    from aiotstream.runstats import STATS

    tune_gc()
    try:
        cli_main(flow, workers_per_process=args.workers, process_id=args.process_id, addresses=addresses,
                 epoch_interval=timedelta(seconds=args.epoch_s), recovery_config=recovery)
    except BytewaxRuntimeError as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C / SIGINT while tailing: a normal way to stop
            print(f"stopped (interrupted): {STATS.summary()}; outputs in {where}", file=sys.stderr)
            return 130
        raise
    except KeyboardInterrupt:
        print(f"stopped (interrupted): {STATS.summary()}; outputs in {where}", file=sys.stderr)
        return 130
    print(f"done: {STATS.summary()}; outputs in {where}", file=sys.stderr)
    return 0


def recovery_config(directory: Path, partitions: int, backup_s: float, process_id: int = 0, processes: int = 1):
    """A Bytewax RecoveryConfig for ``directory``, creating this process's share of partitions on first use.

    A cluster's partitions are spread over its processes' local directories:
    process ``i`` of ``n`` keeps partitions ``i, i + n, i + 2n, ...`` of the
    ``partitions`` created for the whole cluster.
    """
    import shutil
    import tempfile

    from bytewax.recovery import RecoveryConfig, init_db_dir

    if partitions < processes:
        raise AiotError(f"--recovery-partitions ({partitions}) must be at least the number of processes ({processes})")
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("*.sqlite3")):
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            init_db_dir(Path(tmp), partitions)
            for i in range(process_id, partitions, processes):
                shutil.move(str(Path(tmp) / f"part-{i}.sqlite3"), directory / f"part-{i}.sqlite3")
    return RecoveryConfig(str(directory), backup_interval=timedelta(seconds=backup_s))


def _cluster_place(args: argparse.Namespace) -> Placement:
    """This process's place from ``-i``/``-a``/``-w``; process 0 of 1 outside a cluster."""
    return Placement.of((args.process_id or 0, len(args.addresses.split(";")) if args.addresses else 1,
                         args.workers))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_site(args)
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    kind = cfg.inputs.kind
    tail = not args.once
    process = _cluster_place(args)
    if kind == "kafka":
        from aiotstream.io.kafka import ensure_topics, input_topics, kafka_source

        ensure_topics(brokers, input_topics(cfg), partitions=cfg.outputs.partitions)
        from aiotstream.config import FLOW_ENERGY

        blocks = {"blocks": True} if cfg.site.flow == FLOW_ENERGY else {}  # the building flow decodes poll blocks
        source: Any = kafka_source(cfg, brokers, tail=tail, process=process, **blocks)
        text = f"Kafka {brokers} {', '.join(input_topics(cfg))}"
    elif kind == "mqtt":
        from aiotstream.io.mqtt import mqtt_source

        source, m = mqtt_source(cfg), cfg.inputs.mqtt
        text = f"MQTT {m.host}:{m.port} {', '.join(s.filter for s in m.subscriptions)}"  # type: ignore[union-attr]
    elif kind == "opcua":
        from aiotstream.io.opcua import opcua_source

        source, o = opcua_source(cfg), cfg.inputs.opcua
        text = f"OPC UA {o.endpoint} ({len(o.nodes)} nodes)"  # type: ignore[union-attr]
    else:
        from aiotstream.io.replay import file_source

        source, tail = file_source(cfg, process=process), False
        text = f"files {', '.join(cfg.inputs.files.paths)}"  # type: ignore[union-attr]
    return _run_flow(args, cfg, source, tail, text, brokers)


def cmd_replay(args: argparse.Namespace) -> int:
    from aiotstream.config import FileInput
    from aiotstream.io.replay import FileSource

    cfg = _load_site(args)
    base = cfg.inputs.files.model_dump() if cfg.inputs.files else {}
    update: dict[str, Any] = {"paths": args.files, "speed": args.speed}
    if args.format:
        update["format"] = args.format
    if args.payload:
        update["payload"] = args.payload
    try:
        files = FileInput.model_validate({**base, **update})
    except ValidationError as exc:
        raise ConfigError("aiotstream replay", [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]) \
            from None
    source = FileSource(files, cfg.inputs.poll_batch, process=_cluster_place(args))
    speed = "as fast as possible" if args.speed == 0 else f"x{args.speed:g}"
    brokers = args.brokers or ",".join(cfg.inputs.brokers)
    return _run_flow(args, cfg, source, False, f"{len(source.paths)} file(s), {speed}", brokers)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def cmd_demo(args: argparse.Namespace) -> int:
    from bytewax.run import cli_main

    from aiotstream.dataflow import build_flow
    from aiotstream.evaluate import score_alerts
    from aiotstream.io.files import JsonlSink
    from aiotstream.io.simulator import SimulatorSource, interleave

    cfg = default_site(args.assets, inputs={"tail": False}, features={"set": args.features},
                       assets=[{"id": f"asset-{i:03d}", "line": f"line-{i % 2 + 1}", "ideal_cycle_time_s": DEMO_CYCLE_S}
                               for i in range(args.assets)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
        old.unlink()
    print(f"[1/3] simulating {args.assets} asset(s) x {args.duration:g} s of 3-axis vibration at 10 kHz "
          f"(+ temperature, machine state, part counters), {args.faults} fault(s), {args.malformed} malformed "
          f"message(s), seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    sim, bad = _simulator(args, cfg, production=True)
    messages = list(interleave(sim.messages(), bad))
    sim.write_truth(out / "truth.json")
    print(f"      {sim.n_frames:,} frames, {sim.n_readings:,} readings in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"[2/3] running the predictive-maintenance flow (Bytewax, 1 worker, features {args.features}) ...",
          flush=True)
    # imported lazily by the models and kernels; keep their import time out of the figure
    import river.anomaly
    import river.drift
    import scipy.fft

    del river, scipy

    flow = build_flow(cfg, SimulatorSource(messages, cfg.site.id), JsonlSink(out), tail=False, snapshots=False)
    tune_gc()
    t1 = time.perf_counter()
    cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=5))
    elapsed = time.perf_counter() - t1

    alerts = _read_jsonl(out / "alerts.jsonl")
    kpis = _read_jsonl(out / "kpis.jsonl")
    scores = _read_jsonl(out / "scores.jsonl")
    dead = _read_jsonl(out / "deadletter.jsonl")
    asset_kpis = [k for k in kpis if k["scope"] == "asset"]
    frames = sum(k["totals"]["frames"] for k in asset_kpis)
    samples = frames * 3 * 1024
    frame_ns = round(1024 / 10_000 * 1e9)  # a window's data runs up to one frame past its end
    det = score_alerts([f.to_dict() for f in sim.faults], alerts, lead_ns=frame_ns)
    reasons = Counter(d["reason"] for d in dead)
    print(f"[3/3] summary (outputs in {out}/: alerts.jsonl commands.jsonl kpis.jsonl scores.jsonl deadletter.jsonl "
          "truth.json)")
    print(f"  throughput : {frames:,} frames in {elapsed:.2f} s = {frames / elapsed:,.0f} frames/s "
          f"({samples / elapsed / 1e6:,.1f} M samples/s, 1 worker, including decode and windowing)")
    print(f"  windows    : {len(scores):,} scored, {sum(k['totals']['anomalous_windows'] for k in asset_kpis):,} "
          f"anomalous; {len(kpis):,} KPI records (asset, line, site)")
    print(f"  alerts     : {det.alerts} opened, {sum(a['event'] == 'cleared' for a in alerts)} cleared")
    print(f"  faults     : {det.faults} injected, {det.detected} detected within 5 s -> fault recall "
          f"{det.recall:.0%}; alert precision {det.precision:.0%} ({det.false_alerts} false)")
    for f in sim.faults:
        name = f"{f.asset}/{f.kind}"
        d = det.delays_s.get(name)
        print(f"    - {name:32s} onset +{(f.onset_ns - sim.start_ns) / 1e9:6.1f} s  "
              + (f"alert after {d:.1f} s" if d is not None else "MISSED"))
    print(_site_kpi_line(kpis, cfg.kpi.periods_s[0]))
    print(f"  dead letters: {len(dead):,} ({', '.join(f'{k} {v}' for k, v in reasons.most_common()) or 'none'})")
    return 0


def cmd_bench_kernels(args: argparse.Namespace) -> int:
    """Kernel throughput vs twin vs plain numpy vs memory bandwidth, one thread, in a child process."""
    from aiotstream.bench import run_in_subprocess

    argv = ["--windows", str(args.windows), "--samples", str(args.samples), "--repeat", str(args.repeat),
            "--scalar-updates", str(args.scalar_updates)]
    if args.json:
        argv += ["--json", args.json]
    return run_in_subprocess(argv)


def _site_kpi_line(kpis: list[dict], period_s: float) -> str:
    """The site's KPIs over the whole run, from the summed totals of its period records."""
    from aiotstream.kpi import derive, from_public, merge, new_totals

    total = new_totals()
    for k in kpis:
        if k["scope"] == "site" and k["period"]["length_s"] == period_s:
            total = merge(total, from_public(k["totals"]))
    d = derive(total)

    def fmt(v: float | None, pct: bool = False, unit: str = "") -> str:
        return "n/a" if v is None else (f"{v:.0%}" if pct else f"{v:.1f}{unit}")

    return (f"  site KPIs  : OEE {fmt(d['oee'], True)} (availability {fmt(d['availability'], True)}, performance "
            f"{fmt(d['performance'], True)}, quality {fmt(d['quality'], True)}); MTTR {fmt(d['mttr_s'], unit=' s')}, "
            f"MTBF {fmt(d['mtbf_s'], unit=' s')}; alerts {total['alerts_warning']} warning / "
            f"{total['alerts_critical']} critical")


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    """The end-to-end benchmark: a thin call into ``benchmarks/e2e.py`` of the source checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "e2e.py").exists():
        raise AiotError(f"bench e2e needs a source checkout (no benchmarks/ beside {root / 'aiotstream'})")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.e2e import main as e2e_main

    return e2e_main(args.e2e_args)


def cmd_bench_mqtt(args: argparse.Namespace) -> int:
    """The MQTT ingest benchmark: a thin call into ``benchmarks/mqtt.py`` of the source checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "mqtt.py").exists():
        raise AiotError(f"bench mqtt needs a source checkout (no benchmarks/ beside {root / 'aiotstream'})")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.mqtt import main as mqtt_main

    return mqtt_main(args.mqtt_args)


def cmd_train(args: argparse.Namespace) -> int:
    """Train the default models on healthy simulator data and publish them, signed, to a registry."""
    from aiotstream.models.registry import ModelRegistry, generate_keypair
    from aiotstream.models.train import train_and_publish

    cfg = SiteConfig.load(args.site)
    if args.new_key:
        priv, pub = generate_keypair(args.new_key)
        print(f"new Ed25519 key pair: {priv} (keep it at the training side) and {pub} (give it to the sites)",
              file=sys.stderr)
        args.signing_key = str(priv)
    hmac_key = None
    if args.hmac_key_file:
        hmac_key = Path(args.hmac_key_file).read_bytes().strip()
    if args.signing_key is None and hmac_key is None and not args.unsigned:
        raise AiotError("no signing key: give --signing-key (Ed25519 PEM), --new-key DIR or --hmac-key-file, or "
                        "--unsigned for development (sites refuse unsigned models by default)")
    reg = ModelRegistry(args.registry, allow_unsigned=True)
    t0 = time.perf_counter()
    manifests = train_and_publish(cfg, reg, args.name, args.version, n_assets=args.assets, duration_s=args.duration,
                                  seed=args.seed, signing_key=Path(args.signing_key) if args.signing_key else None,
                                  hmac_key=hmac_key, n_estimators=args.trees)
    for m in manifests:
        sig = m.signature["alg"] if m.signature else "UNSIGNED"
        print(f"{reg.path(m.name, m.version)}: {m.extra.get('family')}{' int8' if m.quantized else ''}, "
              f"{len(m.feature_names)} features, {m.metrics['train_rows']} training windows, sha256 "
              f"{m.sha256[:16]}..., {sig}")
    print(f"trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiotstream", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check site config files; print every bad field's path (exit 2 if any)")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)

    b = sub.add_parser("broker", help="run the development Kafka-protocol broker (Tansu) on loopback")
    b.add_argument("--port", type=int, default=9092, help="0 picks a free port (default 9092)")
    b.set_defaults(func=cmd_broker)

    def sim_args(sp: argparse.ArgumentParser, duration: float) -> None:
        sp.add_argument("--duration", type=float, default=duration, help="seconds of event time")
        sp.add_argument("--faults", type=int, default=3, help="faults to inject (each on its own asset)")
        sp.add_argument("--malformed", type=int, default=0, help="malformed messages to mix in")
        sp.add_argument("--seed", type=int, default=7)

    s = sub.add_parser("simulate", help="simulate a plant into Kafka or files, with ground truth")
    s.add_argument("--site", help="site config (default: the embedded demo plant)")
    s.add_argument("--assets", type=int, default=5, help="assets when no --site is given")
    s.add_argument("--brokers", help="bootstrap servers (default: the site's inputs.brokers)")
    s.add_argument("--partitions", type=int, default=3,
                   help="partitions for input topics it creates; each asset goes to the partition whose reader owns "
                        "it in a cluster whose worker count divides the topic's partitions (aiotstream.routing)")
    s.add_argument("--out-dir", help="write waveforms.bin, readings.jsonl, truth.json here instead of Kafka")
    s.add_argument("--file-partitions", type=int, default=0, metavar="P",
                   help="with --out-dir: waveforms-part<k>.bin and readings-part<k>.jsonl for k < P, each asset in "
                        "the partition whose reader owns it in a cluster whose worker count divides P")
    s.add_argument("--truth", help="also write the ground truth JSON here")
    sim_args(s, 60.0)
    s.set_defaults(func=cmd_simulate)

    def flow_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--brokers", help="Kafka bootstrap servers (default: the site's inputs.brokers)")
        sp.add_argument("--out-dir", help="write outputs as JSONL files instead of Kafka topics")
        sp.add_argument("--parquet-dir", help="also write scores/KPIs as Parquet here (site=/date= partitions)")
        sp.add_argument("-w", "--workers", type=int, default=1, help="workers per process")
        sp.add_argument("-i", "--process-id", type=int, help="this process's id in a cluster (with -a)")
        sp.add_argument("-a", "--addresses", help="all processes' host:port, separated by ';'")
        sp.add_argument("--epoch-s", type=float, default=1.0,
                        help="Bytewax epoch length in seconds (default 1): per-asset outputs leave when their epoch "
                             "closes, so it bounds the added latency; with --recovery it is also the snapshot interval")
        sp.add_argument("--recovery", metavar="DIR",
                        help="keep input offsets and all state in recovery partitions here; resume from them")
        sp.add_argument("--recovery-partitions", type=int,
                        help="partitions to create in a new recovery dir (default: workers x processes)")
        sp.add_argument("--backup-s", type=float, default=0.0,
                        help="keep superseded snapshots this long (set to your off-machine backup interval)")

    r = sub.add_parser("run", help="run the flow for a site from its [inputs] (kafka, mqtt, opcua or files)")
    r.add_argument("--site", required=True, help="site config file (.toml or .json)")
    r.add_argument("--once", action="store_true", help="stop at the end of the input topics instead of tailing")
    flow_args(r)
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("replay", help="replay CSV/JSONL/Parquet/frame files through the flow, paced by event time")
    rp.add_argument("files", nargs="+", metavar="FILE", help="files or globs")
    rp.add_argument("--site", required=True, help="site config file (its [inputs.files] gives columns/format)")
    rp.add_argument("--speed", type=float, default=0.0, help="0: as fast as possible (default); 1: real time; N: N x")
    rp.add_argument("--format", choices=["auto", "csv", "jsonl", "parquet", "frames"], help="default: by extension")
    rp.add_argument("--payload", help="format of JSONL lines without [inputs.files.columns] (json, gateway-json, ...)")
    flow_args(rp)
    rp.set_defaults(func=cmd_replay)

    d = sub.add_parser("demo", help="simulator -> flow -> ./out/*.jsonl, with a detection summary")
    d.add_argument("--assets", type=int, default=5)
    d.add_argument("--out", default="out")
    sim_args(d, 90.0)
    d.add_argument("--features", default="vibration-basic", help="feature set (default vibration-basic)")
    d.set_defaults(func=cmd_demo, malformed=200)

    bench = sub.add_parser("bench", help="benchmarks (run by hand; results go to benchmarks/)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bk = bench_sub.add_parser("kernels", help="feature kernels vs numpy twin vs best numpy vs memory bandwidth "
                                              "(samples/s and ratios, one thread, one run)")
    bk.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    bk.add_argument("--windows", type=int, default=20_000, help="windows per set (default 20,000)")
    bk.add_argument("--samples", type=int, default=1024, help="samples per window (default 1024)")
    bk.add_argument("--repeat", type=int, default=5, help="interleaved rounds; the best counts (default 5)")
    bk.add_argument("--scalar-updates", type=int, default=200_000, help="scalar-basic updates (default 200,000)")
    bk.set_defaults(func=cmd_bench_kernels)
    be = bench_sub.add_parser("e2e", add_help=False, prefix_chars="\0",
                              help="flows and peers (Bytewax per item, Quix Streams, numpy batch) side by side on "
                                   "one broker: throughput, latency, scaling, memory; --help for its options")
    be.add_argument("e2e_args", nargs="*", help="options of benchmarks/e2e.py (see --help)")
    be.set_defaults(func=cmd_bench_e2e)
    bm = bench_sub.add_parser("mqtt", add_help=False, prefix_chars="\0",
                              help="MQTT ingest against a bare paho subscriber (throughput, QoS 0 and 1), or the "
                                   "live burst scenario (burst); --help for its options")
    bm.add_argument("mqtt_args", nargs="*", help="options of benchmarks/mqtt.py (see --help)")
    bm.set_defaults(func=cmd_bench_mqtt)

    t = sub.add_parser("train", help="train the default ONNX models (IsolationForest; autoencoder float + int8) on "
                                     "healthy simulator data and publish them, signed, to a model registry")
    t.add_argument("--site", required=True, help="site config: its assets' channels and feature set give the columns")
    t.add_argument("--registry", required=True, help="registry directory (<name>/<version>/model.onnx + manifest)")
    t.add_argument("--name", required=True, help="model name")
    t.add_argument("--version", required=True, help="version V: publishes V, V-ae and V-int8 (never overwritten)")
    t.add_argument("--signing-key", help="Ed25519 private key (PEM) to sign the manifests with")
    t.add_argument("--new-key", metavar="DIR", help="make a new Ed25519 key pair in DIR and sign with it")
    t.add_argument("--hmac-key-file", help="sign with HMAC-SHA256 using the secret in this file instead")
    t.add_argument("--unsigned", action="store_true", help="publish unsigned (development only)")
    t.add_argument("--assets", type=int, help="train on the first N assets of the site (default: all)")
    t.add_argument("--duration", type=float, default=120.0, help="seconds of healthy simulated data (default 120)")
    t.add_argument("--seed", type=int, default=0, help="simulator and model seed (default 0)")
    t.add_argument("--trees", type=int, default=100, help="IsolationForest trees (default 100)")
    t.set_defaults(func=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except AiotError as exc:
        print(f"aiotstream: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
