"""The shared block parser of plain JSON readings, and the building flow's decoder around it.

:func:`~aiotstream.codecs.readings.plain_readings` takes a Kafka poll batch column-wise only when every message
is a plain reading; both flows hand anything else to the per-message decoder. Checked here against an oracle
written from its docstring, and the building flow's block path against the same messages one by one (as
Bytewax's message objects and as plain source messages): same zone partials, same dead letters. The building
flow also enforces ``inputs.max_message_bytes`` and ``inputs.max_abs_value`` now, in every path.
"""
from __future__ import annotations

from functools import cache
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotstream.codecs.readings import decode_any, plain_readings
from aiotstream.config import SiteConfig
from aiotstream.energy.ingest import BuildingIngest
from aiotstream.energy.runtime import BuildingRuntime
from aiotstream.errors import DecodeError
from aiotstream.records import MessageBlock, Output, Position, Reading, SourceMessage

S = 1_000_000_000
T0 = 1_767_225_600 * S
NOW = T0 + 3600 * S  # the decoder's clock
MAX_BYTES = 1_024  # the smallest inputs.max_message_bytes
MAX_ABS = 1e3  # the smallest inputs.max_abs_value
KEYS = {"asset", "ts", "metric", "value"}

# ---- messages: plain readings and every near miss -----------------------------------------------------------

# a fault, and what it does to a plain reading's object or bytes
_FAULTS: dict[str, Any] = {
    "bool_value": lambda o: {**o, "value": True},
    "bool_ts": lambda o: {**o, "ts": False},
    "str_value": lambda o: {**o, "value": "4.5"},
    "float_ts": lambda o: {**o, "ts": float(o["ts"])},
    "list_asset": lambda o: {**o, "asset": [o["asset"]]},
    "int_metric": lambda o: {**o, "metric": 7},
    "extra_key": lambda o: {**o, "unit": "kW"},
    "missing_key": lambda o: {k: v for k, v in o.items() if k != "value"},
    "schema_key": lambda o: {"schema": "aiotstream.feedback/1", "asset": o["asset"], "ts": o["ts"],
                             "metric": o["metric"]},
    "huge_ts": lambda o: {**o, "ts": 2**63},
    "u64_ts": lambda o: {**o, "ts": 2**64 - 1},
    "null_value": lambda o: {**o, "value": None},
    # range faults: the columns take these and the caller hands them on
    "negative_ts": lambda o: {**o, "ts": -1},
    "future_ts": lambda o: {**o, "ts": NOW + 3600 * S},
    "big_value": lambda o: {**o, "value": MAX_ABS * 10},
    "big_negative": lambda o: {**o, "value": -MAX_ABS * 10},
    "empty_metric": lambda o: {**o, "metric": ""},
    "bad_id": lambda o: {**o, "asset": "z 1"},
    "unknown_zone": lambda o: {**o, "asset": "z9"},
    "unknown_meter": lambda o: {**o, "metric": "steam_kg"},
    "outdoor": lambda o: {**o, "asset": "weather", "metric": "temperature"},
}
_RAW_FAULTS: dict[str, Any] = {
    "cr_first": lambda b: b"\r" + b,  # orjson takes it, decode_any does not
    "space_first": lambda b: b" " + b,
    "tab_newline": lambda b: b"\t\n" + b,
    "too_large": lambda b: b + b" " * MAX_BYTES,  # still valid JSON
    "at_limit": lambda b: b + b" " * (MAX_BYTES - len(b)),
    "array": lambda b: b"[" + b + b"]",
    "not_json": lambda b: b[:-1],
    "empty": lambda b: b"",
    "tombstone": lambda b: None,  # a Kafka message without a value
    "frame_magic": lambda b: b"AIOF" + b,
    "bom": lambda b: b"\xef\xbb\xbf" + b,
}


@st.composite
def _message(draw: st.DrawFn, faults: bool = True) -> bytes:
    zone = draw(st.sampled_from(["z1", "z2"]))
    metric = draw(st.sampled_from(["power_kw", "temperature", "occupancy", "hvac_state"]))
    ts = T0 + draw(st.integers(0, 60)) * S // 2
    value: int | float = draw(st.one_of(st.integers(-5, 5), st.floats(-999.0, 999.0, allow_nan=False)))
    obj = {"asset": zone, "ts": ts, "metric": metric, "value": value}
    keys = list(obj)
    order = draw(st.permutations(keys))  # any key order
    obj = {k: obj[k] for k in order}
    if faults and draw(st.integers(0, 5)) == 0:
        obj = _FAULTS[draw(st.sampled_from(sorted(_FAULTS)))](obj)
    raw = orjson.dumps(obj)
    if faults and draw(st.integers(0, 7)) == 0:
        raw = _RAW_FAULTS[draw(st.sampled_from(sorted(_RAW_FAULTS)))](raw)
    return raw


_blocks = st.lists(_message(), min_size=1, max_size=30)


