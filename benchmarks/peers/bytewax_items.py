"""Peer: the waveform flow as Bytewax's and River's documentation would have a user write it.

One record per reading, per-item operators, Bytewax windowing, numpy + River per window, no
batching::

    KafkaSource (binary frames) -> flat_map: one record per reading
      {"asset", "ts" (ns), "x", "y", "z"}  (a reading = the three axes at one sample instant)
    -> key_on(asset) -> fold_window(EventClock(ts), TumblingWindower(1 s)): append the reading
    -> map: numpy features of the window (9 per axis) -> stateful_map: River
       MinMaxScaler | HalfSpaceTrees, score_one then learn_one
    -> KafkaSink: one JSON score record per asset and window

The input topic holds the same binary frames aiotstream reads; turning each frame into its
readings stands in for a gateway that publishes one JSON record per reading (parsing JSON would
only add to this peer's cost). ``EventClock`` waits 0 s of system time, as in Bytewax's examples;
readings an asset delivers after its window closed are counted as late.

    python -m benchmarks.peers.bytewax_items --brokers B --topic T --out OUT --stats STATS.json
"""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main

from benchmarks.peers.common import (
    Stats,
    decode_frame,
    features_from_samples,
    preload_river,
    river_model,
    score_record,
)

ALIGN = datetime(2020, 1, 1, tzinfo=UTC)
WINDOW = timedelta(seconds=1)


def build(brokers: list[str], topic: str, out_topic: str, stats: Stats, late: list[int]) -> Dataflow:
    flow = Dataflow("peer_bytewax_items")
    msgs = op.input("kafka_in", flow, KafkaSource(brokers, [topic], tail=False))

    def to_readings(msg):
        asset, t0_ns, rate, samples = decode_frame(msg.value)
        n = samples.shape[1]
        stats.seen(1, samples.size)
        step = 1e9 / rate
        x, y, z = samples.tolist()
        return [{"asset": asset, "ts": t0_ns + round(i * step), "x": x[i], "y": y[i], "z": z[i]} for i in range(n)]

    readings = op.flat_map("explode", msgs, to_readings)
    keyed = op.key_on("by_asset", readings, lambda r: r["asset"])
    clock = win.EventClock(ts_getter=lambda r: datetime.fromtimestamp(r["ts"] / 1e9, tz=UTC),
                           wait_for_system_duration=timedelta(seconds=0))
    windower = win.TumblingWindower(length=WINDOW, align_to=ALIGN)

    def add(acc: dict, r: dict) -> dict:
        acc["x"].append(r["x"])
        acc["y"].append(r["y"])
        acc["z"].append(r["z"])
        return acc

    def merge(a: dict, b: dict) -> dict:
        return {k: a[k] + b[k] for k in a}

    windows = win.fold_window("window", keyed, clock, windower, lambda: {"x": [], "y": [], "z": []}, add, merge)

    def count_late(kv):
        late[0] += 1

    op.inspect("late", windows.late, lambda _step, kv: count_late(kv))

    def features(kv):
        asset, (window_id, acc) = kv
        import numpy as np

        x = np.array([acc["x"], acc["y"], acc["z"]])
        return asset, (window_id, x.size, features_from_samples(x))

    feats = op.map("features", windows.down, features)

    def score(model, item):
        if model is None:
            model = river_model()
        window_id, n, x = item
        s = model.score_one(x)
        model.learn_one(x)
        return model, (window_id, n, s)

    scored = op.stateful_map("river", feats, score)

    def to_message(kv):
        asset, (window_id, n, s) = kv
        start = int((ALIGN + window_id * WINDOW).timestamp() * 1e9)
        stats.d["windows"] += 1
        return KafkaSinkMessage(asset.encode(), score_record(asset, start, n, s))

    op.output("kafka_out", op.map("serialize", scored, to_message), KafkaSink(brokers, out_topic))
    return flow


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--epoch-s", type=float, default=1.0)
    args = ap.parse_args(argv)
    preload_river()
    stats = Stats(args.stats)
    late = [0]
    flow = build(args.brokers.split(","), args.topic, args.out, stats, late)
    cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=args.epoch_s))
    stats.write(t_done=datetime.now(UTC).timestamp(), late=late[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
