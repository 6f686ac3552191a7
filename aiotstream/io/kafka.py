"""Kafka: the flow's source and sink, topic creation, and a producer for the simulator."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from aiotstream.config import KafkaSecurity, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.io.kafka_blocks import KafkaBlockSource
from aiotstream.io.kafka_client import (  # noqa: F401  (re-exported: the names callers know this module by)
    BROKER_WAIT_S,
    CONSUMER_DEFAULTS,
    LIBRDKAFKA_LOG,
    client_config,
    client_config_from_env,
    metadata,
    reason,
    wait_for_brokers,
)
from aiotstream.io.kafka_consumer import WatchedKafkaSource, plaintext_warning
from aiotstream.io.sinkguard import count_loss, encode, replacement
from aiotstream.io.stop import CLOSE_MAX_S, STOP
from aiotstream.records import KINDS, Output
from aiotstream.routing import Placement, reader_process
from aiotstream.runstats import STATS, count_outputs

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 512  # keys are asset ids (at most 128 characters)
ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the producer's partitioner picks (CRC32 of the key)

CONTENT_TYPE = b"application/json"
HEADERS = ("kind", "schema", "schema-version", "site", "content-type", "classification")
"""The headers of every output message: its kind (``score``, ``alert``, ...), its ``schema``
(``aiotstream.score/1``) and that schema's major version (``1``), the site id, ``application/json``, and
the kind's data classification (``[governance] classification``; default ``internal``)."""

PRODUCER_DEFAULTS = {
    "enable.idempotence": "true",  # no duplicates from producer retries
    "linger.ms": "5",
    "batch.num.messages": "10000",
    "queue.buffering.max.kbytes": "262144",
}
def output_topics(config: SiteConfig) -> dict[str, str]:
    """Output kind -> topic name for a site."""
    outs = config.outputs
    return {"alert": outs.alerts, "command": outs.commands, "kpi": outs.kpis, "score": outs.scores,
            "deadletter": outs.deadletter, "model": config.models_topic(), "scalar": config.scalar_topic(),
            "audit": config.audit_topic()}


def input_topics(config: SiteConfig) -> list[str]:
    """Every topic the flow reads: data topics, then feedback/ack topics, then model control (ONNX sites)."""
    return list(dict.fromkeys(list(config.inputs.topics) + list(config.inputs.feedback_topics)
                              + config.control_topics()))


def topic_configs(config: SiteConfig) -> dict[str, dict[str, str]]:
    """Topic configs for the output topics aiotstream creates: ``retention.ms`` from ``[governance]
    retention`` (``-1`` for 'forever'); kinds without a retention keep the broker's default.

    >>> from aiotstream.config import default_site
    >>> topic_configs(default_site(1, governance={"retention": {"score": "7d", "alert": "forever"}}))
    {'demo-plant.alerts': {'retention.ms': '-1'}, 'demo-plant.scores': {'retention.ms': '604800000'}}
    """
    out = {}
    for kind, topic in output_topics(config).items():
        if kind in config.governance.retention:
            s = config.governance.retention_s(kind)
            out[topic] = {"retention.ms": "-1" if s is None else str(s * 1000)}
    return out


def ensure_topics(brokers: str, topics: Iterable[str], partitions: int = 3, timeout: float = 15.0,
                  wait_s: float = BROKER_WAIT_S, configs: Mapping[str, Mapping[str, str]] | None = None,
                  security: KafkaSecurity | None = None) -> list[str]:
    """Create the topics that do not exist yet (``partitions`` each, with ``configs[topic]`` as topic
    configs, e.g. ``retention.ms``); return the ones created. A topic that exists already keeps its
    configs. Waits up to ``wait_s`` for a broker to answer first (AiotError naming the address if none
    does)."""
    if partitions < 1:
        raise AiotError(f"topics need at least 1 partition (got {partitions})")
    admin = wait_for_brokers(brokers, wait_s, security)
    existing = set(metadata(admin, brokers, timeout).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    configs = configs or {}
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1,
                                            config=dict(configs.get(t, {}))) for t in wanted],
                                  operation_timeout=timeout)
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise AiotError(f"could not create topic {topic!r} on {brokers}: {reason(exc)}") from None
    return wanted