def _oracle(raw: bytes) -> dict | None:
    """The plain reading in ``raw`` as the docstring defines it, or None."""
    if not raw or len(raw) > MAX_BYTES or raw[:1] not in (b"{", b" ", b"\n", b"\t"):
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or set(obj) != KEYS:
        return None
    if type(obj["asset"]) is not str or type(obj["metric"]) is not str:
        return None
    if type(obj["ts"]) is not int or not -2**63 <= obj["ts"] < 2**63:
        return None
    if type(obj["value"]) not in (int, float):
        return None
    return obj


def _both(raws: list[bytes]) -> Any:
    """plain_readings in one pass of the kernel, checked against its Python twin."""
    got = plain_readings(raws, MAX_BYTES)
    twin = plain_readings(raws, MAX_BYTES, compiled=False)
    assert (got is None) == (twin is None)
    if got is not None:
        assert got.assets == twin.assets and got.metrics == twin.metrics and got.ts == twin.ts
        assert got.T.dtype == twin.T.dtype and got.T.tolist() == twin.T.tolist()
        assert got.V.dtype == twin.V.dtype and got.V.tolist() == twin.V.tolist()
        assert list(map(type, got.ts)) == list(map(type, twin.ts))  # ints, not numpy scalars
    return got


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_blocks)
def test_a_block_is_taken_exactly_when_every_message_is_a_plain_reading(raws: list[bytes]) -> None:
    got = _both(raws)
    want = [_oracle(r) for r in raws]
    if any(w is None for w in want):
        assert got is None
        return
    assert got is not None
    assert got.assets == [w["asset"] for w in want] and got.metrics == [w["metric"] for w in want]
    assert got.ts == [w["ts"] for w in want] == got.T.tolist() and got.T.dtype == "int64"
    assert got.V.tolist() == [float(w["value"]) for w in want] and got.V.dtype == "float64"
    # and each, alone, is a reading decode_any gives with the same fields, or fails only a range check
    for k, raw in enumerate(raws):
        try:
            r = decode_any(raw, Position("t", 0, k))
        except DecodeError as exc:
            assert exc.reason in ("bad_reading", "bad_timestamp", "bad_asset_id"), exc  # empty metric, ts < 0
            assert got.metrics[k] == "" or got.ts[k] < 0 or " " in got.assets[k], exc
            continue
        assert isinstance(r, Reading)
        assert (r.asset, r.ts_ns, r.metric, r.value) == (got.assets[k], got.ts[k], got.metrics[k], got.V[k])


_RANGE_ONLY = {"negative_ts", "future_ts", "big_value", "big_negative", "empty_metric", "bad_id", "unknown_zone",
               "unknown_meter", "outdoor", "space_first", "tab_newline", "at_limit"}


@pytest.mark.parametrize("fault", sorted(_FAULTS) + sorted(_RAW_FAULTS))
def test_each_fault_alone_in_a_plain_block(fault: str) -> None:
    """One message of each kind among plain readings: the block is taken unless it is no plain reading (every
    fault is met alone here; the random blocks above mix them)."""
    good = [orjson.dumps({"asset": "z1", "ts": T0 + k * S, "metric": "power_kw", "value": 2.0}) for k in range(5)]
    bad = _RAW_FAULTS[fault](good[2]) if fault in _RAW_FAULTS else orjson.dumps(
        _FAULTS[fault](orjson.loads(good[2])))
    raws = [*good[:2], bad, *good[3:]]
    got = _both(raws)
    assert (got is not None) == (fault in _RANGE_ONLY) == (_oracle(bad) is not None)
    dead, groups = _three_ways(raws)
    assert sum(r[2] for g in groups.values() for r in g[0]) + len(dead) + (fault == "outdoor") == 5


def test_no_messages_and_the_boundaries_of_size_and_first_byte() -> None:
    plain = orjson.dumps({"asset": "z1", "ts": 5, "metric": "m", "value": 1})
    assert _both([]) is None
    assert _both([plain + b" " * (MAX_BYTES - len(plain))]) is not None
    assert _both([plain + b" " * (MAX_BYTES - len(plain) + 1)]) is None
    for first in b"{ \n\t":
        assert _both([bytes([first]) + plain[1:] if first == ord("{") else bytes([first]) + plain]) is not None
    assert _both([b"\r" + plain]) is None
    assert _both([plain, b"\r" + plain]) is None  # one message spoils the block
    # the int64 bounds of the time, and a value of either number type
    edge = [orjson.dumps({"asset": "z1", "ts": t, "metric": "m", "value": v})
            for t, v in ((2**63 - 1, 2**64 - 1), (-2**63, -0.0), (0, 1e308))]
    got = _both(edge)
    assert got.ts == [2**63 - 1, -2**63, 0] and got.V.tolist() == [2.0**64, -0.0, 1e308]
    assert _both([orjson.dumps({"asset": "z1", "ts": 2**63, "metric": "m", "value": 1})]) is None


# ---- the building flow: a block decodes as its messages one by one ------------------------------------------

def _site() -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "b1", "flow": "energy-optimization"},
        "building": {"interval_s": 10, "day_s": 240, "zones": [{"id": "z1", "floor": "f1"},
                                                               {"id": "z2", "floor": "f1"}]},
        "inputs": {"max_message_bytes": MAX_BYTES, "max_abs_value": MAX_ABS},
        "window": {"allowed_lateness_s": 0}, "kpi": {"periods_s": [20]}})


