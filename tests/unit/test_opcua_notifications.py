"""What the OPC UA source does with the notification messages a server publishes (real asyncua message types,
no server): duplicates dropped and counted, missed messages and server-side overflows counted as losses,
nothing invented; hypothesis over replayed, repeated and gapped message streams."""
from __future__ import annotations

import asyncio
import queue
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import OpcUaInput
from aiotstream.io.opcua import OpcUaConnection, overflowed
from aiotstream.runstats import RunStats

ua = pytest.importorskip("asyncua").ua
T0 = datetime(2026, 3, 1, tzinfo=UTC)
NODES = 3


def conn(q_size: int = 10_000) -> tuple[OpcUaConnection, queue.Queue, RunStats]:
    cfg = OpcUaInput(endpoint="opc.tcp://plc:4840", nodes=[{"node_id": f"ns=2;i={i}", "asset": "a", "metric": f"m{i}"}
                                                            for i in range(NODES)])
    q: queue.Queue = queue.Queue(maxsize=q_size)
    stats = RunStats()
    c = OpcUaConnection(cfg, q, stats)  # not started: no thread, no client
    c.sub_id = 7
    return c, q, stats


def message(seq: int, items: list[tuple[int, float, int, int]]) -> object:
    """A PublishResult of subscription 7: items are (client handle, value, status, ms after T0)."""
    mons = []
    for handle, value, status, ms in items:
        ts = T0 + timedelta(milliseconds=ms)
        dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double), StatusCode=ua.StatusCode(status),
                          SourceTimestamp=ts, ServerTimestamp=ts)
        mons.append(ua.MonitoredItemNotification(ClientHandle=handle, Value=dv))
    data = [ua.DataChangeNotification(MonitoredItems=mons)] if mons else []
    return ua.PublishResult(SubscriptionId=7, NotificationMessage=ua.NotificationMessage(SequenceNumber=seq,
                                                                                         NotificationData=data))


LOOP = asyncio.new_event_loop()


def pub(c: OpcUaConnection, msg: object) -> None:
    LOOP.run_until_complete(c._on_publish(msg))


def drain(q: queue.Queue) -> list[dict]:
    out = []
    while not q.empty():
        out.append(orjson.loads(q.get_nowait()[3]))
    return out


def test_republished_message_and_repeated_initial_value_are_dropped() -> None:
    c, q, stats = conn()
    pub(c, message(1, [(0, 1.0, 0, 10), (1, 2.0, 0, 10)]))
    pub(c, message(1, [(0, 1.0, 0, 10), (1, 2.0, 0, 10)]))  # republished: same sequence
    pub(c, message(1, [(0, 1.0, 0, 10)]))  # a new subscription's initial value, unchanged
    pub(c, message(2, [(0, 1.0, 0, 20)]))  # same value, later sample: a reading
    assert [(r["node"], r["value"], r["source_ts"]) for r in drain(q)] == [
        ("ns=2;i=0", 1.0, 1772323200010000000), ("ns=2;i=1", 2.0, 1772323200010000000),
        ("ns=2;i=0", 1.0, 1772323200020000000)]
    assert stats.get("dropped", "opcua_duplicate") == 3
    assert stats.get("losses") == 0


def test_overflow_and_missed_messages_are_counted_as_losses() -> None:
    c, q, stats = conn()
    pub(c, message(1, [(0, 1.0, 0, 10)]))
    pub(c, message(4, [(0, 5.0, 0x00000480, 50)]))  # 2 and 3 never came; overflow bit set
    assert [r["value"] for r in drain(q)] == [1.0, 5.0]
    assert stats.snapshot()["losses"] == {"opcua_notifications_missed": 2, "opcua_queue_overflow": 1}
    assert overflowed(0x00000480) and not overflowed(0x80000480 & 0x80000000)


def test_keepalive_and_status_change() -> None:
    c, q, _stats = conn()
    pub(c, message(0, []))  # keep-alive: nothing
    assert q.empty() and c.sub_problem is None
    bad = ua.PublishResult(SubscriptionId=7, NotificationMessage=ua.NotificationMessage(
        NotificationData=[ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))]))
    pub(c, bad)
    assert c.sub_problem == "subscription status BadTimeout"


def test_a_full_queue_waits_instead_of_dropping() -> None:
    c, q, _stats = conn(q_size=2)

    async def go() -> None:
        task = asyncio.ensure_future(c._on_publish(message(1, [(0, 1.0, 0, 1), (1, 2.0, 0, 1), (2, 3.0, 0, 1)])))
        await asyncio.sleep(0.05)
        assert not task.done() and c.in_callback == 1  # waiting for room: the publish loop asks for no more
        assert c.last_seq == 0
        q.get_nowait()
        await asyncio.wait_for(task, 1)

    asyncio.run(go())
    assert q.qsize() == 2 and c.last_seq == 1 and c.in_callback == 0


items = st.lists(st.tuples(st.integers(0, NODES - 1), st.sampled_from([1.0, 2.0]), st.sampled_from([0, 0x80000000]),
                           st.integers(0, 5)), max_size=6)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(items, st.sampled_from(["new", "again", "skip"])), max_size=12))
def test_every_distinct_value_once_whatever_the_server_resends(stream: list[tuple[list, str]]) -> None:
    """Messages arrive in sequence order; some are sent again (republish), some never come (lost): each value
    of a message that came is delivered once unless it repeats its node's last delivered value; dropped and
    delivered add up to what came; missed messages are counted."""
    c, q, stats = conn()
    seq, sent, expected = 0, 0, []
    last: dict[int, tuple] = {}
    gaps, pending_gap, seen_data = 0, 0, False
    for its, how in stream:
        if how == "skip":  # a data message that never comes
            seq += 1
            pending_gap += 1
            continue
        if not its:  # a keep-alive: carries the next sequence number without using it
            pub(c, message(seq + 1, []))
            continue
        seq += 1
        gaps += pending_gap if seen_data else 0  # known once a later message shows the gap
        pending_gap, seen_data = 0, True
        msg = message(seq, its)
        pub(c, msg)
        sent += len(its)
        for h, v, s, ms in its:
            ident = (ms, s, v)
            if last.get(h) != ident:
                last[h] = ident
                expected.append((h, v, s))
        if how == "again":
            pub(c, msg)
            sent += len(its)
    got = [(int(r["node"].split("=")[-1]), r["value"], r["status"]) for r in drain(q)]
    assert got == expected
    assert stats.get("dropped", "opcua_duplicate") == sent - len(got)
    assert stats.get("losses", "opcua_notifications_missed") == gaps
