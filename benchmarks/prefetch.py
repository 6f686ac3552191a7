"""What librdkafka's prefetch queue holds and buys: the consumers' queue bounds, A/B, over a backlog.

Each Kafka input partition has its own consumer (Bytewax's static assignment), and librdkafka keeps
fetching a partition while its queue holds fewer than ``queued.min.messages`` (100,000) messages and less
than ``queued.max.messages.kbytes`` (64 MiB) of values. A variant is a JSON object of librdkafka options,
given to the flow as ``AIOTSTREAM_KAFKA_<NAME>`` variables (``{}``: the defaults); the variants run in
turn once per round over one preloaded topic, so drift on a shared machine hits them alike.

    python -m benchmarks.prefetch drain --keys 20000 --duration 60 \\
        --variant '{}' --variant '{"queued.min.messages": "20000"}'        # the queue alone, in process
    python -m benchmarks.prefetch waveform --assets 40 --duration 1200 --partitions 6 --rounds 2 \\
        --variant '{}' --variant '{"queued.max.messages.kbytes": "16384"}'  # the flow: throughput, peak RSS
    python -m benchmarks.prefetch readings --keys 2000 --rate 10 --duration 150 --rounds 3 \\
        --variant '{}' --variant '{"queued.min.messages": "20000"}'         # the pm-readings flow

``drain`` opens one consumer per partition in this process and reads them like the flow's source
(``consume(n, 0)``, 10,000 a call) with a 50 ms pause a round, as a busy worker would, and reports the
RSS it gained at most. One JSON line per run on stdout (and appended to ``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import emit_json

_PREFIX = "AIOTSTREAM_KAFKA_"


@contextmanager
def librdkafka_env(options: dict[str, str]) -> Iterator[None]:
    """``options`` as ``AIOTSTREAM_KAFKA_<NAME>`` variables while the block runs (what spawned flows inherit),
    any others of that prefix hidden.

    >>> with librdkafka_env({"queued.min.messages": "20000"}):
    ...     os.environ["AIOTSTREAM_KAFKA_QUEUED_MIN_MESSAGES"]
    '20000'
    >>> "AIOTSTREAM_KAFKA_QUEUED_MIN_MESSAGES" in os.environ
    False
    """
    saved = {k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith(_PREFIX)]}
    os.environ.update({_PREFIX + k.upper().replace(".", "_"): str(v) for k, v in options.items()})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith(_PREFIX)]:
            del os.environ[k]
        os.environ.update(saved)


def drain(brokers: str, topic: str, partitions: int, options: dict[str, str]) -> dict[str, Any]:
    """Read every partition of ``topic`` to its end as the flow's source polls, slowly; the RSS gained."""
    import psutil
    from confluent_kafka import Consumer, TopicPartition

    from aiotstream.io.kafka_client import CONSUMER_DEFAULTS

    proc = psutil.Process()
    base = proc.memory_info().rss
    consumers = []
    for p in range(partitions):
        c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-prefetch", "enable.auto.commit": False,
                      "enable.partition.eof": True, **CONSUMER_DEFAULTS, **options})
        c.assign([TopicPartition(topic, p, 0)])
        consumers.append(c)
    peak = got = 0
    done: set[int] = set()
    t0 = time.perf_counter()
    while len(done) < partitions:
        for i, c in enumerate(consumers):
            if i in done:
                continue
            for m in c.consume(10_000, 0) or c.consume(10_000, 0.001):
                if m.error():
                    done.add(i)  # (the end of the partition)
                    break
                got += 1
        time.sleep(0.05)  # the worker busy with what it took
        peak = max(peak, proc.memory_info().rss - base)
    span = time.perf_counter() - t0
    for c in consumers:
        c.close()
    return {"messages": got, "span_s": round(span, 2), "rss_gained_mb": round(peak / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.prefetch", description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["drain", "waveform", "readings"])
    ap.add_argument("--variant", action="append", required=True, type=json.loads,
                    help="librdkafka options as a JSON object; repeat ('{}': the defaults)")
    ap.add_argument("--keys", type=int, default=20000, help="drain, readings: scalar keys")
    ap.add_argument("--rate", type=float, default=1.0, help="drain, readings: readings per key and second")
    ap.add_argument("--assets", type=int, default=40, help="waveform: assets (3 x 10 kHz)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of plant time")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None, help="append each run as a JSON line here")
    args = ap.parse_args(argv)
    from aiotstream.io.broker import TansuBroker

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="bench-prefetch-") as tmp, TansuBroker() as broker:
        if args.workload == "waveform":
            from benchmarks.workload import preload_waveforms
            data: Any = preload_waveforms(broker.bootstrap, assets=args.assets, duration_s=args.duration,
                                          partitions=args.partitions, slice_assets=0, slice_duration_s=0.0)
        else:
            from benchmarks.workload import preload_scalars
            data = preload_scalars(broker.bootstrap, keys=args.keys, rate_hz=args.rate, duration_s=args.duration,
                                   partitions=args.partitions)
        n = 0
        for rnd in range(args.rounds):
            for options in args.variant:
                n += 1
                with librdkafka_env(options):
                    fig = _run(args, broker.bootstrap, data, options, Path(tmp) / f"r{n}", n)
                emit_json({"workload": args.workload, "round": rnd, "options": options, **fig,
                           "load": round(os.getloadavg()[0], 2)}, args.json)
    return 0


def _run(args: argparse.Namespace, brokers: str, data: Any, options: dict[str, str], d: Path,
         n: int) -> dict[str, Any]:
    if args.workload == "drain":
        return drain(brokers, data.topic, args.partitions, options)
    from aiotstream.config.inputs import InputConfig

    poll = InputConfig.model_fields["poll_batch"].default  # (the product's default poll, not the harnesses')
    d.mkdir()
    if args.workload == "waveform":
        from benchmarks.scaling import measure
        from benchmarks.workload import delete_topics, output_topics
        r = measure(brokers, d, data, 1, model="calibrated", label=f"-prefetch{n}", partitions=args.partitions,
                    poll_batch=poll)
        delete_topics(brokers, output_topics(r["site"]))
        keys = ("samples_per_s_per_worker", "cpu_s", "peak_rss_mb", "scores_digest")
    else:
        from benchmarks import scalar
        r = scalar.measure_scalar(brokers, d, data, "pm-readings", partitions=args.partitions, tag=f"-{n}",
                                  poll_batch=poll)
        keys = ("events_per_s_per_worker", "cpu_us_per_event", "cpu_s", "peak_rss_mb")
    return {k: r[k] for k in keys}


if __name__ == "__main__":
    raise SystemExit(main())
