"""Peer: the waveform flow in Quix Streams (StreamingDataFrame, tumbling windows, state) with River.

Written as a competent Quix user would, one message (frame) at a time, since that is Quix's
unit of processing::

    topic (binary frames; value deserializer: header + numpy view; timestamp = the frame's t0)
    -> apply: per-frame power sums per axis with numpy  [n, S1, S2, S3, S4, min, max] x 3
    -> tumbling_window(1 s).reduce(merge sums).final()       (window state in RocksDB,
                                                                 changelog topic on the broker)
    -> apply: 9 features per axis from the sums, River MinMaxScaler | HalfSpaceTrees
       (score_one, learn_one), one model per message key
    -> to_topic: one JSON score record per asset and window

River models are not JSON-serialisable, and Quix keeps state as JSON in RocksDB; so the models
live in a dict in the process, keyed by asset (as a user would do; it costs the peer nothing).
Quix emits a window when a later message of the same key passes its end, so each asset's last
window stays open at the end of the input.

Tansu-specific settings (see benchmarks/README.md): the input topic must be created with its
``retention.ms`` set (Tansu's DescribeConfigs reports only what a topic was created with, and
Quix reads it), and ``session.timeout.ms`` is lowered to 6 s because Tansu holds a JoinGroup
for half the session timeout (23 s with librdkafka's default of 45 s).

This script runs in its own virtual environment (benchmarks/.venv-quix): Quix Streams pins
confluent-kafka < 2.13 and pydantic < 2.14, older than aiotstream's.

    python benchmarks/peers/quix_river.py --brokers B --topic T --out OUT --stats STATS.json \
        --expect-windows N [--guarantee at-least-once|exactly-once] [--no-changelog]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks.peers.common without installing

from benchmarks.peers.common import (
    Stats,
    decode_frame,
    features_from_power_sums,
    log,
    merge_power_sums,
    power_sums,
    preload_river,
    river_model,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--expect-windows", type=int, required=True,
                    help="stop after this many output windows (or after --idle-s without input)")
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once")
    ap.add_argument("--no-changelog", action="store_true", help="use_changelog_topics=False")
    args = ap.parse_args(argv)

    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    preload_river()
    stats = Stats(args.stats)

    class FrameDeserializer(Deserializer):
        def __call__(self, value: bytes, ctx: object) -> dict:
            asset, t0_ns, _rate, samples = decode_frame(value)
            stats.seen(1, samples.size)
            return {"asset": asset, "t0_ms": t0_ns // 1_000_000, "samples": samples}

    state_dir = tempfile.mkdtemp(prefix="quix-state-")
    processed = {"t": None, "n": 0}

    def on_processed(topic: str, partition: int, offset: int) -> None:
        processed["t"] = time.time()
        processed["n"] += 1
    app = Application(
        broker_address=args.brokers,
        consumer_group=f"bench-quix-{time.time_ns()}",
        auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        use_changelog_topics=not args.no_changelog,
        state_dir=state_dir,
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20},
        loglevel="WARNING",
        on_message_processed=on_processed,
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer=FrameDeserializer(),
                      timestamp_extractor=lambda value, headers, ts, ts_type: value["t0_ms"])
    out = app.topic(args.out, value_serializer="json", key_serializer="str")
    sdf = app.dataframe(topic)
    sdf = sdf.apply(lambda v: power_sums(v["samples"]))
    sdf = sdf.tumbling_window(timedelta(seconds=1)).reduce(merge_power_sums, lambda s: s).final()

    models: dict[str, object] = {}

    def score(window: dict, key: str, timestamp: int, headers: object) -> dict:
        model = models.get(key)
        if model is None:
            model = models[key] = river_model()
        x = features_from_power_sums(window["value"])
        s = model.score_one(x)
        model.learn_one(x)
        stats.d["windows"] += 1
        n = int(sum(window["value"][0::7]))
        return {"asset": key, "window_start_ns": window["start"] * 1_000_000,
                "samples": n, "score": round(s, 6), "produced_at": time.time()}

    sdf = sdf.apply(score, metadata=True)
    sdf.to_topic(out)
    log(f"quix: {args.topic} -> {args.out}, guarantee {args.guarantee}, changelog {not args.no_changelog}")
    app.run(count=args.expect_windows, timeout=args.idle_s, collect=False)
    # the rate's end: the last input message fully processed (its outputs handed to the producer);
    # the idle time-out Quix waits before it stops is left out
    stats.write(t_done=processed["t"], processed=processed["n"], t_returned=time.time(), guarantee=args.guarantee,
                changelog=not args.no_changelog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
