"""The building flow's scalar JSON throughput: N 1 Hz meters (N/4 zones x power, temperature, occupancy,
HVAC state, plus the outdoor sensor) preloaded into a Tansu broker, then ``aiotstream run --once`` over them.

    python -m benchmarks.building --meters 2000 --seconds 300 [--interval 60] [--json FILE]

Rate = readings / (first poll batch -> end of run), so process start-up is left out (as in
:mod:`benchmarks.scaling`); CPU seconds and peak RSS come from the kernel. ``BENCH_PROFILE=FILE``
writes a cProfile of the flow process. ``benchmarks.e2e --scalar-flow building`` runs the same flow
on its scalar workload size (``preload_building``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from aiotstream.io.broker import TansuBroker
from aiotstream.sim.building import BuildingSimulator
from benchmarks.common import save
from benchmarks.scaling import run_flow
from benchmarks.workload import ScalarData, _produce, create_topics, output_topics, write_site

TOPIC = "bench.building"


def building_site(site_id: str, zones: int, topic: str = TOPIC, interval_s: float = 60.0,
                  poll_batch: int = 10_000) -> dict[str, Any]:
    """The benchmark building: zones on floors of 100 (neighbours in a chain, so the per-floor step runs),
    production settings except a short baseline warm-up (so the model predicts as well as learns within the
    run)."""
    floors = [(f, min(100, zones - 100 * f)) for f in range((zones + 99) // 100)]
    return {"site": {"id": site_id, "name": "benchmark building", "flow": "energy-optimization"},
            "building": {"interval_s": interval_s, "outdoor_asset": "weather",
                         "zone_groups": [{"prefix": f"f{f}-z", "count": n, "width": 3, "floor": f"floor-{f}",
                                          "adjacency": "chain"} for f, n in floors],
                         "baseline": {"warmup_intervals": 2}},
            "window": {"allowed_lateness_s": 5},
            "inputs": {"topics": [topic], "tail": False, "poll_batch": poll_batch},
            "kpi": {"periods_s": [interval_s * 5]}}


def preload_building(brokers: str, *, keys: int, rate_hz: float = 1.0, duration_s: float, partitions: int,
                     topic: str = TOPIC, seed: int = 3) -> ScalarData:
    """``keys`` meters (keys / 4 zones) at 1 Hz for ``duration_s x rate_hz`` seconds of event time (the same
    number of readings as the generic scalar workload of that size)."""
    zones = max(1, keys // 4)
    site = building_site("x", zones)
    ids = [(f"{g['prefix']}{i:03d}", g["floor"]) for g in site["building"]["zone_groups"]
           for i in range(1, g["count"] + 1)]
    seconds = int(duration_s * rate_hz)
    sim = BuildingSimulator(ids, duration_s=seconds, day_s=86_400, seed=seed, empty=0, simultaneous=0, creep=0)
    create_topics(brokers, [topic], partitions)
    t = time.perf_counter()
    n = _produce(brokers, ((topic, k, v) for k, v in sim.messages()))
    return ScalarData(topic, zones * 4, 1.0, seconds, n, time.perf_counter() - t)


def measure(brokers: str, tmp: Path, data: ScalarData, interval_s: float = 60.0, label: str = "",
            poll_batch: int = 10_000) -> dict[str, Any]:
    site_id = f"bench-building{label}"
    site = write_site(tmp, building_site(site_id, data.keys // 4, data.topic, interval_s, poll_batch))
    create_topics(brokers, output_topics(site_id) + [f"{site_id}.commands"], 3)
    run = run_flow(brokers, site, 1, tmp=tmp)
    if run["messages"] != data.events:
        raise RuntimeError(f"{site_id}: the flow read {run['messages']} readings, {data.events} were produced")
    eps = run["messages"] / run["span_s"]
    return {"flow": "building", **run, "events_per_s": round(eps),
            "events_per_s_per_worker": round(eps / (run["processes"] * run["workers_per_process"])),
            "cpu_us_per_event": round(run["cpu_s"] / run["messages"] * 1e6, 2), "interval_s": interval_s,
            "poll_batch": poll_batch}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=300.0, help="event-time seconds of 1 Hz readings")
    ap.add_argument("--interval", type=float, default=60.0, help="building.interval_s")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--poll-batch", type=int, default=10_000, help="inputs.poll_batch (messages per consume)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    with TemporaryDirectory() as tmp, TansuBroker() as broker:
        print(f"writing {args.meters} meters x {args.seconds:g} s of 1 Hz JSON readings ...", flush=True)
        data = preload_building(broker.bootstrap, keys=args.meters, duration_s=args.seconds,
                                partitions=args.partitions)
        print(f"  {data.events:,} readings in {data.produce_s:.1f} s; running the building flow ...", flush=True)
        r = measure(broker.bootstrap, Path(tmp), data, args.interval, poll_batch=args.poll_batch)
    print(f"  {r['events_per_s_per_worker']:,} events/s per worker ({r['messages']:,} readings over {r['span_s']} s, "
          f"{r['cpu_s']} CPU s, {r['cpu_us_per_event']} CPU us/event, peak RSS {r['peak_rss_mb']} MB)")
    out = save("building", {"workload": data.summary(), "run": r, "command": "python -m benchmarks.building "
                            + " ".join(sys.argv[1:] if argv is None else argv)}, args.json)
    print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
