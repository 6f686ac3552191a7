"""Kafka poll batches sized in bytes as well as messages, on a real broker (Tansu).

One partition carries a run of reading-sized messages, then waveform-sized ones, then small ones again (as a
topic whose producers change would). Read to its end with the flow's source (both kinds of partition):
every message comes once and in order, no poll asks for more than ``poll_batch``, a poll after one of large
messages stays within ``poll_bytes`` and still takes several, and both runs of small messages are read
``poll_batch`` at a time. (The first poll, and the first after the messages grow, take what the count
allowed before: librdkafka's consumer counts messages.)
"""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from aiotstream.config import default_site
from aiotstream.io.kafka import ensure_topics, kafka_source
from aiotstream.records import MessageBlock

pytestmark = pytest.mark.integration

BIG, SMALL = 12_000, 70  # bytes: a 3 x 1,024 float32 frame, a JSON reading
POLL_BATCH, POLL_BYTES = 1_000, 120_000  # 1,000 small ones are 70 kB
N_SMALL, N_BIG, N_AFTER = 12_000, 2_000, 5_000


def _payloads() -> list[bytes]:
    small = [b"r%07d" % i + b"y" * (SMALL - 8) for i in range(N_SMALL + N_AFTER)]
    big = [b"F%07d" % i + b"x" * (BIG - 8) for i in range(N_BIG)]
    return small[:N_SMALL] + big + small[N_SMALL:]


def _batches(part: Any) -> list[list[tuple[int, bytes]]]:
    """Each poll's (offset, value) pairs, read until end of partition."""
    out: list[list[tuple[int, bytes]]] = []
    while True:
        try:
            batch = part.next_batch()
        except StopIteration:
            return out
        got: list[tuple[int, bytes]] = []
        for item in batch:
            if type(item) is MessageBlock:
                assert not item.errors
                got += zip(item.offsets, item.values)
            else:
                got.append((item.offset, item.value))
        if got:
            out.append(got)


@pytest.fixture(scope="module")
def topic(kafka_broker: str) -> str:
    name = f"ps-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_broker, [f"{name}.readings"], partitions=1)
    p = Producer({"bootstrap.servers": kafka_broker, "linger.ms": 20})
    for v in _payloads():
        p.produce(f"{name}.readings", value=v)
    assert p.flush(60) == 0
    return name


@pytest.mark.parametrize("blocks", [True, False])
def test_polls_follow_the_message_size(kafka_broker: str, topic: str, blocks: bool) -> None:
    cfg = default_site(1, site_id=topic, inputs={
        "tail": False, "topics": [f"{topic}.readings"], "poll_batch": POLL_BATCH, "poll_bytes": POLL_BYTES})
    src = kafka_source(cfg, kafka_broker, tail=False, blocks=blocks)
    [name] = [p for p in src.list_parts() if p.endswith(f"{topic}.readings")]
    part = src.build_part("input", name, None)
    try:
        batches = _batches(part)
    finally:
        part.close()

    flat = [m for b in batches for m in b]
    assert [o for o, _ in flat] == list(range(len(_payloads())))
    assert [v for _, v in flat] == _payloads()

    sizes = [sum(len(v) for _, v in b) for b in batches]
    assert max(map(len, batches)) <= POLL_BATCH
    after_big = [sizes[i + 1] for i, b in enumerate(batches[:-1]) if all(len(v) == BIG for _, v in b)]
    assert after_big and max(after_big) <= POLL_BYTES
    big_only = [b for b in batches if all(len(v) == BIG for _, v in b)]
    assert max(map(len, big_only)) >= POLL_BYTES // BIG // 2  # and not one large message a poll
    last_big = max(i for i, b in enumerate(batches) if any(len(v) == BIG for _, v in b))
    before = batches[:next(i for i, b in enumerate(batches) if any(len(v) == BIG for _, v in b))]
    assert any(len(b) == POLL_BATCH for b in before)  # small ones: poll_batch a poll, not 10 of them
    assert any(len(b) == POLL_BATCH for b in batches[last_big + 1:])  # and again after the large ones
