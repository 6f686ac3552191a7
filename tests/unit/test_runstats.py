"""Run counters: each kind of source batch counts as the inputs it holds; outputs by kind, dead letters by reason."""
from __future__ import annotations

import threading

import numpy as np
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage

from aiotstream.records import DecodeHints, DeviceMessage, MessageBlock, ReadingRows, SourceMessage
from aiotstream.runstats import RunStats, count_inputs, count_outputs


class _Out:
    def __init__(self, kind: str, reason: str | None = None):
        self.kind = kind
        self.record = {"reason": reason} if reason else {}


def test_inputs_count_rows_blocks_and_messages_but_not_transport_errors():
    s = RunStats()
    rows = ReadingRows("file:/d/a.csv", -1, np.arange(3), ["a"] * 3, np.zeros(3, np.int64), ["t"] * 3, np.zeros(3),
                       rejects=[(3, b"x", "bad_row", "bad")])
    bad = KafkaError("broken", KafkaSourceMessage(None, b"v", topic="p.readings", partition=0, offset=9))
    down = KafkaError("all brokers down", KafkaSourceMessage(None, None, topic=None, partition=None, offset=None))
    block = MessageBlock("p.meters", 1, [b"1", b"2"], [0, 1], errors=[bad])
    msgs = [rows, block, down, SourceMessage("p.waveforms", 0, 1, b""),
            DeviceMessage("mqtt:plant/a/t", -1, 0, b"1", DecodeHints()),
            DeviceMessage("opcua:opc.tcp://h:4840#ns=2;i=1", -1, 0, b"1", DecodeHints())]
    # the total is the batch size the decoders report (messages, rows and a block's values and errors)
    assert count_inputs(msgs, s) == 10
    assert s.snapshot()["inputs"] == {"file": 4, "p.meters": 2, "p.readings": 1, "p.waveforms": 1, "mqtt": 1,
                                      "opcua": 1}


def test_outputs_by_kind_and_dead_letters_by_reason():
    s = RunStats()
    count_outputs([_Out("alert"), _Out("deadletter", "bad_json"), _Out("deadletter", "bad_json"),
                   _Out("deadletter", "too_large")], s)
    assert s.snapshot()["outputs"] == {"alert": 1, "deadletter": 3}
    assert s.get("deadletters") == 3 and s.get("deadletters", "bad_json") == 2
    line = s.summary()
    assert "dead letters 3 (bad_json 2, too_large 1)" in line and "outputs 4 (deadletter 3, alert 1)" in line


def test_summary_always_names_inputs_outputs_and_losses_and_sets_gauges():
    s = RunStats()
    assert s.summary() == "inputs 0; outputs 0; known losses none"
    s.add("losses", "mqtt_seq_gap", 5)
    s.set("gauges", "active_suppressions", 2)
    s.set("gauges", "active_suppressions", 1)
    assert s.summary() == "inputs 0; outputs 0; known losses 5 (mqtt_seq_gap 5); active_suppressions 1"
    s.reset()
    assert s.snapshot()["losses"] == {}


def test_concurrent_adds_are_not_lost():
    s = RunStats()

    def work():
        for _ in range(10_000):
            s.add("inputs", "t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.get("inputs", "t") == 40_000


def test_the_same_lost_messages_seen_twice_count_once_and_other_causes_add() -> None:
    s = RunStats()
    s.add("losses", "mqtt_seq_gap", 6000)
    assert s.get("losses") == 6000
    s.add("losses", "mqtt_broker_dropped", 5000)  # the broker saw fewer (or the device numbered fewer)
    assert s.get("losses") == 6000
    s.add("losses", "mqtt_broker_dropped", 2000)
    assert s.get("losses") == 7000
    s.add("losses", "mqtt_session_lost", 3)  # another cause: adds
    assert s.get("losses") == 7003
    line = s.summary()
    assert "known losses 7,003 (" in line and "overlap: counted once]" in line, line
    assert s.get("losses", "mqtt_seq_gap") == 6000  # the keys keep their own counts


def test_windows_closed_is_observe_ages_and_watermark() -> None:
    """``windows_closed`` (one call per asset and batch) leaves the histogram and the watermarks exactly as
    ``observe_ages`` of the close latencies and ``watermark`` of the newest end do, batch after batch (ages
    in every bucket, on the bounds too, and past the last)."""
    from hypothesis import given
    from hypothesis import strategies as st

    from aiotstream.runstats import BUCKETS

    bounds = BUCKETS["window_close_latency_seconds"]
    age = st.one_of(st.sampled_from([*bounds, 0.0, 1e7]), st.floats(-10, 5000, allow_nan=False))

    @given(batches=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 1e9, allow_nan=False),
                                      st.lists(age, min_size=1, max_size=4)), min_size=1, max_size=6))
    def check(batches: list) -> None:
        fast, ref = RunStats(), RunStats()
        for asset, now, ages in batches:
            ends = [round((now - a) * 1_000_000_000) for a in ages]
            fast.windows_closed(asset, now, list(ends))
            ref.observe_ages("window_close_latency_seconds", now, ends)
            ref.watermark(asset, max(ends))
            assert fast.histograms() == ref.histograms()
            assert sorted(fast.watermarks()) == sorted(ref.watermarks())
    check()
