"""Kafka: the flow's source and sink, topic creation, and a producer for the simulator."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aiotstream.analysis import KINDS, Output
from aiotstream.config import SiteConfig
from aiotstream.errors import AiotError
from aiotstream.routing import Placement, reader_process
from aiotstream.runstats import count_outputs

log = logging.getLogger(__name__)

ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the producer's partitioner picks (CRC32 of the key)

PRODUCER_DEFAULTS = {
    "enable.idempotence": "true",  # no duplicates from producer retries
    "linger.ms": "5",
    "batch.num.messages": "10000",
    "queue.buffering.max.kbytes": "262144",
}


def client_config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka settings from ``AIOTSTREAM_KAFKA_<NAME>`` variables (``_`` read as ``.``), for credentials.

    >>> client_config_from_env({"AIOTSTREAM_KAFKA_SASL_USERNAME": "u", "HOME": "/root"})
    {'sasl.username': 'u'}
    """
    env = os.environ if environ is None else environ
    prefix = "AIOTSTREAM_KAFKA_"
    return {k[len(prefix):].lower().replace("_", "."): v for k, v in env.items() if k.startswith(prefix)}


def output_topics(config: SiteConfig) -> dict[str, str]:
    """Output kind -> topic name for a site."""
    outs = config.outputs
    return {"alert": outs.alerts, "command": outs.commands, "kpi": outs.kpis, "score": outs.scores,
            "deadletter": outs.deadletter, "model": config.models_topic()}


def input_topics(config: SiteConfig) -> list[str]:
    """Every topic the flow reads: data topics, then feedback/ack topics, then model control (ONNX sites)."""
    return list(dict.fromkeys(list(config.inputs.topics) + list(config.inputs.feedback_topics)
                              + config.control_topics()))


def ensure_topics(brokers: str, topics: Iterable[str], partitions: int = 3, timeout: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AdminClient({"bootstrap.servers": brokers, **client_config_from_env()})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted],
                                  operation_timeout=timeout)
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise AiotError(f"could not create topic {topic!r} on {brokers}: {exc}") from None
    return wanted


def kafka_source(config: SiteConfig, brokers: str | None = None, tail: bool | None = None,
                 process: tuple[int, ...] = (0, 1), blocks: bool = False) -> FixedPartitionedSource:
    """Bytewax KafkaSource over the site's input and feedback topics (static partition assignment, offsets in
    recovery); in a cluster, ``process=(i, n[, w])`` makes process ``i`` of ``n`` (``w`` workers each) read its
    share of the partitions (see :class:`ProcessShare`). ``blocks``: one
    :class:`~aiotstream.io.kafka_blocks.MessageBlock` per poll batch instead of one message object per message
    (for flows whose decoder reads blocks: the building flow). Either way the consumers report the broker's
    outages in a few log lines (:mod:`aiotstream.io.kafka_consumer`), and a plaintext connection to a
    non-loopback broker is one warning here."""
    from aiotstream.io.kafka_blocks import KafkaBlockSource
    from aiotstream.io.kafka_consumer import WatchedKafkaSource, plaintext_warning

    bootstrap = (brokers or ",".join(config.inputs.brokers)).split(",")
    client = client_config_from_env()
    warning = plaintext_warning(bootstrap, client)
    if warning:
        log.warning("%s", warning)
    source = (KafkaBlockSource if blocks else WatchedKafkaSource)(
        bootstrap,
        input_topics(config),
        tail=config.inputs.tail if tail is None else tail,
        batch_size=config.inputs.poll_batch,
        raise_on_errors=False,  # consumer errors become dead letters, the flow keeps running
        add_config={"fetch.max.bytes": str(64 << 20), "max.partition.fetch.bytes": str(16 << 20), **client},
    )
    place = Placement.of(process)
    return source if place.processes <= 1 else ProcessShare(source, place)


def share_of(parts: Iterable[str], place: Placement) -> list[str]:
    """The Kafka partitions (Bytewax names ``"<partition>-<topic>"``) that process ``place.process`` reads.

    A topic whose partition count the cluster's ``W`` workers divide gives partition ``p`` to the process of
    worker ``p % W`` (:func:`~aiotstream.routing.reader_process`): with co-partitioning producers
    (:func:`~aiotstream.routing.partition_for`) that is the process whose worker owns every asset in it, so no
    frame crosses between processes. Other topics are dealt round-robin, each starting one process further on,
    so single-partition topics do not all land on process 0. Either way every partition has exactly one reader
    and the processes' counts per topic differ by at most one.

    >>> parts = [f"{p}-frames" for p in range(4)] + ["0-feedback"]
    >>> share_of(parts, Placement(0, 2)), share_of(parts, Placement(1, 2))
    (['0-frames', '2-frames'], ['1-frames', '3-frames', '0-feedback'])
    >>> share_of(parts, Placement(0, 2, workers=2)), share_of(parts, Placement(1, 2, workers=2))
    (['0-frames', '1-frames'], ['2-frames', '3-frames', '0-feedback'])
    """
    topics: dict[str, list[tuple[int, str]]] = {}
    for name in parts:
        num, _, topic = name.partition("-")
        topics.setdefault(topic, []).append((int(num), name))
    mine = []
    for t, (_, entries) in enumerate(topics.items()):
        if len(entries) % place.total_workers == 0:
            mine += [name for num, name in sorted(entries) if reader_process(num, place) == place.process]
        else:
            mine += [name for num, name in sorted(entries) if (num + t) % place.processes == place.process]
    return mine


