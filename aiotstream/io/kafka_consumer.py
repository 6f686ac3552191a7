"""The flow's Kafka consumer side: Bytewax's ``KafkaSource`` with what a broker outage needs.

Partitions, offsets in recovery snapshots, ``tail`` and end-of-partition behave
exactly as Bytewax's (static assignment, one consumer per partition). Added:

* **The broker's health in a few lines.** Every consumer reports librdkafka's
  error events (``error_cb``: ``_TRANSPORT``, ``_ALL_BROKERS_DOWN``...) and its
  brokers' states (``stats_cb``, every second) to one
  :class:`~aiotstream.io.outage.OutageLog` per bootstrap list and process: one
  warning when the broker is lost, at most one line per 30 s while it stays
  down, one info line when every consumer that lost it is connected again.
  librdkafka's own log lines (``FAIL``...) go to logger
  ``aiotstream.io.kafka.librdkafka`` at DEBUG instead of stderr.
* **Stats that do not fail the flow.** Bytewax's lag metric reads the
  partition's entry in librdkafka's statistics, which may be missing while the
  broker is away; an exception there would escape from ``consume``.
* **Poll batches sized in bytes as well as messages.** Each partition asks
  ``consume`` for at most ``poll_batch`` messages and about ``poll_bytes`` at
  the size its recent messages had (:class:`PollSize`): 10,000 JSON readings
  of ~70 B a poll, but ~700 waveform frames of ~12 KB, not 120 MB of them.
* **Bounded waits at start.** Listing the topics' partitions waits at most
  ``BROKER_WAIT_S`` for the broker, then fails in one line naming it, and gives
  up at once on a stop request.

While the broker is down nothing is lost on this side: librdkafka reconnects by
itself (backoff ``reconnect.backoff.ms`` doubling to ``reconnect.backoff.max.ms``,
10 s) and each partition resumes at the offset after the last message it handed
to the flow; the broker keeps the data for its retention time. ``next_batch``
never waits longer than one ``consume`` call (1 ms), and ``close`` does not wait
for the broker.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from bytewax.connectors.kafka import KafkaSource
from bytewax.connectors.kafka import _KafkaSourcePartition as _BytewaxPartition
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from aiotstream.errors import AiotError
from aiotstream.io.kafka_client import BROKER_WAIT_S, CONSUMER_DEFAULTS, LIBRDKAFKA_LOG, metadata
from aiotstream.io.outage import OutageLog
from aiotstream.io.stop import STOP

log = logging.getLogger("aiotstream.io.kafka")
_HEALTH: dict[str, OutageLog] = {}
_HEALTH_LOCK = threading.Lock()


def broker_health(brokers: str) -> OutageLog:
    """The process's :class:`OutageLog` for a bootstrap list (its consumers share it)."""
    with _HEALTH_LOCK:
        h = _HEALTH.get(brokers)
        if h is None:
            h = _HEALTH[brokers] = OutageLog(log, f"Kafka {brokers}")
        return h


def is_loopback(address: str) -> bool:
    """True if a ``host:port`` bootstrap address is on this machine's loopback.

    >>> [is_loopback(a) for a in ("127.0.0.1:9092", "localhost:9092", "[::1]:9092", "10.0.0.5:9092",
    ...                           "kafka:9092")]
    [True, True, True, False, False]
    """
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_warning(brokers: Iterable[str], client_config: Mapping[str, str]) -> str | None:
    """What to say at start when the flow reads Kafka unencrypted from another machine, or None.

    >>> plaintext_warning(["127.0.0.1:9092"], {}) is None
    True
    >>> plaintext_warning(["10.0.0.5:9092"], {"security.protocol": "SSL"}) is None
    True
    >>> print(plaintext_warning(["10.0.0.5:9092"], {}).split(";")[0])  # doctest: +NORMALIZE_WHITESPACE
    Kafka 10.0.0.5:9092: security.protocol plaintext to a non-loopback address: messages cross the network
    unencrypted
    """
    protocol = client_config.get("security.protocol", "plaintext").lower()
    if protocol in ("ssl", "sasl_ssl"):
        return None
    remote = [b for b in brokers if not is_loopback(b)]
    if not remote:
        return None
    what = "messages and SASL credentials" if protocol == "sasl_plaintext" else "messages"
    return (f"Kafka {','.join(remote)}: security.protocol {protocol} to a non-loopback address: {what} cross "
            "the network unencrypted; set [inputs.kafka] security_protocol = \"SSL\" (or \"SASL_SSL\"), "
            "with ca_file, to secure it")


