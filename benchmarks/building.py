"""The building flow's scalar JSON throughput: N 1 Hz meters (N/4 zones x power, temperature, occupancy,
HVAC state, plus the outdoor sensor) preloaded into a Tansu broker, then ``aiotstream run --once`` over them.

    python -m benchmarks.building --meters 2000 --seconds 300 [--interval 60] [--json FILE]

Rate = readings / (first poll batch -> end of run), so process start-up is left out (as in
:mod:`benchmarks.scaling`); CPU seconds and peak RSS come from the kernel. ``BENCH_PROFILE=FILE``
writes a cProfile of the flow process.

``--repeat N`` runs the flow N times over the same preloaded readings, each after a bare consumer that only
drains the topic with the flow's consumer settings (one consumer per partition, ``poll_batch`` per consume,
one thread): that drain is what the broker serves on this machine, the ceiling of any flow here, so the
report gives medians, min, max and spread of both and of the flow's share of the ceiling (issue 21: judge
steady state, >= 30 s a run, on medians of interleaved runs). ``benchmarks.e2e --scalar-flow building``
runs the same flow on its scalar workload size (``preload_building``).

``--tree DIR`` (repeatable) runs the flow from each checkout in turn every round (kernels built or copied
there), and reports each and the median of the per-round ratios of the last to the first:

    python -m benchmarks.building --meters 2000 --seconds 7500 --repeat 5 --tree /tmp/base --tree .
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
from benchmarks import common, repeats
from benchmarks.common import machine, save
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


def drain(brokers: str, data: ScalarData, partitions: int, poll_batch: int) -> dict[str, Any]:
    """Read every message of ``data.topic`` as the flow's source does (one consumer per partition with the
    flow's consumer settings and ``AIOTSTREAM_KAFKA_*`` from the environment, ``poll_batch`` per consume,
    round robin in one thread), doing nothing with them: messages/s from the first message to the last."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from aiotstream.io.kafka_client import CONSUMER_DEFAULTS, client_config_from_env

    conf = {"bootstrap.servers": brokers, "group.id": f"drain-{time.time_ns()}", "enable.auto.commit": False,
            "enable.partition.eof": True, **CONSUMER_DEFAULTS, **client_config_from_env()}
    live = []
    for p in range(partitions):
        c = Consumer(conf)
        c.assign([TopicPartition(data.topic, p, 0)])
        live.append(c)
    n, first, cpu0 = 0, None, time.process_time()
    while live:
        for c in list(live):
            for m in c.consume(poll_batch, 0.001):
                err = m.error()
                if err is None:
                    n += 1
                    if first is None:
                        first = time.perf_counter()
                elif err.code() == KafkaError._PARTITION_EOF:
                    live.remove(c)
                    c.close()
                    break
    span = time.perf_counter() - (first or time.perf_counter())
    if n != data.events:
        raise RuntimeError(f"the drain read {n} messages, {data.events} were produced")
    return {"messages": n, "span_s": round(span, 3), "events_per_s": round(n / span) if span else None,
            "cpu_s": round(time.process_time() - cpu0, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=300.0, help="event-time seconds of 1 Hz readings")
    ap.add_argument("--interval", type=float, default=60.0, help="building.interval_s")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--poll-batch", type=int, default=10_000, help="inputs.poll_batch (messages per consume)")
    ap.add_argument("--repeat", type=int, default=1, help="flow runs, each after a bare drain of the topic")
    ap.add_argument("--tree", action="append",
                    help="a checkout to run the flow from (repeatable: each in turn every round; default: this one)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    trees = common.checkouts(args.tree)
    at_start = machine()
    with TemporaryDirectory() as tmp, TansuBroker() as broker:
        print(f"writing {args.meters} meters x {args.seconds:g} s of 1 Hz JSON readings ...", flush=True)
        data = preload_building(broker.bootstrap, keys=args.meters, duration_s=args.seconds,
                                partitions=args.partitions)
        print(f"  {data.events:,} readings in {data.produce_s:.1f} s; running the building flow ...", flush=True)
        runs, drains = [], []
        for i in range(args.repeat):
            if args.repeat > 1:
                d = drain(broker.bootstrap, data, args.partitions, args.poll_batch)
                drains.append(d)
                print(f"  round {i + 1} of {args.repeat}: bare drain {d['events_per_s']:,} messages/s "
                      f"({d['span_s']} s)", flush=True)
            for j, tree in enumerate(trees):
                if len(trees) > 1:  # the flow runs from ``tree`` (cwd and PYTHONPATH)
                    common.run_from(tree)
                r = measure(broker.bootstrap, Path(tmp), data, args.interval,
                            label=f"-{i}-{j}" if len(trees) > 1 else (f"-{i}" if i else ""),
                            poll_batch=args.poll_batch)
                if len(trees) > 1:
                    r["tree"] = str(tree)
                runs.append(r)
                print(f"  {r['events_per_s_per_worker']:,} events/s per worker ({r['messages']:,} readings over "
                      f"{r['span_s']} s, {r['cpu_s']} CPU s, {r['cpu_us_per_event']} CPU us/event, peak RSS "
                      f"{r['peak_rss_mb']} MB){f'  [{tree}]' if len(trees) > 1 else ''}", flush=True)
    r = runs[repeats.median_index([x["events_per_s_per_worker"] for x in runs])]
    result: dict[str, Any] = {"workload": data.summary(), "run": r, "machine": at_start,
                              "loadavg_at_end": machine()["loadavg_at_start"],
                              "command": "python -m benchmarks.building "
                              + " ".join(sys.argv[1:] if argv is None else argv)}
    if len(trees) > 1:
        per = {str(t): [x["events_per_s_per_worker"] for x in runs if x["tree"] == str(t)] for t in trees}
        result["trees"] = {t: repeats.figure(v) for t, v in per.items()}
        result["runs"], result["drains"] = runs, drains
        result["last_over_first"] = repeats.ratio(per[str(trees[-1])], per[str(trees[0])])
        for t, f in result["trees"].items():
            print(f"  {t}: median {f['median']:,} events/s per worker (min {f['min']:,}, max {f['max']:,})")
        f = result["last_over_first"]
        print(f"  {trees[-1]} / {trees[0]}: median of per-round ratios {f['median']} (min {f['min']}, max {f['max']})")
    elif args.repeat > 1:
        flow = [x["events_per_s_per_worker"] for x in runs]
        per_cpu = [round(x["messages"] / x["cpu_s"]) for x in runs]
        bare = [d["events_per_s"] for d in drains]
        result["repeats"] = {"runs": runs, "drains": drains,
                             "events_per_s_per_worker": repeats.figure(flow),
                             "events_per_cpu_s": repeats.figure(per_cpu),
                             "drain_events_per_s": repeats.figure(bare),
                             "flow_share_of_drain": repeats.ratio(flow, bare)}
        for k in ("events_per_s_per_worker", "events_per_cpu_s", "drain_events_per_s", "flow_share_of_drain"):
            f = result["repeats"][k]
            print(f"  {k}: median {f['median']:,} (min {f['min']:,}, max {f['max']:,}, spread "
                  f"{f['spread']:.1%}{', NOISY' if f['noisy'] else ''})")
    out = save("building", result, args.json)
    print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
