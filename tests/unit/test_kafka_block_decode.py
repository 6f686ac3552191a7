"""A Kafka poll batch decoded as one block (``MessageBlock``) gives what its messages give one by one.

The plant flow's Kafka source hands the decoder one :class:`~aiotstream.records.MessageBlock` per poll batch;
its plain JSON readings go column-wise into one :class:`~aiotstream.records.ReadingColumns` per asset, every
other message through the per-message path. Whatever the block holds (the fuzz's readings and frames, damaged
or not, in any order and mix), the items each asset gets, read back as readings, and the dead letters must be
those of the same messages decoded one at a time, with the same counts in the run summary.
"""
from __future__ import annotations

import base64
from functools import cache
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotstream.codecs.readings import encode_reading
from aiotstream.config import SiteConfig
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import (
    Frame,
    MessageBlock,
    Output,
    Position,
    Reading,
    ReadingColumns,
    SourceMessage,
    expand_columns,
)
from aiotstream.runstats import STATS
from benchmarks.fuzz_data import (
    ASSETS,
    BASE_NS,
    Batch,
    S,
    _frame_specs,
    _reading_specs,
    fuzz_config,
    render_frame,
    render_reading,
)

NOW_NS = BASE_NS + 600 * S  # the decoder's clock: the future horizon is judged against it


@cache
def _rt() -> SiteRuntime:
    return SiteRuntime(fuzz_config())


def _ingestor() -> Ingestor:
    return Ingestor(_rt(), now_ns=lambda: NOW_NS, live=False)


def _key(item: Any) -> tuple:
    """What an item is, comparable across the two paths (frames by their header and samples)."""
    if isinstance(item, Frame):
        # (the samples are dropped once reduced to partials)
        return ("frame", item.asset, item.seq, item.t0_ns, item.pos, item.raw, item.partials.tobytes(),
                None if item.spectral is None else item.spectral.tobytes())
    return (type(item).__name__, item)


def _decode(msgs: list[Any]) -> tuple[dict[str, list[tuple]], list[dict], dict[str, Any]]:
    """Items per asset (columns read back as readings, in offset order), dead letters and the summary counts."""
    STATS.reset()
    out = _ingestor().decode_grouped(msgs)
    items: dict[str, list[tuple]] = {}
    dead = []
    for x in out:
        if isinstance(x, Output):
            dead.append({k: v for k, v in x.record.items() if k != "produced_at"})  # (the wall clock)
            continue
        asset, got = x
        assert got, f"an empty list for {asset}"
        items[asset] = [_key(i) for i in sorted(expand_columns(got), key=lambda i: i.pos.offset)]
    dead.sort(key=lambda r: (r["source"]["offset"], r["reason"]))
    counts = {k: dict(STATS.snapshot().get(k, {})) for k in ("input_records", "inputs", "dropped")}
    return items, dead, counts


def _same_either_way(topic: str, raws: list[bytes], first_offset: int = 7) -> dict[str, list[tuple]]:
    offsets = list(range(first_offset, first_offset + len(raws)))
    one_by_one = _decode([SourceMessage(topic, 2, o, r) for o, r in zip(offsets, raws)])
    as_block = _decode([MessageBlock(topic, 2, list(raws), offsets)])
    assert as_block[0] == one_by_one[0]
    assert as_block[1] == one_by_one[1]
    assert as_block[2] == one_by_one[2]
    return as_block[0]


@st.composite
def _mixed(draw: st.DrawFn) -> Batch:
    """Readings (mostly plain, some damaged: the fuzz's own faults), sometimes frames among them."""
    specs = draw(st.lists(_reading_specs(), min_size=1, max_size=16))
    kind = "readings"
    if draw(st.booleans()):  # a few frames in the same block (rendered as frames: a topic of both)
        specs += draw(st.lists(_frame_specs(), min_size=1, max_size=2))
        kind = "mixed"
    order = draw(st.permutations(range(len(specs))))
    return Batch(kind, tuple(specs), tuple(order))


