"""A stand-in for the flow in :mod:`benchmarks.latency`: how fast the broker alone lets a window's output out.

It reads the frames as the flow does (one consumer per partition, the flow's consumer settings, polls of up to
10,000 messages, at once from a partition that has some and with a 1 ms wait from one that has none,
partitions in turn) and, for every frame that carries a window's last sample, produces one small score-like
record for that window (``asset``, ``window.start_ns``, ``produced_at``) with the flow's producer settings.
No features, no detector, no lineage: what is left is the paced producer, the broker, two fetches and one
produce, on the same cores as the real run. So the latency benchmark's figures with this stand-in are the
floor under any flow on this host and load.

``--flush``: wait for the broker's acknowledgement of every poll batch's records before polling again, as
the flow's sink does (:class:`aiotstream.io.kafka._OutputPartition`); without it the records leave from
librdkafka's thread while the next poll goes on.

Run by :func:`benchmarks.latency.run_latency` (``stand_in``); stops on SIGINT.
"""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from aiotstream.codecs.frames import _HEAD, HEADER_SIZE
from aiotstream.io.kafka import PRODUCER_DEFAULTS
from aiotstream.io.kafka_client import CONSUMER_DEFAULTS, client_config_from_env

SECOND = 1_000_000_000


def closes(t0_ns: int, n: int, rate_hz: float) -> int | None:
    """The start of the 1 s window whose last sample is in a frame of ``n`` samples from ``t0_ns``, if any.

    >>> closes(900_000_000, 1024, 10_000.0), closes(0, 1024, 10_000.0)
    (0, None)
    """
    end = t0_ns + round(n * 1e9 / rate_hz)
    return t0_ns // SECOND * SECOND if end // SECOND > t0_ns // SECOND else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True, help="topic for the records (the site's scores topic)")
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--flush", action="store_true", help="wait for each poll batch's records to be on the broker")
    args = ap.parse_args(argv)
    env = client_config_from_env()  # AIOTSTREAM_KAFKA_FETCH_WAIT_MAX_MS, as the flow reads it
    consumers = []
    for p in range(args.partitions):
        c = Consumer({"bootstrap.servers": args.brokers, "group.id": "latency-echo", "enable.auto.commit": "false",
                      **CONSUMER_DEFAULTS, **env})
        c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING)])
        consumers.append(c)
    producer = Producer({"bootstrap.servers": args.brokers, **PRODUCER_DEFAULTS,
                         **{k: v for k, v in env.items() if not k.startswith("fetch")}})
    try:
        while True:
            for c in consumers:
                sent = 0
                for m in c.consume(10_000, 0) or c.consume(10_000, 0.001):  # (as the flow's source)
                    if m.error() is not None:
                        continue
                    raw = m.value()  # the frame's header only (aiotstream.codecs.frames)
                    _, _, _, _, n, rate, t0_ns, _, alen = _HEAD.unpack_from(raw, 0)
                    start = closes(t0_ns, n, rate)
                    if start is None:
                        continue
                    asset = raw[HEADER_SIZE:HEADER_SIZE + alen]
                    rec = {"asset": asset.decode(), "window": {"start_ns": start},
                           "produced_at": datetime.now(UTC).isoformat()}
                    producer.produce(args.out, orjson.dumps(rec), key=asset)
                    sent += 1
                if sent and args.flush:
                    producer.flush()
                else:
                    producer.poll(0)
    except KeyboardInterrupt:
        pass
    producer.flush(5)
    for c in consumers:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
