"""Device payload decoders, topic filters/templates, connector config: pure logic."""
from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.codecs.iot import FORMATS, decode_payload, encode_opcua, parse_onem2m_time
from aiotstream.config import SiteConfig
from aiotstream.errors import ConfigError, DecodeError
from aiotstream.records import DecodeHints, Position, Reading
from aiotstream.topics import TopicRouter, TopicRule, check_filter

POS = Position("mqtt:x", -1, 0)
T = 1_767_225_600_000_000_000


def dec(fmt: str, raw: bytes, asset: str | None = None, metric: str | None = None, missing: str = "reject",
        names: tuple = ()) -> list[Reading]:
    return decode_payload(raw, POS, DecodeHints(fmt, missing, names), asset, metric, arrival_ns=T)  # type: ignore


def reason(fmt: str, raw: bytes, **kw) -> str:
    with pytest.raises(DecodeError) as e:
        dec(fmt, raw, **kw)
    return e.value.reason


# ---- JSON / value -------------------------------------------------------------------------------
def test_json_reading_takes_asset_and_metric_from_the_topic_and_checks_mismatches() -> None:
    r, = dec("json", b'{"ts": 5, "value": 1.5}', "m1", "kw")
    assert (r.asset, r.metric, r.ts_ns, r.value) == ("m1", "kw", 5, 1.5)
    r, = dec("json", b'{"asset": "m1", "metric": "kw", "ts_ms": 2, "value": 3}')
    assert r.ts_ns == 2_000_000
    assert reason("json", b'{"asset": "m2", "ts": 5, "value": 1}', asset="m1") == "asset_mismatch"
    assert reason("json", b'{"ts": 5, "value": 1}') == "bad_reading"  # no asset anywhere
    assert reason("json", b'{"value": 1}', asset="m1", metric="kw") == "bad_timestamp"
    assert dec("json", b'{"value": 1}', "m1", "kw", missing="arrival")[0].ts_ns == T
    assert reason("json", b'{"ts": 5, "value": "1"}', asset="m", metric="k") == "bad_reading"
    assert reason("json", b'{"ts": 5, "value": 1e999}', asset="m", metric="k") == "non_finite"


def test_bare_value_uses_arrival_time_and_rejects_non_numbers() -> None:
    r, = dec("value", b"-2.5e1\n", "m1", "t")
    assert (r.value, r.ts_ns) == (-25.0, T)
    for bad in (b"nan", b"inf", b"1,5", b"", b"0x10", b"true"):
        with pytest.raises(DecodeError):
            dec("value", bad, "m1", "t")


def test_frame_payload_must_match_the_topic_asset() -> None:
    import numpy as np

    from aiotstream.codecs import encode_frame

    raw = encode_frame("pump-1", 0, T, 10_000.0, np.zeros((3, 8), np.float32))
    assert dec("frame", raw, "pump-1")[0].asset == "pump-1"
    assert reason("frame", raw, asset="pump-2") == "asset_mismatch"
    assert reason("frame", b'{"asset": "x"}') == "truncated_header"  # a JSON body is not a frame
    assert reason("frame", b"") == "empty"


# ---- gateways ------------------------------------------------------------------------------------
def test_gateway_batch_forms_all_give_the_same_readings() -> None:
    forms = [
        b'{"asset": "m1", "ts": 7, "values": {"kw": 1.0, "temp": 20}}',
        b'{"asset": "m1", "ts": 7, "readings": [{"metric": "kw", "value": 1.0}, {"metric": "temp", "value": 20}]}',
        b'[{"asset": "m1", "ts": 7, "metric": "kw", "value": 1.0}, {"asset": "m1", "ts": 7, "metric": "temp", "value": 20}]',
    ]
    for raw in forms:
        assert [(r.asset, r.ts_ns, r.metric, r.value) for r in dec("gateway-json", raw)] == \
            [("m1", 7, "kw", 1.0), ("m1", 7, "temp", 20.0)]
    assert reason("gateway-json", b'{"values": {}}', asset="m1") == "bad_reading"
    assert reason("gateway-json", b'{"asset": "m1", "ts": 1, "readings": [{"metric": "a", "value": "x"}]}') == \
        "bad_reading"