def _render_mixed(batch: Batch) -> list[bytes]:
    clock, raws = BASE_NS, []
    for k in batch.order:
        spec = batch.specs[k]
        clock += 50_000_000
        if hasattr(spec, "fields"):
            raws.append(render_reading(spec, clock))
        else:
            raws.append(render_frame(spec, clock))
    return raws


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_mixed())
def test_a_fuzzed_block_decodes_as_its_messages_one_by_one(batch: Batch) -> None:
    _same_either_way("fz.readings", _render_mixed(batch))


# faults the columns take and hand on message by message, and faults that send the whole block that way
_HANDED_ON = ("future", "negative", "range")
_WHOLE_BLOCK = ("bool", "extra", "str", "huge_ts", "cr", "huge")


@st.composite
def _plain(draw: st.DrawFn) -> list[bytes]:
    """Blocks of plain readings (the column path's own case) with some it must hand on to the per-message path
    (unknown and bad ids, empty metrics, times and values out of range) and, in some blocks, one kind that
    makes the whole block go message by message (a bool, another key, a string or a list for a number or an
    id, a time past int64, a message over the size limit or not starting as decode_any takes JSON)."""
    n = draw(st.integers(1, 40))
    whole = draw(st.sampled_from((None,) * 4 + _WHOLE_BLOCK))  # (one kind a block: each met alone)
    raws = []
    t0 = BASE_NS + draw(st.integers(0, 10 * S))
    shuffled = draw(st.booleans())
    for i in range(n):
        asset = draw(st.sampled_from(ASSETS * 6 + ("unknown-asset", "evil/#", "")))
        ts = t0 + i * 1000 + (draw(st.integers(-2 * S, 2 * S)) if shuffled else 0)
        metric = draw(st.sampled_from(("temperature", "v", "state", "")))
        value: Any = draw(st.floats(-1e13, 1e13) | st.integers(-(2**63), 2**64 - 1) | st.sampled_from((0, 1)))
        obj: dict[str, Any] = {"asset": asset, "ts": ts, "metric": metric, "value": value}
        fault = draw(st.sampled_from(("none",) * 16 + _HANDED_ON + ((whole,) if whole else ())))
        if fault == "future":
            obj["ts"] = NOW_NS + fuzz_config().window.max_future_s * S + draw(st.integers(1, 10**12))
        elif fault == "negative":
            obj["ts"] = -draw(st.integers(1, 2**63))
        elif fault == "range":
            obj["value"] = draw(st.sampled_from((1e12 + 1, -1e300, 2**64 - 1)))
        elif fault == "huge":  # over inputs.max_message_bytes
            obj["metric"] = "x" * (fuzz_config().inputs.max_message_bytes + 1)
        elif fault == "huge_ts":
            obj["ts"] = 2**63 + draw(st.integers(0, 2**63 - 1))
        elif fault == "bool":
            obj[draw(st.sampled_from(("ts", "value")))] = True
        elif fault == "extra":
            obj[draw(st.sampled_from(("schema", "x")))] = "x"
        elif fault == "str":
            obj[draw(st.sampled_from(("asset", "metric", "value", "ts")))] = draw(st.sampled_from((5, "5", [5])))
        raw = orjson.dumps(obj)
        raws.append(b"\r" + raw if fault == "cr" else raw)  # (JSON whitespace; decode_any: unknown_format)
    return raws


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plain())
def test_a_block_of_mostly_plain_readings_decodes_as_its_messages_one_by_one(raws: list[bytes]) -> None:
    _same_either_way("fz.readings", raws)


def test_a_plain_block_goes_to_each_asset_as_one_set_of_columns_with_the_messages_bytes() -> None:
    raws = [encode_reading(a, BASE_NS + k * 100_000_000, "v", 1.5 * k) for k in range(5) for a in ASSETS]
    raws[4] = encode_reading("unknown-asset", BASE_NS, "v", 1.0)
    out = _ingestor().decode_grouped([MessageBlock("fz.readings", 1, raws, list(range(100, 115)))])
    dead = [x for x in out if isinstance(x, Output)]
    assert [d.record["reason"] for d in dead] == ["unknown_asset"]
    assert dead[0].record["source"]["offset"] == 104
    groups = dict(x for x in out if not isinstance(x, Output))
    assert sorted(groups) == list(ASSETS)
    for got in groups.values():
        assert len(got) == 1 and type(got[0]) is ReadingColumns, got
        cols = got[0]
        assert cols.in_order and cols.raws is not None
        for r in cols.readings():
            assert r.raw == raws[r.pos.offset - 100]
            assert (r.pos.topic, r.pos.partition) == ("fz.readings", 1)
    assert sum(len(g[0]) for g in groups.values()) == 14