def kafka_source(config: SiteConfig, brokers: str | None = None, tail: bool | None = None,
                 process: tuple[int, ...] = (0, 1), blocks: bool = True) -> FixedPartitionedSource:
    """Bytewax KafkaSource over the site's input and feedback topics (static partition assignment, offsets in
    recovery); in a cluster, ``process=(i, n[, w])`` makes process ``i`` of ``n`` (``w`` workers each) read
    its share of the partitions (see :class:`ProcessShare`). ``blocks`` (both flows' decoders read them): one
    :class:`~aiotstream.records.MessageBlock` per poll batch; False: Bytewax's message object per message.
    Either way the consumers report the broker's outages in a few log lines
    (:mod:`aiotstream.io.kafka_consumer`), and a plaintext connection to a
    non-loopback broker is one warning here."""
    brokers = brokers or ",".join(config.inputs.brokers)
    client = {k: v for k, v in client_config(brokers, config.inputs.kafka).items()
              if k != "bootstrap.servers"}
    warning = plaintext_warning(brokers.split(","), {k: v for k, v in client.items() if isinstance(v, str)})
    if warning:
        log.warning("%s", warning)
    source = (KafkaBlockSource if blocks else WatchedKafkaSource)(
        brokers.split(","),
        input_topics(config),
        tail=config.inputs.tail if tail is None else tail,
        batch_size=config.inputs.poll_batch,
        poll_bytes=config.inputs.poll_bytes,
        raise_on_errors=False,  # consumer errors become dead letters, the flow keeps running
        add_config={**CONSUMER_DEFAULTS, **client},
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
    """Produces a batch and does not return until every record of it is on the broker or accounted for.

    * Each record goes through :func:`~aiotstream.io.sinkguard.encode` first: one
      that is not finite, or larger than the producer's ``message.max.bytes``
      allows, is replaced by a dead letter that says so (``non_finite_output``,
      ``output_too_large``).
    * A record whose delivery fails with a transient error (the broker restarting,
      a leader moving, the idempotent producer's state lost: then with a new
      producer) is produced again, up to ``MAX_ATTEMPTS`` times with backoff.
    * One that fails for good (too large for the broker, invalid, not authorised),
      or still fails after the retries, is replaced by a ``delivery_failed`` dead
      letter on the dead-letter topic, delivered the same way.
    * If even that dead letter cannot be delivered, the record is logged and
      counted under ``losses`` (``delivery_failed``) in the run summary.

    So no record can stop the flow (before, one message over 1 MB raised
    ``MSG_SIZE_TOO_LARGE``, the flow died, and every restart replayed it and
    died again).
    """

    MAX_ATTEMPTS = 5
    WAIT_MAX_S = 4.0

    def __init__(self, producer: Producer, topics: dict[str, str], brokers: str, limit: int | None = None,
                 site: str = "", classification: Mapping[str, str] | None = None,
                 security: KafkaSecurity | None = None):
        self.producer = producer
        self.security = security
        self.topics = topics
        self.brokers = brokers
        self.site = site.encode()
        self.classification = {k: v.encode() for k, v in (classification or {}).items()}
        self._headers: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        if limit is None:
            limit = message_limit(PRODUCER_DEFAULTS | client_config_from_env())
        self.limit = limit
        self._stop_seen: float | None = None

    def _send(self, items: list[tuple[Output, bytes]]) -> tuple[list[tuple[Output, bytes]],
                                                                list[tuple[Output, bytes, str]],
                                                                list[tuple[Output, bytes, str]]]:
        """Produce once and wait: (delivered, to retry with the error, failed for good with the error).

        Once a stop is requested the wait is bounded (:data:`~aiotstream.io.stop.CLOSE_MAX_S`): records still
        in flight then are reported for retry with the reason ``stopping`` (and not retried)."""
        delivered: list[tuple[Output, bytes]] = []
        retry: list[tuple[Output, bytes, str]] = []
        failed: list[tuple[Output, bytes, str]] = []
        fatal = False
        waiting: dict[int, tuple[Output, bytes]] = {}

        def report(item: tuple[Output, bytes]) -> Any:
            def on_delivery(err: Any, _msg: object) -> None:
                nonlocal fatal
                waiting.pop(id(item), None)
                if err is None:
                    delivered.append(item)
                elif err.fatal() or _transient(err):
                    fatal = fatal or err.fatal()
                    retry.append((*item, str(err)))
                else:
                    failed.append((*item, str(err)))
            return on_delivery

        unsent: list[tuple[Output, bytes]] = []
        for i, item in enumerate(items):
            out, data = item
            headers = self.headers(out)
            ts_ms = event_time_ms(out.record)
            while True:
                try:
                    waiting[id(item)] = item
                    self.producer.produce(self.topics[out.kind], value=data, key=out.key.encode(),
                                          headers=headers, timestamp=ts_ms, on_delivery=report(item))
                    break
                except BufferError:  # local queue full: let the producer drain, then retry
                    waiting.pop(id(item), None)
                    self.producer.poll(0.05)
                    if STOP.is_set() and self._stop_waited():
                        unsent = items[i:]
                        break
                except KafkaException as exc:  # refused locally (e.g. MSG_SIZE_TOO_LARGE): this record only
                    waiting.pop(id(item), None)
                    err = exc.args[0] if exc.args else exc
                    (retry if _transient(err) else failed).append((*item, str(err)))
                    break
            if unsent:
                break
        # at-least-once: a batch is on the broker before the epoch moves on; once stopping, only so long
        while self.producer.flush(0.5) > 0:
            if STOP.is_set() and self._stop_waited():
                break
        if STOP.is_set():
            retry += [(*x, "stopping") for x in list(waiting.values()) + unsent]
        if fatal:
            self.producer = make_producer(self.brokers, self.security)
        return delivered, retry, failed

    def headers(self, out: Output) -> list[tuple[str, bytes]]:
        """The Kafka headers of a record (:data:`HEADERS`): one list per kind and schema, built once."""
        schema = str(out.record.get("schema", ""))
        got = self._headers.get((out.kind, schema))
        if got is None:
            got = self._headers[(out.kind, schema)] = [
                ("kind", out.kind.encode()), ("schema", schema.encode()),
                ("schema-version", schema.rpartition("/")[2].encode()), ("site", self.site),
                ("content-type", CONTENT_TYPE),
                ("classification", self.classification.get(out.kind, b"internal"))]
        return got

    def _deliver(self,
                 items: list[tuple[Output, bytes]]) -> tuple[list[Output], list[tuple[Output, bytes, str]]]:
        """Deliver with bounded retries: (delivered outputs, records that could not be delivered with why)."""
        delivered: list[Output] = []
        failed: list[tuple[Output, bytes, str]] = []
        todo = items
        last: list[tuple[Output, bytes, str]] = []
        try:
            for attempt in Retrying(stop=stop_after_attempt(self.MAX_ATTEMPTS),
                                    wait=wait_exponential(multiplier=0.25, max=self.WAIT_MAX_S),
                                    retry=retry_if_exception_type(_Undelivered), reraise=True):
                with attempt:
                    ok, last, bad = self._send(todo)
                    delivered += [o for o, _ in ok]
                    failed += bad
                    todo = [(o, d) for o, d, _ in last]
                    if last and STOP.is_set():  # rule 6 of aiotstream.io.stop: no retries once stopping
                        break
                    if last:
                        log.warning("%d output(s) not delivered to %s (attempt %d of %d): %s", len(last),
                                    self.brokers, attempt.retry_state.attempt_number, self.MAX_ATTEMPTS,
                                    last[0][2])
                        raise _Undelivered()
        except _Undelivered:
            pass
        return delivered, failed + last

    def write_batch(self, items: list[Output]) -> None:
        encoded: list[tuple[Output, bytes]] = []
        for item in items:
            enc = encode(item, self.limit)
            if enc is None:
                count_loss(item, "output_too_large",
                           f"not even a dead letter for it fits {self.limit:,} bytes")
            else:
                encoded.append(enc)
        delivered, failed = self._deliver(encoded)
        if STOP.is_set() and failed:  # stopping: what is not on the broker now is reported, not waited for
            for out, _, why in failed:
                count_loss(out, "undelivered_at_stop", f"not on {self.brokers} when the run stopped ({why})")
            failed = []
        if failed:
            stand_ins = []
            for out, data, why in failed:
                log.error("%s record %s could not be delivered to %s: %s; sending a dead letter instead",
                          out.kind,
                          out.record.get("id"), self.brokers, why)
                dl = replacement(out, "delivery_failed",
                                 f"{out.kind} record {out.record.get('id')} could not be delivered to topic "
                                 f"{self.topics[out.kind]!r}: {why}"[:1000], data)
                enc = encode(dl, self.limit)
                if enc is None:
                    count_loss(out, "delivery_failed", why)
                else:
                    stand_ins.append(enc)
            more, lost = self._deliver(stand_ins)
            delivered += more
            for out, _, why in lost:
                count_loss(out, "delivery_failed", f"its dead letter could not be delivered either: {why}")
        count_outputs(delivered)
        observe_output_latency(delivered, time.time())

    def _stop_waited(self) -> bool:
        """True once this sink has waited :data:`~aiotstream.io.stop.CLOSE_MAX_S` since it first saw the
        stop."""
        if self._stop_seen is None:
            self._stop_seen = time.monotonic()
        return time.monotonic() - self._stop_seen >= CLOSE_MAX_S

    def close(self) -> None:
        while self.producer.flush(0.5) > 0:
            if STOP.is_set() and self._stop_waited():
                # each batch waits for its records, so these were counted as lost by write_batch already
                log.error("%d record(s) still queued for %s when the run stopped", len(self.producer),
                          self.brokers)
                return


def event_time_ms(record: Mapping[str, Any]) -> int:
    """A record's event time in ms for the Kafka message timestamp: its ``at_ns`` (alerts, commands), else the
    end of its ``window`` (scores, KPI periods); 0 (the producer's clock) for records without one (dead
    letters).

    >>> event_time_ms({"at_ns": 1_767_225_620_000_000_000, "window": {"end_ns": 1}})
    1767225620000
    >>> event_time_ms({"window": {"end_ns": 1_767_225_601_500_000_000}}), event_time_ms({"window": None})
    (1767225601500, 0)
    """
    t = record.get("at_ns")
    if not isinstance(t, int):
        w = record.get("window")
        t = w.get("end_ns") if isinstance(w, dict) else None
    return t // 1_000_000 if isinstance(t, int) and t > 0 else 0


def observe_output_latency(delivered: list[Output], now_s: float) -> None:
    """Add a delivered batch to the ``output_latency_seconds{kind}`` histogram: ``now_s`` (when the batch is
    on the broker) minus each record's event time (:func:`event_time_ms`; records without one, such as the
    dead letters of bad inputs, are left out; a dead letter standing in for an output keeps that output's
    window and counts under ``deadletter``). One lock per kind and batch."""
    ages: dict[str, list[float]] = {}
    for out in delivered:
        t = event_time_ms(out.record)
        if t:
            ages.setdefault(out.kind, []).append(now_s - t / 1000)
    for kind, a in ages.items():
        STATS.observe_many("output_latency_seconds", a, (kind,))


class _Undelivered(Exception):
    """Some records of a batch still wait for delivery (tenacity retries on it)."""


_TRANSIENT = frozenset(getattr(KafkaError, n) for n in (
    "_MSG_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_QUEUE_FULL", "REQUEST_TIMED_OUT",
    "NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "NOT_ENOUGH_REPLICAS",
                                                        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "NETWORK_EXCEPTION", "_PURGE_QUEUE", "_PURGE_INFLIGHT", "OUT_OF_ORDER_SEQUENCE_NUMBER",
    "UNKNOWN_PRODUCER_ID", "INVALID_PRODUCER_EPOCH", "_FENCED") if hasattr(KafkaError, n))


def _transient(err: Any) -> bool:
    """Worth producing again (the same record may well go through later), as opposed to refused for good."""
    if not isinstance(err, KafkaError):
        return False
    return bool(err.retriable()) or err.code() in _TRANSIENT


def message_limit(producer_config: Mapping[str, str]) -> int:
    """The largest record value the producer takes: ``message.max.bytes`` less room for the key and framing.

    >>> message_limit({}), message_limit({"message.max.bytes": "2000000"})
    (999232, 1999232)
    """
    return int(producer_config.get("message.max.bytes", 1_000_000)) - MAX_KEY_BYTES - 256


class KafkaOutputSink(DynamicSink[Output]):
    """Writes outputs to ``<site>.alerts|commands|kpis|scores|deadletter``, keyed by asset id, with the
    :data:`HEADERS` and the record's event time as the message timestamp (:func:`event_time_ms`)."""

    def __init__(self, config: SiteConfig, brokers: str | None = None):
        self.topics = output_topics(config)
        self.brokers = brokers or ",".join(config.inputs.brokers)
        self.site = config.site.id
        self.classification = {k: config.governance.classification_of(k) for k in KINDS}
        self.security = config.inputs.kafka
        assert set(self.topics) == set(KINDS)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _OutputPartition:
        return _OutputPartition(make_producer(self.brokers, self.security), self.topics, self.brokers,
                                message_limit(PRODUCER_DEFAULTS | client_config_from_env()), self.site,
                                self.classification, security=self.security)


def make_producer(brokers: str, security: KafkaSecurity | None = None) -> Producer:
    """An idempotent producer, with credentials from the environment (see client_config_from_env) and the
    site's ``[inputs.kafka]``; AiotError in one line when librdkafka refuses the settings (a key that its
    passphrase does not open, a CA file that is not PEM)."""
    try:
        return Producer({**PRODUCER_DEFAULTS, **client_config(brokers, security)})
    except KafkaException as exc:
        raise AiotError(f"Kafka client for {brokers}: librdkafka refuses the settings: {reason(exc)} "
                        "(check [inputs.kafka] and AIOTSTREAM_KAFKA_* variables)") from None
