"""Peer: a plain numpy batch job over the same frames, no streaming: the "limit" reference.

Reads every frame from the input topic once, decodes them into one ``(frames, 3, 1024)`` array,
then computes the same 9 features per axis for every asset and 1 s window in a handful of
vectorised numpy calls (per-frame power sums, ``np.add.reduceat`` over each window's frames,
features of all windows at once). No model, no outputs to Kafka, no state beyond the batch.
Three figures: fetching from the broker, decoding, and computing, each timed on its own.

    python -m benchmarks.peers.numpy_batch --brokers B --topic T --stats STATS.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks.peers.common import CHANNELS, FEATURES, HEAD, WINDOW_NS, log


def fetch(brokers: str, topic: str) -> list[bytes]:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"numpy-batch-{time.time_ns()}",
                  "enable.partition.eof": True, "enable.auto.commit": False,
                  "fetch.max.bytes": str(64 << 20), "max.partition.fetch.bytes": str(16 << 20)})
    parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    values: list[bytes] = []
    done: set[int] = set()
    while len(done) < len(parts):
        for m in c.consume(5000, timeout=1.0):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    done.add(m.partition())
                continue
            values.append(m.value())
    c.close()
    return values


def decode(values: list[bytes], chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(samples (F, C, N) float32, asset index (F,), t0_ns (F,))``; all frames share one shape.

    ``chunk`` frames at a time into the preallocated result: the messages plus the samples is the peak (one
    ``b"".join`` of all messages doubled it, and at bench e2e's default 5.8 GB the kernel killed the job)."""
    _magic, _v, code, channels, n, _rate, _t0, _seq, alen = HEAD.unpack_from(values[0], 0)
    off = HEAD.size + alen
    body = channels * n * 4
    assert code == 1 and all(len(v) == off + body for v in values), "mixed frame shapes"
    f = len(values)
    samples = np.empty((f, channels, n), "<f4")
    t0 = np.empty(f, "<i8")
    ids = np.empty((f, alen), np.uint8)
    for a in range(0, f, chunk):
        buf = np.frombuffer(b"".join(values[a:a + chunk]), np.uint8).reshape(-1, off + body)
        samples[a:a + len(buf)] = buf[:, off:].view("<f4").reshape(len(buf), channels, n)
        t0[a:a + len(buf)] = buf[:, 20:28].copy().view("<i8").ravel()
        ids[a:a + len(buf)] = buf[:, HEAD.size:off]
    _, asset = np.unique(ids, axis=0, return_inverse=True)
    return samples, asset.ravel(), t0


def window_features(samples: np.ndarray, asset: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """Features ``(windows, C, 9)`` of every (asset, 1 s window), frames assigned by their t0."""
    f, c, n_s = samples.shape
    sums = np.empty((f, c, 5))
    sums[..., 0] = n_s
    mins, maxs = samples.min(2).astype(np.float64), samples.max(2).astype(np.float64)
    for a in range(0, f, 2048):  # per-frame power sums in float64, 2048 frames at a time (bounded memory)
        x = samples[a:a + 2048].astype(np.float64)
        x2 = x * x
        sums[a:a + 2048, :, 1] = x.sum(2)
        sums[a:a + 2048, :, 2] = x2.sum(2)
        sums[a:a + 2048, :, 3] = (x2 * x).sum(2)
        sums[a:a + 2048, :, 4] = (x2 * x2).sum(2)
    window = t0 // WINDOW_NS
    order = np.lexsort((window, asset))
    key = np.stack([asset[order], window[order]], axis=1)
    starts = np.flatnonzero(np.r_[True, np.any(key[1:] != key[:-1], axis=1)])
    s = np.add.reduceat(sums[order], starts, axis=0)
    mn = np.minimum.reduceat(mins[order], starts, axis=0)
    mx = np.maximum.reduceat(maxs[order], starts, axis=0)
    n, s1, s2, s3, s4 = np.moveaxis(s, -1, 0)
    mean = s1 / n
    m2 = np.maximum(s2 / n - mean ** 2, 0.0)
    m3 = s3 / n - 3 * mean * s2 / n + 2 * mean ** 3
    m4 = s4 / n - 4 * mean * s3 / n + 6 * mean ** 2 * s2 / n - 3 * mean ** 4
    std, rms = np.sqrt(m2), np.sqrt(s2 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(m2 > 0, m3 / m2 ** 1.5, 0.0)
        kurt = np.where(m2 > 0, m4 / (m2 * m2), 0.0)
        crest = np.where(rms > 0, np.maximum(np.abs(mn), np.abs(mx)) / rms, 0.0)
    return np.stack([mean, std, rms, mn, mx, mx - mn, crest, skew, kurt], axis=-1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    values = fetch(args.brokers, args.topic)
    t1 = time.time()
    samples, asset, starts = decode(values)
    del values
    t2 = time.time()
    feats = window_features(samples, asset, starts)
    t3 = time.time()
    assert feats.shape[1:] == (len(CHANNELS), len(FEATURES)) and np.isfinite(feats).all()
    stats = {"frames": int(samples.shape[0]), "samples": int(samples.size), "windows": int(feats.shape[0]),
             "fetch_s": t1 - t0, "decode_s": t2 - t1, "compute_s": t3 - t2, "t_first": t0, "t_done": t3}
    with open(args.stats, "w") as f:
        json.dump(stats, f)
    log(f"numpy batch: {stats['frames']} frames, {stats['windows']} windows: fetch {t1 - t0:.2f} s, "
        f"decode {t2 - t1:.2f} s, compute {t3 - t2:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
