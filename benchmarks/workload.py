"""The benchmark workloads: site configs, topics and the data preloaded into the broker.

* **waveform**: N assets x 3 channels x 10 kHz in 1024-sample binary frames v1 (the plant
  simulator's), plus each asset's 1 Hz temperature readings on the readings topic, as the
  predictive-maintenance flow expects them. A *slice* topic holds the same frames of the first
  few assets for the first seconds, for peers too slow to take the whole set in the time budget.
* **scalar**: JSON readings (one value each) at thousands of keys, ``rate_hz`` per key.
* **waveform files**: the waveform workload as replay files instead (one frame file and one readings
  file per partition, ``waveforms-part<k>.bin`` and ``readings-part<k>.jsonl``), for runs that leave the
  broker out of the input path.

Both waveform forms put each asset in a partition by ``partitioner``: ``"aiotstream"`` (the default)
is the product's co-partitioning (:func:`aiotstream.routing.partition_for`), so a cluster whose
workers divide the partition count reads every asset on the process that owns it; ``"kafka"`` is
librdkafka's default (CRC32 of the key), under which about half the frames of a 2-process run cross
between the processes.

Topics are created with their retention spelled out: Tansu answers DescribeConfigs only with
the settings a topic was created with, and Quix Streams reads ``retention.ms`` of its input
topics to configure its changelog topics (it fails with ``KeyError: 'retention.ms'`` otherwise).
"""
from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from aiotstream.codecs import encode_reading
from aiotstream.config import SiteConfig
from aiotstream.io.kafka import ANY_PARTITION, make_producer
from aiotstream.routing import partition_for, worker_of
from aiotstream.sim.plant import DEFAULT_START_NS, PlantSimulator

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
CHANNELS = 3
FRAME_SAMPLES = 1024
RATE_HZ = 10_000.0


def create_topics(brokers: str, topics: Iterable[str], partitions: int) -> None:
    """Create ``topics`` (those that do not exist yet) with explicit retention settings."""
    admin = AdminClient({"bootstrap.servers": brokers})
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1,
                                            config=dict(TOPIC_CONFIG)) for t in wanted], operation_timeout=15)
    for topic, fut in futures.items():
        try:
            fut.result(timeout=15)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"could not create topic {topic!r}: {exc}") from None


def delete_topics(brokers: str, topics: Iterable[str]) -> None:
    """Delete ``topics`` (Tansu keeps its data in memory and frees it on delete: ten latency runs at 20 M
    samples/s kept 23 GB and the kernel killed the broker)."""
    admin = AdminClient({"bootstrap.servers": brokers})  # (kept referenced until the futures are done)
    for topic, fut in admin.delete_topics(list(dict.fromkeys(topics)), operation_timeout=15).items():
        try:
            fut.result(timeout=15)
        except KafkaException as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise RuntimeError(f"could not delete topic {topic!r}: {exc}") from None


def site_dict(site_id: str, assets: int, topics: list[str], *, model: str = "hst", prefix: str = "p-",
              tail: bool = False, poll_batch: int = 1000, window: dict[str, Any] | None = None,
              partitions: int = 3, poll_bytes: int | None = None) -> dict[str, Any]:
    """A site config for ``assets`` alike 3-axis 10 kHz assets ``p-000001 ...`` reading ``topics``
    (``poll_bytes`` None: the default)."""
    inputs: dict[str, Any] = {"topics": topics, "tail": tail, "poll_batch": poll_batch}
    if poll_bytes is not None:
        inputs["poll_bytes"] = poll_bytes
    return {
        "site": {"id": site_id, "name": f"benchmark {site_id}"},
        "asset_groups": [{"prefix": prefix, "count": assets, "width": 6}],
        "inputs": inputs,
        "window": window or {},
        "model": {"kind": model},
        "outputs": {"partitions": partitions},
    }


def write_site(directory: Path, config: dict[str, Any]) -> Path:
    """Write a site config as JSON (``aiotstream run --site`` reads .json too); validate it first."""
    SiteConfig.from_dict(config)
    path = directory / f"{config['site']['id']}.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


def output_topics(site_id: str) -> list[str]:
    return [f"{site_id}.{k}" for k in ("alerts", "kpis", "scores", "deadletter", "scalar_scores")]