@pytest.mark.parametrize("order", ["in order", "out of order"])
def test_the_in_order_flag_holds_only_when_times_are_in_order(order: str) -> None:
    times = [BASE_NS + k * S for k in range(6)]
    if order == "out of order":
        times[2], times[3] = times[3], times[2]
    raws = [encode_reading("asset-000", t, "v", 1.0) for t in times]
    out = _ingestor().decode_grouped([MessageBlock("fz.readings", 0, raws, list(range(6)))])
    (_, (cols,)), = out
    assert cols.in_order is (order == "in order")
    assert cols.ts_ns == times


def test_a_late_reading_from_a_block_keeps_its_message_in_the_dead_letter() -> None:
    # readings only: the windows close on the readings' progress (the fuzz's site waits for frames)
    rt = SiteRuntime(SiteConfig.from_dict({**fuzz_config().model_dump(mode="json", exclude_none=True),
                                           "scalar": {"readings_only": True}}))
    ing = Ingestor(rt, now_ns=lambda: NOW_NS, live=False)
    an = AssetAnalyzer(rt, "asset-000")
    first = [encode_reading("asset-000", BASE_NS + k * S, "temperature", 20.0) for k in range(0, 30, 2)]
    (_, items), = ing.decode_grouped([MessageBlock("fz.readings", 0, first, list(range(len(first))))])
    an.on_items(items, None)
    # as a device may write it (spaces, an int value): not what encode_reading would make of the reading
    late_raw = b'{"asset": "asset-000", "ts": %d, "metric": "temperature", "value": 21}' % (BASE_NS + S // 2)
    (_, items), = ing.decode_grouped([MessageBlock("fz.readings", 0, [late_raw], [99])])
    assert type(items[0]) is ReadingColumns
    outs = an.on_items(items, None)
    late = [o for o in outs if o.kind == "deadletter"]
    assert [o.record["reason"] for o in late] == ["late"]
    assert late[0].record["source"]["offset"] == 99
    # the dead letter keeps the message as it came (a table row's is re-encoded: it has no bytes of its own)
    assert base64.b64decode(late[0].record["payload_b64"]) == late_raw


def test_columns_with_bytes_pickle_and_read_back_the_same_readings() -> None:
    import pickle

    c = ReadingColumns("a", "t", 0, [1, 2], ["m", "m"], [1.0, 2.0], [5, 6], True, [b"x", b"y"])
    back = pickle.loads(pickle.dumps(c))
    assert back.readings() == c.readings()
    assert [r.raw for r in back.readings()] == [b"x", b"y"]
    old = ReadingColumns.__new__(ReadingColumns)
    old.__setstate__(("a", "t", 0, [1], ["m"], [1.0], [5], True))  # a snapshot from before the bytes
    assert old.readings() == [Reading("a", 1, "m", 1.0, Position("t", 0, 5))]


def test_a_block_on_a_control_topic_goes_message_by_message() -> None:
    """Readings on the control topic are not readings there: promotions and erasures only."""
    site = fuzz_config().model_dump(mode="json", exclude_none=True)
    rt = SiteRuntime(SiteConfig.from_dict({**site, "governance": {"erasure": True}}))
    (topic,) = rt.config.control_topics()
    raws = [encode_reading(a, BASE_NS + k * S, "v", 1.0) for k in range(3) for a in ASSETS]

    def decode(msgs: list[Any]) -> list[Any]:
        out = Ingestor(rt, now_ns=lambda: NOW_NS, live=False).decode_grouped(msgs)
        return [(o.record["reason"], o.record["source"]["offset"]) if isinstance(o, Output) else o for o in out]

    one_by_one = decode([SourceMessage(topic, 0, k, r) for k, r in enumerate(raws)])
    assert one_by_one and all(isinstance(x, tuple) and isinstance(x[0], str) for x in one_by_one), one_by_one
    assert decode([MessageBlock(topic, 0, raws, list(range(len(raws))))]) == one_by_one
