"""MQTT ingest: aiotstream's MQTT source against a bare paho subscriber, and the issue's live burst.

``throughput`` (default): one mosquitto (deploy/mosquitto.conf, plus ``queue_qos0_messages true`` so a QoS 0
backlog can be preloaded too) on a free loopback port. Each run preloads N JSON readings of 200 assets x 2
metrics (``plant/<asset>/<metric>``, ``{"ts", "value", "seq"}``) into a persistent session with
mosquitto_pub, then one contender, in a fresh process, drains that session:

* ``bare``: a paho subscriber (MQTT 5, the same session, paho's automatic PUBACKs) that decodes every
  payload with ``orjson.loads`` in its message callback;
* ``ingest``: aiotstream's MqttSource (ack = "epoch", 1 s epochs, poll_batch 1000) and the decode step
  (``Ingestor.decode_grouped``: routing, JSON -> validated readings grouped per asset) in a Bytewax flow;
* ``flow``: the same source through the whole predictive-maintenance flow (``build_flow``: windows, features,
  scores, KPIs), outputs discarded.

The rate is messages / time from the MQTT client receiving the first message to the Nth decoded (start-up
left out; for aiotstream the child process's arrival stamp on the first message), and CPU is the
contender's process and its children (the MQTT client process) per message. Contenders alternate within
each round (bare, ingest, flow, bare, ...), QoS 0 and QoS 1; medians over the rounds.

``burst``: the issue's scenario live. ``aiotstream``'s flow runs (in a child process, in-process Bytewax,
site as deploy/site-mqtt.toml) while publisher processes send N readings at R/s with QoS 1; it reports what
the broker acknowledged, what the flow ingested and dead-lettered, its STATS losses, and the rate.

    python -m benchmarks.mqtt --rounds 5 --messages 100000
    python -m benchmarks.mqtt burst --messages 200000 --rate 7350
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASSETS, METRICS = 200, ("temperature", "pressure")
T0 = 1_767_225_600_000_000_000
PUB_TIMEOUT_S = 15.0  # one mosquitto_pub -l of a preload (250 messages at 100,000 readings; normally under a second)
PER_RUN = ("listener", "persistence_location", "log_dest", "log_type", "user", "pid_file", "persistence")


# ---- the broker -------------------------------------------------------------------------------------------
class Broker:
    """mosquitto with deploy/mosquitto.conf on a free loopback port (no persistence: a benchmark)."""

    def __init__(self, extra: dict[str, str] | None = None):
        from aiotstream.io.broker import free_port

        self.dir = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
        self.port = free_port()
        lines = [ln for ln in (ROOT / "deploy" / "mosquitto.conf").read_text().splitlines()
                 if not (ln.split("#", 1)[0].split() and ln.split()[0] in PER_RUN + tuple(extra or {}))]
        lines += [f"listener {self.port} 127.0.0.1", "persistence false", f"log_dest file {self.dir}/log"]
        if os.geteuid() == 0:
            import getpass

            lines.append(f"user {getpass.getuser()}")
        lines += [f"{k} {v}" for k, v in (extra or {}).items()]
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.dir / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto did not start; see {self.dir}/log")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)  # a loaded machine: mosquitto frees its queues on the way out
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def topics() -> list[str]:
    return [f"plant/asset-{a + 1:03d}/{m}" for a in range(ASSETS) for m in METRICS]  # the site numbers from 001


def payload(k: int) -> bytes:
    return b'{"ts":%d,"value":%.2f,"seq":%d}' % (T0 + k * 1_000_000_000, 20.0 + (k % 97) * 0.1, k)


def make_session(port: int, client_id: str, qos: int) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_subscribe = lambda *_: done.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    c.subscribe("plant/+/+", qos)
    if not done.wait(10):
        raise RuntimeError("no SUBACK")
    c.disconnect()
    c.loop_stop()


def preload(port: int, n: int, qos: int, workdir: Path) -> None:
    """n readings round robin over the 400 topics, one mosquitto_pub -l per topic, 8 at a time."""
    ts = topics()
    per = [n // len(ts) + (1 if i < n % len(ts) else 0) for i in range(len(ts))]
    files = []
    for i, t in enumerate(ts):
        f = workdir / f"t{i}.txt"
        f.write_bytes(b"\n".join(payload(k) for k in range(per[i])) + b"\n")
        files.append((t, f))
    binary = shutil.which("mosquitto_pub") or "mosquitto_pub"

    def pub(item: tuple[str, Path]) -> None:
        t, f = item
        for attempt in range(3):
            with f.open("rb") as stdin:
                try:
                    subprocess.run([binary, "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", str(qos),
                                    "-t", t, "-l"], stdin=stdin, check=True, timeout=PUB_TIMEOUT_S)
                    return
                except subprocess.TimeoutExpired:
                    # mosquitto 2.0.11's mosquitto_pub -l now and then hangs in a futex after its input ended;
                    # sending the topic's file again can only add duplicates past the N the contender waits for
                    print(f"mosquitto_pub for {t} hung (attempt {attempt + 1}); killed, publishing again",
                          file=sys.stderr, flush=True)
        raise RuntimeError(f"mosquitto_pub for {t} hung three times")

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(pub, files))


# ---- contenders (each in its own process) -------------------------------------------------------------
def drain_bare(port: int, client_id: str, n: int, qos: int) -> dict[str, float]:
    import orjson
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got = [0]
    t = [0.0, 0.0]
    done = threading.Event()

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        orjson.loads(m.payload)
        got[0] += 1
        if got[0] == 1:
            t[0] = time.time()
        if got[0] == n:
            t[1] = time.time()
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    cpu0 = os.times()
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    ok = done.wait(600)
    c.disconnect()
    c.loop_stop()
    return _result(ok, got[0], n, t, cpu0)


def drain_aiotstream(kind: str, port: int, client_id: str, n: int, qos: int) -> dict[str, float]:
    from datetime import timedelta

    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import run_main

    from aiotstream.dataflow import build_flow
    from aiotstream.io.mqtt import MqttSource
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime

    class Discard(StatelessSinkPartition[Any]):
        def write_batch(self, items: list[Any]) -> None:
            pass

    class Null(DynamicSink[Any]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Discard:
            return Discard()

    cfg = bench_site("127.0.0.1", port, client_id, qos)
    stop = threading.Event()
    got = [0]
    t = [0.0, 0.0]
    ing = Ingestor(SiteRuntime(cfg))
    decode = ing.decode_grouped

    def counted(msgs: list[Any]) -> list[Any]:
        out = decode(msgs)
        if msgs:
            if not got[0]:  # from when the MQTT client received the first message, as for the bare subscriber
                t[0] = msgs[0].arrival_ns / 1e9
            got[0] += len(msgs)
            if got[0] >= n and not t[1]:
                t[1] = time.time()
                stop.set()
        return out

    ing.decode_grouped = counted  # type: ignore[method-assign]
    assert cfg.inputs.mqtt is not None
    src = MqttSource(cfg.inputs.mqtt, cfg.site.id, cfg.inputs.poll_batch, stop=stop, idle_stop_s=0.0)
    cpu0 = os.times()
    if kind == "ingest":
        flow = Dataflow("bench_mqtt_ingest")
        raw = op.input("input", flow, src)
        op.output("sink", op.flat_map_batch("decode", raw, counted), Null())
    else:
        import aiotstream.dataflow as df

        real = df.Ingestor
        df.Ingestor = lambda rt, *a, **kw: ing  # type: ignore[assignment,misc]  # the counted decoder in the real flow
        try:
            flow = build_flow(cfg, src, Null(), tail=False, snapshots=False)
        finally:
            df.Ingestor = real  # type: ignore[misc]
    run_main(flow, epoch_interval=timedelta(seconds=1))
    return _result(bool(t[1]), got[0], n, t, cpu0)


def _result(ok: bool, got: int, n: int, t: list[float], cpu0: os.times_result) -> dict[str, float]:
    cpu1 = os.times()
    cpu = (cpu1.user + cpu1.system + cpu1.children_user + cpu1.children_system
           - cpu0.user - cpu0.system - cpu0.children_user - cpu0.children_system)
    if not ok:
        raise SystemExit(f"only {got} of {n} messages arrived")
    own = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    return {"rate": (n - 1) / (t[1] - t[0]), "cpu_us_per_msg": cpu / n * 1e6, "seconds": t[1] - t[0],
            "cpu_us_per_msg_flow_process": own / n * 1e6, "cpu_us_per_msg_client_process": (cpu - own) / n * 1e6}


def bench_site(host: str, port: int, client_id: str, qos: int, **mqtt_settings: Any) -> Any:
    """deploy/site-mqtt.toml on this broker."""
    import tomllib

    from aiotstream.config import SiteConfig

    data = tomllib.loads((ROOT / "deploy" / "site-mqtt.toml").read_text())
    data["inputs"]["mqtt"].update({"host": host, "port": port, "client_id": client_id, "qos": qos,
                                   **mqtt_settings})
    data["inputs"]["tail"] = False
    return SiteConfig.from_dict(data)


def contender(name: str, port: int, client_id: str, n: int, qos: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "benchmarks.mqtt", "_drain", name, str(port), client_id, str(n), str(qos)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{name} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    broker = Broker({"queue_qos0_messages": "true"})
    names = args.contenders.split(",")
    runs: dict[str, dict[str, list[dict[str, float]]]] = {str(q): {c: [] for c in names} for q in args.qos}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for q in args.qos:
                    for name in names:
                        cid = f"bench-{uuid.uuid4().hex[:8]}"
                        make_session(broker.port, cid, q)
                        preload(broker.port, args.messages, q, Path(tmp))
                        res = contender(name, broker.port, cid, args.messages, q)
                        runs[str(q)][name].append(res)
                        split = (f" (flow process {res['cpu_us_per_msg_flow_process']:.1f}, MQTT client process "
                                 f"{res['cpu_us_per_msg_client_process']:.1f})" if name != "bare" else "")
                        print(f"round {r + 1} qos {q} {name:6s} {res['rate']:>9,.0f} msg/s "
                              f"{res['cpu_us_per_msg']:6.1f} CPU us/msg{split}  load {os.getloadavg()[0]:.1f}",
                              flush=True)
    finally:
        broker.close()
    summary: dict[str, Any] = {}
    for q, by in runs.items():
        med = {c: statistics.median(x["rate"] for x in v) for c, v in by.items()}
        cpu = {c: statistics.median(x["cpu_us_per_msg"] for x in v) for c, v in by.items()}
        summary[f"qos{q}"] = {
            "median_rate": {c: round(v) for c, v in med.items()},
            "median_cpu_us_per_msg": {c: round(v, 1) for c, v in cpu.items()},
            "ratio_to_bare": {c: round(med[c] / med["bare"], 3) for c in med if c != "bare" and "bare" in med},
            "per_round_ratio_median": {c: round(statistics.median(x["rate"] / b["rate"] for x, b in
                                                                  zip(by[c], by["bare"], strict=True)), 3)
                                       for c in by if c != "bare" and "bare" in by},
        }
    return {"messages": args.messages, "rounds": args.rounds, "runs": runs, "summary": summary}


# ---- burst: the scenario, live --------------------------------------------------------------------
def publisher(port: int, n: int, rate: float, part: int, parts: int) -> dict[str, float]:
    """The messages of topics part, part + parts, ... (message i goes to topic i mod 400), paced at rate / parts:
    each topic's sequence numbers come from one client, in order, as from one device."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ts = topics()
    acked = [0]
    cond = threading.Condition()
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.on_connect = lambda *_: connected.set()

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            with cond:
                acked[0] += 1
                cond.notify_all()

    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    connected.wait(10)
    mine = [i for i in range(n) if (i % len(ts)) % parts == part]
    per_s = rate / parts
    t0 = time.perf_counter()
    for j, i in enumerate(mine):
        delay = t0 + j / per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with cond:
            while j - acked[0] >= 30_000:
                cond.wait(1)
        c.publish(ts[i % len(ts)], payload(i // len(ts)), qos=1)
    sent_s = time.perf_counter() - t0
    with cond:
        while acked[0] < len(mine):
            if not cond.wait(60):
                break
    c.disconnect()
    c.loop_stop()
    return {"acked": acked[0], "sent": len(mine), "seconds": sent_s}


def run_flow_until(port: int, n: int, idle_s: float) -> dict[str, Any]:
    """The predictive-maintenance flow on the MQTT source until n messages were taken and idle_s passed."""
    from datetime import timedelta

    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import run_main

    from aiotstream.dataflow import build_flow
    from aiotstream.io.mqtt import MqttSource
    from aiotstream.runstats import STATS

    class Count(StatelessSinkPartition[Any]):
        def write_batch(self, items: list[Any]) -> None:
            for o in items:
                if o.kind == "deadletter":
                    dead[o.record["reason"]] = dead.get(o.record["reason"], 0) + 1

    class Sink(DynamicSink[Any]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Count:
            return Count()

    dead: dict[str, int] = {}
    cfg = bench_site("127.0.0.1", port, "aiotstream-bench-burst", 1)
    stop = threading.Event()
    ready = threading.Event()
    assert cfg.inputs.mqtt is not None
    src = MqttSource(cfg.inputs.mqtt, cfg.site.id, cfg.inputs.poll_batch, stop=stop, idle_stop_s=idle_s,
                     ready=ready)
    first: list[float] = []

    def watch() -> None:
        ready.wait(60)
        print("READY", flush=True)
        while STATS.get("inputs", "mqtt") < n:
            if STATS.get("inputs", "mqtt") and not first:
                first.append(time.perf_counter())
            time.sleep(0.01)
        first.append(time.perf_counter())
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    run_main(build_flow(cfg, src, Sink(), tail=False, snapshots=False), epoch_interval=timedelta(seconds=1))
    snap = STATS.snapshot()
    return {"ingested": snap["inputs"].get("mqtt", 0), "dead_letters": dead, "losses": snap["losses"],
            "gauges": snap["gauges"], "summary": STATS.summary(),
            "ingest_rate": (n / (first[-1] - first[0])) if len(first) >= 2 else None}


def burst(args: argparse.Namespace) -> dict[str, Any]:
    broker = Broker({"sys_interval": "1"})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        flow = subprocess.Popen([sys.executable, "-m", "benchmarks.mqtt", "_flow", str(broker.port),
                                 str(args.messages), "5"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert flow.stdout is not None
        line = flow.stdout.readline()
        if "READY" not in line:
            raise RuntimeError(f"the flow did not start: {line!r}")
        pubs = [subprocess.Popen([sys.executable, "-m", "benchmarks.mqtt", "_publish", str(broker.port),
                                  str(args.messages), str(args.rate), str(i), str(args.publishers)],
                                 stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
                for i in range(args.publishers)]
        published = [json.loads(p.communicate(timeout=3600)[0].strip().splitlines()[-1]) for p in pubs]
        try:
            out = flow.communicate(timeout=args.drain_timeout)[0]
        except subprocess.TimeoutExpired:
            flow.terminate()
            out = flow.communicate(timeout=30)[0]
        result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": "the flow did not finish"}
    finally:
        broker.close()
    acked = sum(p["acked"] for p in published)
    seconds = max(p["seconds"] for p in published)
    res = {"messages": args.messages, "target_rate": args.rate, "publishers": args.publishers,
           "acked_by_broker": acked, "publish_rate": round(sum(p["sent"] for p in published) / seconds),
           "flow": result}
    ing = result.get("ingested", 0)
    print(f"published {args.messages:,} (broker acknowledged {acked:,}) at {res['publish_rate']:,}/s; the flow "
          f"ingested {ing:,} at {result.get('ingest_rate') or 0:,.0f}/s; {result.get('summary')}")
    return res


def main(argv: list[str] | None = None, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """``parser_class``: the CLI passes its own (one-line errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_drain":
        name, port, cid, n, qos = argv[1], int(argv[2]), argv[3], int(argv[4]), int(argv[5])
        res = drain_bare(port, cid, n, qos) if name == "bare" else drain_aiotstream(name, port, cid, n, qos)
        print(json.dumps(res))
        return 0
    if argv and argv[0] == "_publish":
        print(json.dumps(publisher(int(argv[1]), int(argv[2]), float(argv[3]), int(argv[4]), int(argv[5]))))
        return 0
    if argv and argv[0] == "_flow":
        print(json.dumps(run_flow_until(int(argv[1]), int(argv[2]), float(argv[3]))), flush=True)
        return 0
    from aiotstream.cli import count, number, out_file

    p = parser_class(prog="aiotstream bench mqtt", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", choices=["throughput", "burst"], default="throughput")
    p.add_argument("--messages", type=count(1, 100_000_000), default=100_000, help="readings per run (default 100,000)")
    p.add_argument("--rounds", type=count(1, 1000), default=5, help="throughput: interleaved rounds (default 5)")
    p.add_argument("--qos", type=int, nargs="+", default=[0, 1], choices=[0, 1], help="throughput: QoS levels")
    p.add_argument("--contenders", default="bare,ingest,flow", help="throughput: bare, ingest, flow")
    p.add_argument("--rate", type=number(0, 10_000_000, above=True), default=7350.0, help="burst: publish rate, messages/s (default 7,350)")
    p.add_argument("--publishers", type=count(1, 64), default=3, help="burst: publisher processes (default 3)")
    p.add_argument("--drain-timeout", type=number(0, 86_400, above=True), default=1800.0, help="burst: seconds to wait for the flow")
    p.add_argument("--json", metavar="FILE", help="write the result JSON here (default benchmarks/results/)")
    args = p.parse_args(argv)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if not contenders or set(contenders) - {"bare", "ingest", "flow"}:
        p.error(f"argument --contenders: give some of bare, ingest, flow (got {args.contenders!r})")
    if args.json:
        out_file(args.json, "--json")  # before minutes of work, not after
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("bench mqtt needs mosquitto and mosquitto_pub (apt-get install -y mosquitto mosquitto-clients)",
              file=sys.stderr)
        return 2
    from benchmarks.common import git_rev, save

    res = throughput(args) if args.mode == "throughput" else burst(args)
    res["git"] = git_rev()
    if args.mode == "throughput":
        for q, s in res["summary"].items():
            print(f"{q}: median msg/s {s['median_rate']}, CPU us/msg {s['median_cpu_us_per_msg']}, "
                  f"ratio to bare {s['ratio_to_bare']} (per-round median {s['per_round_ratio_median']})")
    print(f"results: {save(f'mqtt-{args.mode}', res, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
