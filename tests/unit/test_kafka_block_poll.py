"""How the flow's Kafka block source asks librdkafka for messages (the calls, with a stand-in consumer).

``Consumer.consume(n, timeout)`` returns early only once it has ``n`` messages, so a partition whose queue
held 100 frames and was asked for up to 10,000 waited the whole timeout on every poll. A partition with
messages now answers at once (timeout 0); only an empty one waits its 1 ms, so an idle source does not spin.
(Reading a real broker's partitions to the end: tests/integration/test_kafka_poll_size.py.)
"""
from __future__ import annotations

from confluent_kafka import Message

from aiotstream.io.kafka_blocks import _BlockPartition
from aiotstream.io.kafka_client import arrived
from aiotstream.io.kafka_consumer import PollSize
from aiotstream.records import MessageBlock


class _Queue:
    """A consumer's local queue: ``consume`` takes up to ``n`` of what it holds and notes the timeout."""

    def __init__(self, msgs: list[Message]):
        self.msgs = msgs
        self.timeouts: list[float] = []

    def consume(self, n: int, timeout: float) -> list[Message]:
        self.timeouts.append(timeout)
        out, self.msgs = self.msgs[:n], self.msgs[n:]
        return out

    def poll(self, timeout: float) -> Message | None:
        got = self.consume(1, timeout)
        return got[0] if got else None


def _part(msgs: list[Message], most: int = 10_000) -> tuple[_BlockPartition, _Queue]:
    part = _BlockPartition.__new__(_BlockPartition)  # (no broker: the attributes _next_blocks reads)
    q = _Queue(msgs)
    part._consumer, part._poll, part._eof, part._down = q, PollSize(most, None), False, False
    part._topic, part._part_idx, part._raise_on_errors, part._offset = "t", 0, True, 0
    return part, q


def _msgs(n: int, first: int = 0) -> list[Message]:
    return [Message(topic="t", partition=0, offset=first + i, value=b"v%d" % i) for i in range(n)]


def test_a_partition_with_messages_answers_at_once() -> None:
    part, q = _part(_msgs(3))
    [blk] = part.next_batch()
    assert type(blk) is MessageBlock and blk.offsets == [0, 1, 2] and blk.values == [b"v0", b"v1", b"v2"]
    assert q.timeouts == [0]  # not the 1 ms that consume(10_000, 0.001) waited for 9,997 more
    assert part._offset == 3


def test_an_empty_partition_waits_its_1_ms_so_an_idle_source_does_not_spin() -> None:
    part, q = _part([])
    assert part.next_batch() == []
    assert q.timeouts == [0, 0.001]


def test_the_poll_count_still_bounds_a_poll() -> None:
    part, q = _part(_msgs(25), most=10)
    sizes = [len(part.next_batch()[0].values) for _ in range(3)]
    assert sizes == [10, 10, 5] and q.timeouts == [0, 0, 0]
    assert part._offset == 25 and part.next_batch() == [] and q.timeouts[-2:] == [0, 0.001]


def test_a_live_reader_gets_what_has_arrived_at_once_and_no_more_than_it_asked() -> None:
    """``arrived`` (the console's feed, the latency benchmark's reader): the first record as soon as it is there
    (poll's wait), the rest of the queue without a wait, at most ``most``; nothing after the wait if empty."""
    q = _Queue(_msgs(7))
    assert [m.offset() for m in arrived(q, 5, 0.2)] == [0, 1, 2, 3, 4] and q.timeouts == [0.2, 0]
    assert [m.offset() for m in arrived(q, 5, 0.2)] == [5, 6]
    assert arrived(q, 5, 0.2) == [] and q.timeouts[-1] == 0.2