@cache
def _rt() -> BuildingRuntime:
    return BuildingRuntime(_site())


def _decode(batch: list) -> tuple:
    out = BuildingIngest(_rt(), message_type=KafkaSourceMessage, now_ns=lambda: NOW).decode(batch)
    dead = sorted((o.record["reason"], o.record["source"]["offset"]) for o in out if isinstance(o, Output))
    groups = {z: (g.rows, g.spans, g.outdoor, g.values) for z, g in
              (o for o in out if not isinstance(o, Output))}
    return dead, groups


def _three_ways(raws: list[bytes]) -> tuple:
    offsets = list(range(3, 3 + len(raws)))
    block = _decode([MessageBlock("b1.readings", 0, list(raws), offsets)])
    kafka = _decode([KafkaSourceMessage(None, r, topic="b1.readings", partition=0, offset=o)
                     for o, r in zip(offsets, raws)])
    plain = _decode([SourceMessage("b1.readings", 0, o, r) for o, r in zip(offsets, raws)])
    assert block == kafka == plain
    return block


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_blocks)
def test_a_building_block_decodes_as_its_messages_one_by_one(raws: list[bytes]) -> None:
    _three_ways(raws)


@pytest.mark.parametrize(("fault", "reason"), [
    ("cr_first", "unknown_format"), ("too_large", "too_large"), ("array", "bad_reading"),
    ("bom", "unknown_format")])
def test_the_building_flow_refuses_what_decode_any_refuses_in_every_path(fault: str, reason: str) -> None:
    good = [orjson.dumps({"asset": "z1", "ts": T0 + k * S, "metric": "power_kw", "value": 2.0}) for k in range(4)]
    raws = [*good[:2], _RAW_FAULTS[fault](good[2]), good[3]]
    dead, groups = _three_ways(raws)
    assert dead == [(reason, 5)]
    assert sum(r[2] for r in groups["z1"][0]) == 3  # the other three readings counted


@pytest.mark.parametrize("value", [MAX_ABS * 1.0001, -MAX_ABS * 1.0001, 1e300])
def test_the_building_flow_refuses_a_value_beyond_max_abs_value(value: float) -> None:
    raws = [orjson.dumps({"asset": "z1", "ts": T0, "metric": "power_kw", "value": v})
            for v in (1.0, value, MAX_ABS, -MAX_ABS)]
    dead, groups = _three_ways(raws)
    assert dead == [("out_of_range", 4)]
    assert sum(r[2] for r in groups["z1"][0]) == 3  # the limit itself is in range
    outdoor = [orjson.dumps({"asset": "weather", "ts": T0, "metric": "temperature", "value": value})]
    assert _three_ways(outdoor)[0] == [("out_of_range", 3)]  # the outdoor sensor too


def test_a_too_large_dead_letter_keeps_a_prefix_and_the_length() -> None:
    raw = orjson.dumps({"asset": "z1", "ts": T0, "metric": "power_kw", "value": 1.0}) + b" " * 5000
    out = BuildingIngest(BuildingRuntime(_site()), now_ns=lambda: NOW).decode(
        [MessageBlock("b1.readings", 0, [raw], [9])])
    (d,) = [o.record for o in out if isinstance(o, Output)]
    assert d["reason"] == "too_large" and "over inputs.max_message_bytes (1,024)" in d["message"]
    assert d["source"]["offset"] == 9 and len(orjson.dumps(d)) < len(raw)


def test_consumer_errors_among_the_building_flows_messages() -> None:
    """Bytewax's KafkaError items (alone, or in a block's errors): one that carries a message is a
    source_error dead letter, a transport error (no message) is retried by librdkafka and counted; the
    readings around them are taken in every path."""
    from bytewax.connectors.kafka import KafkaError

    good = [orjson.dumps({"asset": "z1", "ts": T0 + k * S, "metric": "power_kw", "value": 2.0}) for k in range(3)]
    bad = KafkaError("broken", KafkaSourceMessage(None, b"v", topic="b1.readings", partition=0, offset=9))
    down = KafkaError("all brokers down", KafkaSourceMessage(None, None, topic=None, partition=None, offset=None))
    ing = BuildingIngest(BuildingRuntime(_site()), message_type=KafkaSourceMessage, now_ns=lambda: NOW)
    for batch in ([MessageBlock("b1.readings", 0, good, [0, 1, 2], errors=[bad, down])],
                  [*(KafkaSourceMessage(None, r, topic="b1.readings", partition=0, offset=k)
                     for k, r in enumerate(good)), bad, down]):
        out = ing.decode(batch)
        assert [(o.record["reason"], o.record["source"]["offset"]) for o in out if isinstance(o, Output)] \
            == [("source_error", 9)]
        (zb,) = [g for o in out if not isinstance(o, Output) for z, g in [o] if z == "z1"]
        assert sum(r[2] for r in zb.rows) == 3
    assert ing.source_errors == 2