class ProcessShare(FixedPartitionedSource):
    """A source whose partitions are dealt over the processes of a cluster (:func:`share_of`).

    Bytewax gives each partition, in name order, to the worker among those
    that list it with the fewest partitions so far, so it balances counts, not
    load: names alternate topic by topic (``0-bench.readings``,
    ``0-bench.waveforms``, ``1-bench.readings``, ...) and a 2-process run over 8
    frame partitions read 46,840 of 51,640 messages in one process. Listing
    only this process's share makes the split even by construction, and puts
    co-partitioned data on the process that owns it; among a process's own
    workers Bytewax still chooses. Every process must be started with the
    same ``n`` and ``w``, as ``-a`` already requires.
    """

    def __init__(self, inner: FixedPartitionedSource, place: Placement):
        self.inner = inner
        self.place = Placement.of(place)

    def list_parts(self) -> list[str]:
        return share_of(self.inner.list_parts(), self.place)

    def build_part(self, step_id: str, for_part: str, resume_state: object) -> StatefulSourcePartition:
        return self.inner.build_part(step_id, for_part, resume_state)


class _OutputPartition(StatelessSinkPartition[Output]):
    """Produces a batch and does not return until every record of it is on the broker.

    A record whose delivery fails (e.g. the idempotent producer's state was lost
    when the broker restarted) is produced again, with a new producer if the old
    one hit a fatal error; after ``MAX_ATTEMPTS`` the batch fails loudly (the
    flow stops and a restart replays from its last snapshot) rather than losing it.
    """

    MAX_ATTEMPTS = 5

    def __init__(self, producer: Producer, topics: dict[str, str], brokers: str):
        self.producer = producer
        self.topics = topics
        self.brokers = brokers

    def _send(self, items: list[Output]) -> tuple[list[Output], list[str], bool]:
        failed: list[Output] = []
        errors: list[str] = []
        fatal = False

        def report(out: Output):
            def on_delivery(err: object, _msg: object) -> None:
                nonlocal fatal
                if err is not None:
                    failed.append(out)
                    errors.append(str(err))
                    fatal = fatal or bool(getattr(err, "fatal", lambda: False)())
            return on_delivery

        for out in items:
            while True:
                try:
                    self.producer.produce(self.topics[out.kind], value=orjson.dumps(out.record),
                                          key=out.key.encode(), on_delivery=report(out))
                    break
                except BufferError:  # local queue full: let the producer drain, then retry
                    self.producer.poll(0.05)
        self.producer.flush()  # at-least-once: a batch is on the broker before the epoch moves on
        return failed, errors, fatal

    def write_batch(self, items: list[Output]) -> None:
        pending = items
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            pending, errors, fatal = self._send(pending)
            if not pending:
                count_outputs(items)
                return
            log.warning("%d output(s) not delivered (attempt %d of %d): %s", len(pending), attempt,
                        self.MAX_ATTEMPTS, errors[0])
            if fatal:
                self.producer = make_producer(self.brokers)
            time.sleep(min(0.5 * attempt, 2.0))
        raise AiotError(f"{len(pending)} output(s) could not be delivered to {self.brokers}: {errors[0]}")

    def close(self) -> None:
        self.producer.flush()


class KafkaOutputSink(DynamicSink[Output]):
    """Writes outputs to ``<site>.alerts|commands|kpis|scores|deadletter``, keyed by asset id."""

    def __init__(self, config: SiteConfig, brokers: str | None = None):
        self.topics = output_topics(config)
        self.brokers = brokers or ",".join(config.inputs.brokers)
        assert set(self.topics) == set(KINDS)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _OutputPartition:
        return _OutputPartition(make_producer(self.brokers), self.topics, self.brokers)


def make_producer(brokers: str) -> Producer:
    """An idempotent producer, with credentials from the environment (see client_config_from_env)."""
    return Producer({"bootstrap.servers": brokers, **PRODUCER_DEFAULTS, **client_config_from_env()})
