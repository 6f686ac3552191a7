"""The console's Kafka side: a background thread that folds the site's output topics (from the beginning)
into a :class:`ConsoleState`, and a producer for the operators' actions."""
from __future__ import annotations

import logging
import threading
import time

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from aiotstream.config import SiteConfig
from aiotstream.console.actions import Action
from aiotstream.console.state import ConsoleState
from aiotstream.errors import AiotError
from aiotstream.io.kafka import (
    CONSUMER_DEFAULTS,
    client_config,
    ensure_topics,
    input_topics,
    make_producer,
    metadata,
    output_topics,
)
from aiotstream.io.kafka_client import arrived

log = logging.getLogger(__name__)


class Feed:
    """Reads every partition of the site's output topics from offset 0 in a daemon thread (no consumer group
    offsets are committed: each console start rebuilds its state from the topics), and sends actions."""

    def __init__(self, cfg: SiteConfig, brokers: str, state: ConsoleState):
        self.cfg, self.brokers, self.state = cfg, brokers, state
        # kind -> topic (the audit trail is for `aiotstream audit verify`, not the console)
        self.topics = {k: t for k, t in output_topics(cfg).items() if k != "audit"}
        self.kinds = {t: k for k, t in self.topics.items()}
        kafka_in = cfg.inputs.kind == "kafka"
        feedback = cfg.inputs.feedback_topics
        self.feedback_topic = feedback[0] if feedback and kafka_in else None
        control = cfg.control_topics()
        self.control_topic = control[0] if control and kafka_in else None
        # a flow whose inputs are MQTT, OPC UA or files reads no Kafka feedback or control topic
        self.unreachable = None if kafka_in else (
            f"this site's flow reads its inputs from {cfg.inputs.kind} (inputs.kind), not from Kafka: it "
            "does not read the feedback and control topics the console writes to, so the console shows its "
            "outputs but cannot act on them")
        self.stop = threading.Event()
        self.caught_up = threading.Event()  # set once every partition has been read to its end once
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="console-feed", daemon=True)
        self._producer: Producer | None = None
        self._plock = threading.Lock()

    def start(self) -> Feed:
        """Create the topics the console reads and writes if the flow has not yet, then start reading."""
        writes = input_topics(self.cfg) if self.unreachable is None else []
        ensure_topics(self.brokers, list(self.topics.values()) + writes,
                      partitions=self.cfg.outputs.partitions, security=self.cfg.inputs.kafka)
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        if self._producer is not None:
            self._producer.flush(5)

    def _run(self) -> None:
        try:
            self._consume()
        except Exception as exc:  # the page says the feed stopped, and why; the server keeps serving
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("console feed stopped")

    def _consume(self) -> None:
        c = Consumer({**CONSUMER_DEFAULTS, **client_config(self.brokers, self.cfg.inputs.kafka),
                      "group.id": "aiotstream-console", "enable.auto.commit": False,
                      "enable.partition.eof": True, "fetch.wait.max.ms": 200})
        try:
            meta = metadata(c, self.brokers, 15)
            parts = [TopicPartition(t, p, 0) for t in self.topics.values() if t in meta.topics
                     for p in meta.topics[t].partitions]
            c.assign(parts)
            at_end: set[tuple[str, int]] = set()
            while not self.stop.is_set():
                for m in arrived(c, 500, 0.2):  # (a live alert on the screen as it comes, not 200 ms late)
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            at_end.add((m.topic(), m.partition()))
                            if len(at_end) >= len(parts):
                                self.caught_up.set()
                            continue
                        log.warning("console feed: %s", _text(err))
                        continue
                    try:
                        rec = orjson.loads(m.value())
                    except orjson.JSONDecodeError:
                        rec = None
                    self.state.fold(self.kinds[m.topic()], rec)
                if not parts:
                    self.caught_up.set()
        finally:
            c.close()

    def send(self, action: Action, timeout: float = 10.0) -> None:
        """Produce one action and wait for the broker's acknowledgement (AiotError naming why not)."""
        with self._plock:
            if self._producer is None:
                self._producer = make_producer(self.brokers, self.cfg.inputs.kafka)
            failed: list[str] = []

            def done(err: object, _msg: object) -> None:
                if err is not None:
                    failed.append(_text(err))

            self._producer.produce(action.topic, action.payload, key=action.key, on_delivery=done)
            t0 = time.monotonic()
            left = self._producer.flush(timeout)
            if left:
                raise AiotError(f"the broker {self.brokers} did not take the message to {action.topic} "
                                f"within {time.monotonic() - t0:.0f} s; it was not sent")
            if failed:
                raise AiotError(f"the broker refused the message to {action.topic}: {failed[0]}")


def _text(err: object) -> str:
    return err.str() if hasattr(err, "str") else str(err)  # type: ignore[attr-defined]