def test_sparkplug_metrics_timestamps_booleans_and_skipped_types() -> None:
    raw = orjson.dumps({"timestamp": 1000, "seq": 3, "metrics": [
        {"name": "Temp", "value": 21.5, "datatype": "Float"},
        {"name": "Running", "value": True, "datatype": "Boolean", "timestamp": 2000},
        {"name": "Label", "value": "pump", "datatype": "String"},
        {"name": "Broken", "value": None, "is_null": True, "datatype": "Double"}]})
    rs = dec("sparkplug-json", raw, "dev-1", names=(("Temp", "temperature"),))
    assert [(r.metric, r.value, r.ts_ns) for r in rs] == [("temperature", 21.5, 1_000_000_000),
                                                         ("Running", 1.0, 2_000_000_000)]
    assert reason("sparkplug-json", b'{"metrics": [{"value": 1}]}', asset="d") == "bad_reading"  # no name
    assert reason("sparkplug-json", b'{"metrics": [{"name": "a", "value": 1}]}', asset="d") == "bad_timestamp"
    assert reason("sparkplug-json", b'{"timestamp": 1, "metrics": [{"name": "a", "value": "x", "datatype": 10}]}',
                  asset="d") == "bad_reading"


def test_onem2m_bare_notification_and_request_primitive() -> None:
    cin = {"con": "{\"power\": 1.5, \"voltage\": 230, \"unit\": \"kW\"}", "ct": "20260101T000001,250000"}
    rs = dec("onem2m", orjson.dumps({"m2m:cin": cin}), "meter-1")
    assert sorted((r.metric, r.value) for r in rs) == [("power", 1.5), ("voltage", 230.0)]
    assert rs[0].ts_ns == T + 1_250_000_000
    sgn = {"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": 7, "ct": "20260101T000000"}}, "net": 3},
                       "sur": "/cse-in/meter-9/energy/sub-1"}}
    r, = dec("onem2m", orjson.dumps({"op": 5, "to": "/ae", "fr": "/cse-in", "rqi": "1", "pc": sgn}))
    assert (r.asset, r.metric, r.value, r.ts_ns) == ("meter-9", "energy", 7.0, T)
    assert reason("onem2m", b'{"m2m:cin": {"con": 1}}', asset="m", metric="k") == "bad_timestamp"
    assert reason("onem2m", b'{"m2m:cin": {"con": "abc", "ct": "20260101T000000"}}', asset="m", metric="k") == \
        "bad_reading"
    assert reason("onem2m", b'{"m2m:sgn": {"vrq": true}}') == "bad_reading"
    assert parse_onem2m_time("2026-01-01T00:00:00Z") == T
    with pytest.raises(DecodeError):
        parse_onem2m_time("20261301T000000")


def test_opcua_good_uncertain_bad_and_timestamps() -> None:
    good = encode_opcua("n", 5, 0, 10, 20)
    assert dec("opcua", good, "p", "t")[0].ts_ns == 20  # server timestamp by default
    assert dec("opcua", encode_opcua("n", 5, 0, 10, 20, timestamp="source"), "p", "t")[0].ts_ns == 10
    assert dec("opcua", encode_opcua("n", 5, 0, None, None), "p", "t")[0].ts_ns == T  # neither: arrival
    uncertain, = dec("opcua", encode_opcua("n", 5, 0x40000000, 10, 20), "p", "t")
    assert uncertain.status and not uncertain.bad
    assert reason("opcua", encode_opcua("n", 5, 0x80000000, 10, 20), asset="p", metric="t") == "bad_quality"
    flagged, = dec("opcua", encode_opcua("n", None, 0x80000000, 10, 20, bad_quality="flag"), "p", "t")
    assert flagged.bad and math.isnan(flagged.value)


# ---- fuzz: never anything but DecodeError ----------------------------------------------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(
                               st.sampled_from(["asset", "ts", "ts_ms", "metric", "value", "values", "readings",
                                                "metrics", "name", "timestamp", "datatype", "m2m:cin", "m2m:sgn",
                                                "con", "ct", "nev", "rep", "sur", "pc", "node", "status"]) | st.text(max_size=5),
                               c, max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(FORMATS), body=json_values, asset=st.none() | st.just("a1"), metric=st.none() | st.just("m"))
def test_fuzz_json_shaped_payloads(fmt: str, body: object, asset: str | None, metric: str | None) -> None:
    raw = orjson.dumps(body)
    try:
        items = decode_payload(raw, POS, DecodeHints(fmt, "arrival"), asset, metric, arrival_ns=T)
    except DecodeError as exc:
        assert exc.reason and str(exc)
        return
    for it in items:
        assert isinstance(it.asset, str) and it.asset
        if isinstance(it, Reading):
            assert isinstance(it.ts_ns, int) and it.ts_ns >= 0 and (math.isfinite(it.value) or it.bad)


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(FORMATS), raw=st.binary(max_size=200))
def test_fuzz_random_bytes(fmt: str, raw: bytes) -> None:
    try:
        decode_payload(raw, POS, DecodeHints(fmt, "arrival"), "a1", "m", arrival_ns=T)
    except DecodeError:
        pass