@dataclass(slots=True)
class WaveformData:
    topic: str
    readings_topic: str
    slice_topic: str
    assets: list[str]
    duration_s: float
    frames: int
    readings: int
    bytes: int
    slice_assets: list[str]
    slice_duration_s: float
    slice_frames: int
    produce_s: float
    start_ns: int = DEFAULT_START_NS
    asset_prefix: str = "p-"
    partitioner: str = "aiotstream"

    @property
    def samples(self) -> int:
        return self.frames * CHANNELS * FRAME_SAMPLES

    @property
    def slice_samples(self) -> int:
        return self.slice_frames * CHANNELS * FRAME_SAMPLES

    @property
    def windows(self) -> int:
        """1 s windows the flow closes: every asset, every started second of event time."""
        return len(self.assets) * int(-(-self.duration_s // 1))

    def summary(self) -> dict[str, Any]:
        return {"topic": self.topic, "assets": len(self.assets), "asset_prefix": self.asset_prefix,
                "partitioner": self.partitioner, "duration_s": self.duration_s,
                "channels": CHANNELS, "sample_rate_hz": RATE_HZ, "frame_samples": FRAME_SAMPLES,
                "frames": self.frames, "samples": self.samples, "readings": self.readings,
                "bytes": self.bytes, "produce_s": round(self.produce_s, 2),
                "slice": {"topic": self.slice_topic, "assets": len(self.slice_assets),
                          "duration_s": self.slice_duration_s, "frames": self.slice_frames,
                          "samples": self.slice_samples}}


def _produce(brokers: str, items: Iterable[tuple[str, bytes, bytes] | tuple[str, bytes, bytes, int | None]]) -> int:
    """Produce ``(topic, key, value)`` or ``(topic, key, value, partition)`` items (no partition, or ``None``:
    librdkafka's default partitioner)."""
    producer = make_producer(brokers)
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for topic, key, value, *part in items:
        partition = part[0] if part else None
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery,
                                 partition=ANY_PARTITION if partition is None else partition)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(f"{left} message(s) not delivered, {len(errors)} error(s): {errors[:3]}")
    return n


def waveform_simulator(cfg: SiteConfig, duration_s: float, seed: int = 1) -> PlantSimulator:
    """The waveform workload's plant: ``cfg``'s assets, a warm-up of a third of the run (at most 20 s), and a
    few faults after it (at most 3), so that alerts happen too."""
    assets = len(cfg.all_assets())
    warmup = min(20.0, duration_s / 3)
    faults = min(3, assets) if duration_s >= warmup + 15 else 0
    return PlantSimulator(cfg.all_assets(), duration_s=duration_s, n_faults=faults, warmup_s=warmup, seed=seed)


def preload_waveforms(brokers: str, *, assets: int, duration_s: float, partitions: int, slice_assets: int,
                      slice_duration_s: float, prefix: str = "bench", seed: int = 1,
                      asset_prefix: str = "p-", partitioner: str = "aiotstream") -> WaveformData:
    """Simulate and produce the waveform workload (frames + temperature readings + the slice); assets are
    ``<asset_prefix>000001 ...``, each in its ``partitioner`` partition (see the module doc)."""
    topic, readings_topic, slice_topic = f"{prefix}.waveforms", f"{prefix}.readings", f"{prefix}.waveforms-slice"
    create_topics(brokers, [topic, readings_topic, slice_topic], partitions)
    cfg = SiteConfig.from_dict(site_dict("sim", assets, [topic, readings_topic], prefix=asset_prefix))
    ids = [a.id for a in cfg.all_assets()]
    sim = waveform_simulator(cfg, duration_s, seed)
    part = asset_partitions(ids, partitions, partitioner)
    in_slice = set(ids[:slice_assets])
    slice_end = sim.start_ns + round(slice_duration_s * 1e9)
    counts = {"frames": 0, "readings": 0, "bytes": 0, "slice": 0}

    def items() -> Iterable[tuple[str, bytes, bytes, int | None]]:
        for m in sim.messages():
            key, k = m.asset.encode(), part[m.asset]
            if m.stream == "waveform":
                counts["frames"] += 1
                counts["bytes"] += len(m.payload)
                yield topic, key, m.payload, k
                if m.asset in in_slice and m.t_ns < slice_end:
                    counts["slice"] += 1
                    yield slice_topic, key, m.payload, k
            else:
                counts["readings"] += 1
                yield readings_topic, key, m.payload, k

    t = time.perf_counter()
    _produce(brokers, items())
    return WaveformData(topic, readings_topic, slice_topic, ids, duration_s, counts["frames"], counts["readings"],
                        counts["bytes"], sorted(in_slice), slice_duration_s, counts["slice"],
                        time.perf_counter() - t, sim.start_ns, asset_prefix, partitioner)


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``: CRC32 of the key) gives a key."""
    return zlib.crc32(key) % partitions


PARTITIONERS = ("aiotstream", "kafka")


def asset_partitions(assets: Iterable[str], partitions: int, partitioner: str) -> dict[str, int]:
    """Each asset's partition: ``aiotstream`` (co-partitioning, :func:`~aiotstream.routing.partition_for`) or
    ``kafka`` (librdkafka's default)."""
    if partitioner not in PARTITIONERS:
        raise ValueError(f"partitioner must be one of {PARTITIONERS}, not {partitioner!r}")
    if partitioner == "kafka":
        return {a: kafka_partition(a.encode(), partitions) for a in assets}
    return {a: partition_for(a, partitions) for a in assets}


@dataclass(slots=True)
class WaveformFiles:
    directory: Path
    frame_files: list[Path]
    reading_files: list[Path]
    assets: list[str]
    duration_s: float
    frames: int
    readings: int
    bytes: int
    write_s: float
    asset_prefix: str = "p-"
    frame_file_bytes: list[int] = field(default_factory=list)
    partitioner: str = "aiotstream"

    @property
    def samples(self) -> int:
        return self.frames * CHANNELS * FRAME_SAMPLES

    def summary(self) -> dict[str, Any]:
        return {"files": len(self.frame_files) + len(self.reading_files), "assets": len(self.assets),
                "asset_prefix": self.asset_prefix, "partitioner": self.partitioner,
                "duration_s": self.duration_s, "channels": CHANNELS, "sample_rate_hz": RATE_HZ,
                "frame_samples": FRAME_SAMPLES, "frames": self.frames, "samples": self.samples,
                "readings": self.readings, "bytes": self.bytes, "write_s": round(self.write_s, 2),
                "frame_file_bytes": self.frame_file_bytes}


def write_waveform_files(directory: Path, *, assets: int, duration_s: float, partitions: int,
                         seed: int = 1, asset_prefix: str = "p-", partitioner: str = "aiotstream") -> WaveformFiles:
    """The waveform workload of :func:`preload_waveforms` (same simulator, seed, faults) as replay files,
    written by ``PlantSimulator.write_files``: ``waveforms-part<k>.bin`` and ``readings-part<k>.jsonl`` for each
    partition ``k``, every asset in its ``partitioner`` partition (see the module doc). A cluster's processes
    replay the partitions their workers own (:func:`aiotstream.io.replay.file_share`)."""
    cfg = SiteConfig.from_dict(site_dict("sim", assets, ["unused"], prefix=asset_prefix))
    ids = [a.id for a in cfg.all_assets()]
    part = asset_partitions(ids, partitions, partitioner)
    t = time.perf_counter()
    counts = waveform_simulator(cfg, duration_s, seed).write_files(directory, partitions, part.__getitem__)
    frame_files = [directory / f"waveforms-part{k:02d}.bin" for k in range(partitions)]
    reading_files = [directory / f"readings-part{k:02d}.jsonl" for k in range(partitions)]
    return WaveformFiles(directory, frame_files, reading_files, ids, duration_s, counts["frames"], counts["readings"],
                         counts["waveform_bytes"] - 4 * counts["frames"], time.perf_counter() - t, asset_prefix,
                         [p.stat().st_size for p in frame_files], partitioner)


def asset_split(assets: Iterable[str], workers: int) -> list[int]:
    """How many of ``assets`` each of ``workers`` workers holds."""
    counts = [0] * workers
    for a in assets:
        counts[worker_of(a, workers)] += 1
    return counts


@dataclass(slots=True)
class ScalarData:
    topic: str
    keys: int
    rate_hz: float
    duration_s: float
    events: int
    produce_s: float

    def summary(self) -> dict[str, Any]:
        return {"topic": self.topic, "keys": self.keys, "rate_hz_per_key": self.rate_hz,
                "duration_s": self.duration_s, "events": self.events, "produce_s": round(self.produce_s, 2)}


def scalar_asset_ids(keys: int, prefix: str = "s-") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(1, keys + 1)]