class PollSize:
    """How many messages a partition's next ``consume`` asks for: at most ``most``, and about ``budget``
    bytes at the size its messages have had (None: always ``most``).

    librdkafka bounds a ``consume`` call by messages, not bytes, so the count follows the size. The first
    call asks for ``most``: it returns only what librdkafka's queue holds by then (a fetch or a few,
    ``max.partition.fetch.bytes`` each), and a partition of small messages polls in the same steps from
    any start offset, a resume included. Then a larger mean size counts at once, and a smaller one halves
    the estimate per call: a partition whose 70-byte readings turn into 12 KB frames asks for fewer at the
    next call, and back at ``most`` within a few calls after.

    >>> p = PollSize(10_000, 8 << 20); p.count
    10000
    >>> p.observe(100, 100 * 12_000); p.count
    699
    >>> for _ in range(8):
    ...     p.observe(p.count, 70 * p.count)
    >>> p.count
    10000
    >>> PollSize(1000, None).count
    1000
    """

    __slots__ = ("budget", "count", "most", "size")

    def __init__(self, most: int, budget: int | None):
        self.most = most
        self.budget = budget
        self.size: float | None = None
        self.count = most

    def observe(self, messages: int, nbytes: int) -> None:
        """A ``consume`` call returned ``messages`` messages of ``nbytes`` bytes (values) in all."""
        if messages and self.budget is not None:
            mean = max(nbytes / messages, 1.0)
            self.size = mean if self.size is None else max(mean, self.size / 2)
            self.count = max(1, min(self.most, int(self.budget / self.size)))


class WatchedPartition(_BytewaxPartition):
    """Bytewax's Kafka partition, reporting the broker's health (see the module docstring) and asking for
    :class:`PollSize` messages a poll (``batch_size`` at most)."""

    def __init__(self, step_id: str, config: dict[str, Any], topic: str, part_idx: int, starting_offset: int,
                 resume_state: int | None, batch_size: int, raise_on_errors: bool, *, health: OutageLog,
                 member: str, poll_bytes: int | None = None):
        self._poll = PollSize(batch_size, poll_bytes)
        self._health = health
        self._member = member
        self._down = False
        config = {**config, "error_cb": self.on_error, "logger": LIBRDKAFKA_LOG}
        super().__init__(step_id, config, topic, part_idx, starting_offset, resume_state, batch_size,
                         raise_on_errors)

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's ``error_cb`` (called from ``consume``): the connection to the broker is in trouble."""
        self._down = True
        # librdkafka retries on its own, per broker and consumer, every few ms to 10 s: its events are not
        # counted
        self._health.failed(err.str(), member=self._member, attempt=False)

    def _process_stats(self, json_stats: str) -> None:
        if self._down or not self._health.ever_up:
            brokers = json.loads(json_stats).get("brokers", {})
            if any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers.values()):
                self._up()
        try:
            super()._process_stats(json_stats)
        except (KeyError, TypeError, ValueError):  # this partition is not in the stats (yet, or while down)
            pass

    def _up(self) -> None:
        self._down = False
        self._health.ok(member=self._member)

    def next_batch(self) -> list[Any]:
        self._batch_size = self._poll.count
        batch = super().next_batch()
        if batch:
            self._poll.observe(len(batch), sum(len(getattr(m, "msg", m).value or b"") for m in batch))
            if self._down:
                self._up()
        return batch


class WatchedKafkaSource(KafkaSource):
    """``bytewax.connectors.kafka.KafkaSource`` with :class:`WatchedPartition` partitions (``part_class``)."""

    part_class: type[WatchedPartition] = WatchedPartition

    def __init__(self, brokers: Iterable[str], topics: Iterable[str], *, poll_bytes: int | None = None,
                 **kwargs: Any):
        """``poll_bytes``: each partition's :class:`PollSize` budget (``batch_size`` is its most); the rest as
        Bytewax's ``KafkaSource``."""
        brokers = list(brokers)
        self._poll_bytes = poll_bytes
        super().__init__(brokers, list(topics), **kwargs)
        self._health = broker_health(",".join(brokers))
        self._add_config = {**self._add_config, "logger": LIBRDKAFKA_LOG}

    def list_parts(self) -> list[str]:
        """Each Kafka partition is an input partition. The AdminClient that lists them gets the client
        settings
        only (consumer properties there make librdkafka print CONFWARN lines), waits at most
        :data:`~aiotstream.io.kafka_client.BROKER_WAIT_S` for the broker (then one line naming it) and gives
        up
        when a stop is requested (an empty list: nothing to read)."""
        brokers = ",".join(self._brokers)
        client = {k: v for k, v in self._add_config.items() if k not in CONSUMER_DEFAULTS}
        admin = AdminClient({**client, "bootstrap.servers": brokers})
        parts: list[str] = []
        for topic in self._topics:
            if STOP.is_set():
                return []
            meta = metadata(admin, brokers, BROKER_WAIT_S, topic).topics[topic]
            if meta.error is not None:
                raise AiotError(f"cannot list the partitions of Kafka topic {topic!r} on {brokers}: "
                                f"{meta.error.str()}")
            parts += [f"{i}-{topic}" for i in meta.partitions]
        self._health.ok(member="metadata")
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> WatchedPartition:
        idx, topic = for_part.split("-", 1)
        assert topic in self._topics, "Can't resume from different set of Kafka topics"
        config = {  # as Bytewax's KafkaSource.build_part
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self._brokers),
            "enable.partition.eof": str(not self._tail),
            "statistics.interval.ms": 1000,
            **self._add_config,
        }
        return self.part_class(step_id, config, topic, int(idx), self._starting_offset, resume_state,
                               self._batch_size, self._raise_on_errors, health=self._health, member=for_part,
                               poll_bytes=self._poll_bytes)