# ---- topics ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("flt", "asset", "topic", "want"), [
    ("plant/+/+/temperature", "{2}", "plant/l1/p7/temperature", ("p7", "temperature")),
    ("plant/+/+/temperature", "{1}-{2}", "plant/l1/p7/temperature", ("l1-p7", "temperature")),
    ("plant/+/+/temperature", "{2}", "plant/l1/p7/x/temperature", None),
    ("plant/#", "{#}", "plant", ("", None)),  # '#' matches the parent level too
    ("$share/g/plant/+/v", "{1}", "plant/p1/v", ("p1", None)),
    ("+/x", "{0}", "$SYS/x", None),  # wildcards at the first level skip $ topics
])
def test_topic_filters(flt: str, asset: str, topic: str, want: tuple | None) -> None:
    rule = TopicRule.build(flt, asset=asset, metric="temperature" if "temp" in flt else None)
    got = rule.match(topic)
    assert (None if got is None else (got[0] or "", got[1])) == want


def test_router_first_match_wins_and_bad_filters_are_refused() -> None:
    r = TopicRouter([TopicRule.build("a/b", "x", tag=1), TopicRule.build("a/+", "{1}", tag=2)])
    assert r.route("a/b") == (1, "x", None) and r.route("a/c") == (2, "c", None) and r.route("b") is None
    for bad in ("a/#/b", "a/b+", "", "a/x#"):
        assert check_filter(bad) is not None
    with pytest.raises(ValueError, match="level"):
        TopicRule.build("a/+", asset="{4}")


# ---- config ----------------------------------------------------------------------------------------
def problems(inputs: dict, outputs: dict | None = None) -> dict[str, str]:
    data = {"site": {"id": "s"}, "assets": [{"id": "a"}], "inputs": inputs, "outputs": outputs or {}}
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict(data)
    return dict(e.value.problems)


def test_connector_config_errors_name_their_paths() -> None:
    p = problems({"kind": "mqtt", "mqtt": {"port": 0, "password": "x", "subscriptions": [
        {"filter": "a/#/b"}, {"filter": "a/+", "asset": "{3}"}, {"filter": "v/+", "format": "value"}]}})
    assert "inputs.mqtt.port" in p
    assert "password_env" in p["inputs.mqtt.password"]
    assert "'#' must be the last level" in p["inputs.mqtt.subscriptions[0].filter"]
    assert "level {3}" in p["inputs.mqtt.subscriptions[1].asset"]
    assert "needs both asset and metric" in p["inputs.mqtt.subscriptions[2]"]
    assert problems({"kind": "files"}) == {"inputs": "kind = 'files' needs an [inputs.files] table"}
    p = problems({"kind": "opcua", "opcua": {"endpoint": "tcp://x", "nodes": [
        {"node_id": "ns=2;i=1", "asset": "a", "metric": "t"}, {"node_id": "ns=2;i=1", "asset": "a", "metric": "u"}]}})
    assert "opc.tcp://" in p["inputs.opcua.endpoint"] and "more than once" in p["inputs.opcua.nodes"]
    p = problems({}, {"mqtt": {"topic": "d/{assetid}/cmd"}, "parquet": {"directory": "", "compression": "lz9"}})
    assert "{assetid}" in p["outputs.mqtt.topic"]
    assert set(p) >= {"outputs.parquet.directory", "outputs.parquet.compression"}
    p = problems({"kind": "mqtt", "mqtt": {"protocol": "3.1.1", "subscriptions": [{"filter": "a"}]}})
    assert "ack = 'epoch' needs protocol '5'" in p["inputs.mqtt"]


def test_kafka_configs_without_kind_still_load() -> None:
    cfg = SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "a"}], "inputs": {"brokers": ["h:1"]}})
    assert cfg.inputs.kind == "kafka" and cfg.inputs.mqtt is None


def test_windows_count_flagged_bad_readings_as_input_but_not_as_values() -> None:
    from aiotstream.windows import WindowAssembler

    w = WindowAssembler(length_ns=1_000, hop_ns=1_000, lateness_ns=0)
    good = Reading("a", 100, "t", 20.0, Position("opcua:x", -1, 1))
    bad = Reading("a", 200, "t", float("nan"), Position("opcua:x", -1, 2), status=0x80000000)
    w.add([good, bad])
    closed, _ = w.add([Reading("a", 1_500, "t", 21.0, Position("opcua:x", -1, 3))])
    assert closed[0].readings == {"t": (20.0,)} and closed[0].inputs == (("opcua:x", -1, 1, 2),)
