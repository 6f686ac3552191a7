"""Scaling: the waveform flow on the real broker with 1 process vs 2 processes (one worker each).

The input (N assets x D s of 10 kHz 3-axis frames) is written to a Tansu broker once;
each configuration then runs ``aiotstream run --once`` over it to its own output topics.
Throughput is frames / (last - first ``produced_at`` of the score records), which
leaves process start-up (imports, connecting) out of the figure. Both runs happen in
this one invocation so their ratio is measured side by side.

    python -m benchmarks.scaling --assets 40 --duration 120
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson

from aiotstream.config import SiteConfig
from aiotstream.io.broker import TansuBroker, free_port
from aiotstream.io.kafka import ensure_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.simulator import PlantSimulator
from benchmarks.common import save


def _site(path: Path, site: str, assets: int) -> Path:
    path.write_text(f"""
[site]
id = "{site}"
[[asset_groups]]
prefix = "p-"
count = {assets}
[inputs]
topics = ["bench.waveforms", "bench.readings"]
tail = false
""")
    return path


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _run(brokers: str, site: Path, site_id: str, processes: int, epoch_s: float) -> dict:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    cmd = [sys.executable, "-m", "aiotstream.cli", "run", "--site", str(site), "--brokers", brokers, "--once",
           "--epoch-s", str(epoch_s)]
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd + (["-i", str(i), "-a", addresses] if processes > 1 else []),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(processes)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"run failed: {err[-2000:]}")
    wall = time.perf_counter() - t
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench", "enable.partition.eof": True})
    c.assign([TopicPartition(f"{site_id}.scores", p, 0) for p in range(3)])
    stamps, frames, eof = [], 0, 0
    while eof < 3:
        for m in c.consume(1000, timeout=1):
            if m.error():
                eof += m.error().code() == KafkaError._PARTITION_EOF
                continue
            rec = orjson.loads(m.value())
            stamps.append(_ts(rec["produced_at"]))
            frames += rec["frames"]
    c.close()
    span = max(stamps) - min(stamps)
    return {"processes": processes, "wall_s": round(wall, 2), "frames": frames, "windows": len(stamps),
            "active_s": round(span, 2), "frames_per_s": round(frames / span), "samples_per_s": round(frames * 3072 / span)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=40)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--epoch-s", type=float, default=1.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    with TemporaryDirectory() as tmp, TansuBroker() as broker:
        cfg_path = _site(Path(tmp) / "s1.toml", "bench-1", args.assets)
        cfg = SiteConfig.load(cfg_path)
        sim = PlantSimulator(cfg.all_assets(), duration_s=args.duration, n_faults=0, seed=1)
        print(f"writing {sim.n_frames:,} frames ({args.assets} assets x {args.duration:g} s) to the broker ...",
              flush=True)
        ensure_topics(broker.bootstrap, ["bench.waveforms", "bench.readings"], partitions=args.partitions)
        write_to_kafka(sim.messages(), broker.bootstrap, "bench.waveforms", "bench.readings")
        runs = []
        for n in (1, 2):
            site_id = f"bench-{n}"
            path = _site(Path(tmp) / f"s{n}.toml", site_id, args.assets)
            ensure_topics(broker.bootstrap, [f"{site_id}.{k}" for k in ("alerts", "kpis", "scores", "deadletter")])
            r = _run(broker.bootstrap, path, site_id, n, args.epoch_s)
            runs.append(r)
            print(f"  {n} process(es): {r['frames_per_s']:,} frames/s ({r['samples_per_s'] / 1e6:.1f} M samples/s) "
                  f"over {r['active_s']} s active, {r['wall_s']} s wall", flush=True)
    ratio = runs[1]["frames_per_s"] / runs[0]["frames_per_s"]
    print(f"  2 processes / 1 process = {ratio:.2f}x")
    out = save("scaling", {"assets": args.assets, "duration_s": args.duration, "partitions": args.partitions,
                           "runs": runs, "ratio_2_over_1": round(ratio, 3)}, args.json)
    print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
