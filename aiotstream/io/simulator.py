"""The plant simulator as a flow input: in-process (a Bytewax source) or written to Kafka."""
from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.records import SourceMessage
from aiotstream.sim.plant import SimMessage

if TYPE_CHECKING:
    from aiotstream.config import KafkaSecurity


def interleave(valid: Iterable[SimMessage], extra: list[SimMessage]) -> Iterator[SimMessage]:
    """Spread ``extra`` messages (e.g. malformed ones) evenly through the ``valid`` stream.

    The k-th of E extras goes before valid message ``k * V // (E + 1)``.

    >>> list(interleave(iter("abcd"), ["X", "Y"]))
    ['a', 'X', 'b', 'Y', 'c', 'd']
    """
    buffered = list(valid)
    n_valid, n_extra = len(buffered), len(extra)
    k = 0
    for i, m in enumerate(buffered):
        while k < n_extra and (k + 1) * n_valid // (n_extra + 1) <= i:
            yield extra[k]
            k += 1
        yield m
    yield from extra[k:]


class _SimPartition(StatefulSourcePartition[SourceMessage, int]):
    def __init__(self, messages: list[SimMessage], topics: dict[str, str], batch: int, resume: int | None):
        self.messages = messages
        self.topics = topics
        self.batch = batch
        self.pos = resume or 0
        self.offsets = {t: sum(1 for m in messages[: self.pos] if topics[m.stream] == t)
                        for t in topics.values()}

    def next_batch(self) -> list[SourceMessage]:
        if self.pos >= len(self.messages):
            raise StopIteration()
        chunk = self.messages[self.pos: self.pos + self.batch]
        out = []
        for m in chunk:
            topic = self.topics[m.stream]
            out.append(SourceMessage(topic, 0, self.offsets[topic], m.payload, m.asset.encode()))
            self.offsets[topic] += 1
        self.pos += len(chunk)
        return out

    def snapshot(self) -> int:
        return self.pos


class _LazySimPartition(_SimPartition):
    """Like :class:`_SimPartition`, from a fresh iterator (a seeded simulator's ``messages``): nothing is held
    in memory; a resume skips the messages before its position."""

    def __init__(self, make: Callable[[], Iterator[SimMessage]], topics: dict[str, str], batch: int,
                 resume: int | None):
        self.it = make()
        self.topics = topics
        self.batch = batch
        self.pos = resume or 0
        self.offsets = dict.fromkeys(topics.values(), 0)
        for m in itertools.islice(self.it, self.pos):
            self.offsets[topics[m.stream]] += 1
        self.messages = []

    def next_batch(self) -> list[SourceMessage]:
        self.messages = list(itertools.islice(self.it, self.batch))
        if not self.messages:
            raise StopIteration()
        out = []
        for m in self.messages:
            topic = self.topics[m.stream]
            out.append(SourceMessage(topic, 0, self.offsets[topic], m.payload, m.asset.encode()))
            self.offsets[topic] += 1
        self.pos += len(self.messages)
        return out


class SimulatorSource(FixedPartitionedSource[SourceMessage, int]):
    """Feeds a flow in-process from simulator messages (one partition, positions as offsets): a list, or a
    function that returns a fresh iterator of the same messages each time (``sim.messages``: a long run is
    never held in memory)."""

    def __init__(self, messages: Iterable[SimMessage] | Callable[[], Iterator[SimMessage]], site: str,
                 batch: int = 512):
        self.make = messages if callable(messages) else None
        self.messages = [] if callable(messages) else list(messages)
        # feedback: the realistic scenario's maintenance messages (aiotstream.sim.realistic); control: model
        # promotions and erasure requests
        self.topics = {"waveform": f"{site}.waveforms", "reading": f"{site}.readings",
                       "feedback": f"{site}.feedback", "control": f"{site}.control"}
        self.batch = batch

    def list_parts(self) -> list[str]:
        return ["sim"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _SimPartition:
        if self.make is not None:
            return _LazySimPartition(self.make, self.topics, self.batch, resume_state)
        return _SimPartition(self.messages, self.topics, self.batch, resume_state)


def write_to_kafka(messages: Iterable[SimMessage], brokers: str, waveform_topic: str, readings_topic: str,
                   progress: bool = False, co_partition: bool = True,
                   security: KafkaSecurity | None = None) -> dict[str, int]:
    """Produce simulator messages keyed by asset id (so an asset stays in one partition); return counts.

    Feedback messages (the realistic scenario's maintenance windows) go to ``readings_topic``: the flow tells
    them apart by their ``schema`` key, whatever the topic.

    ``co_partition`` (the default) puts each asset in its :func:`~aiotstream.routing.partition_for` of the
    topic's partitions, so a cluster whose workers divide the partition count reads each asset on the process
    that owns it; ``False`` leaves the partition to librdkafka's default partitioner (CRC32 of the key)."""
    from aiotstream.io.kafka import ANY_PARTITION, make_producer
    from aiotstream.routing import partition_for

    producer = make_producer(brokers, security)
    counts = {"waveform": 0, "reading": 0, "feedback": 0, "invalid": 0}
    errors: list[str] = []
    sizes = {t: len(producer.list_topics(t, timeout=15).topics[t].partitions) if co_partition else 0
             for t in (waveform_topic, readings_topic)}

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    t0 = time.monotonic()
    for i, m in enumerate(messages):
        topic = waveform_topic if m.stream == "waveform" else readings_topic
        while True:
            try:
                producer.produce(topic, value=m.payload, key=m.asset.encode(), on_delivery=on_delivery,
                                 partition=partition_for(m.asset,
                                                         sizes[topic]) if sizes[topic] else ANY_PARTITION)
                break
            except BufferError:
                producer.poll(0.05)
        counts[m.stream] += 1
        counts["invalid"] += int(not m.valid)
        if i % 1000 == 0:
            producer.poll(0)
            if progress and i and i % 10_000 == 0:
                print(f"  produced {i:,} messages ({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(f"{remaining} message(s) not delivered, {len(errors)} error(s): {errors[:3]}")
    return counts