def preload_scalars(brokers: str, *, keys: int, rate_hz: float, duration_s: float, partitions: int,
                    topic: str = "bench.scalar", seed: int = 3) -> ScalarData:
    """JSON readings ``{"asset", "ts", "metric", "value"}``: every key ``rate_hz`` times per second."""
    import numpy as np

    create_topics(brokers, [topic], partitions)
    ids = [a.encode() for a in scalar_asset_ids(keys)]
    names = [a.decode() for a in ids]
    rng = np.random.default_rng(seed)
    steps = int(duration_s * rate_hz)
    dt = round(1e9 / rate_hz)

    def items() -> Iterable[tuple[str, bytes, bytes]]:
        for s in range(steps):
            ts = DEFAULT_START_NS + s * dt
            values = np.round(20.0 + rng.normal(0, 1, keys), 3).tolist()
            for key, name, v in zip(ids, names, values):
                yield topic, key, encode_reading(name, ts, "temperature", v)

    t = time.perf_counter()
    n = _produce(brokers, items())
    return ScalarData(topic, keys, rate_hz, duration_s, n, time.perf_counter() - t)


def read_records(brokers: str, topic: str, timeout_s: float = 60.0) -> list[tuple[float, dict[str, Any]]]:
    """Every record on ``topic`` (JSON values) with the time this consumer received it, up to the end."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-reader-{time.time_ns()}",
                  "enable.partition.eof": True, "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})  # Tansu answers a fetch only when this runs out
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        parts = list(meta.partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[float, dict[str, Any]]] = []
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts) and time.monotonic() < deadline:
            for m in c.consume(2000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(m.partition())
                    continue
                out.append((time.time(), orjson.loads(m.value())))
        return out
    finally:
        c.close()
