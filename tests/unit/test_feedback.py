"""Feedback messages (aiotstream.feedback/1): decoding, reasons for bad ones, routing to assets."""
from __future__ import annotations

import orjson
import pytest

from aiotstream.codecs import decode_any, decode_feedback, encode_reading
from aiotstream.config import default_site
from aiotstream.errors import DecodeError
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import Feedback, Output, Position, Reading, SourceMessage

POS = Position("s.feedback", 1, 42)
T = 1_767_225_600_000_000_000
AID = "0123456789abcdef0123456789abcdef"


def msg(**fields: object) -> bytes:
    return orjson.dumps({"schema": "aiotstream.feedback/1", "ts": T, **fields})


@pytest.mark.parametrize(("fields", "expect"), [
    ({"type": "ack", "asset": "p1", "alert_id": AID, "by": "ana"}, {"alert_id": AID, "by": "ana"}),
    ({"type": "clear", "asset": "p1", "alert_type": "anomaly"}, {"alert_type": "anomaly", "alert_id": None}),
    ({"type": "label", "asset": "p1", "alert_id": AID, "label": "true_fault", "fault_type": "bearing"},
     {"label": "true_fault", "fault_type": "bearing"}),
    ({"type": "approve", "asset": "p1", "command_id": AID, "note": "ok"}, {"command_id": AID, "note": "ok"}),
    ({"type": "reject", "asset": "p1", "command_id": AID}, {"command_id": AID}),
    ({"type": "command_ack", "asset": "p1", "command_id": AID}, {"status": "applied", "value": None}),
    ({"type": "command_ack", "asset": "p1", "command_id": AID, "status": "failed", "value": 3},
     {"status": "failed", "value": 3.0}),
    ({"type": "maintenance", "line": "line-1", "start": T, "end": T + 10}, {"line": "line-1", "asset": None,
                                                                           "window_id": f"fb-{T}"}),
    ({"type": "maintenance", "start": T, "end": T + 10, "window_id": "w1"}, {"line": None, "window_id": "w1"}),
])
def test_valid_feedback(fields: dict, expect: dict) -> None:
    raw = msg(**fields)
    fb = decode_feedback(raw, POS)
    assert (fb.type, fb.ts_ns, fb.pos, fb.raw) == (fields["type"], T, POS, raw)
    for k, v in expect.items():
        assert getattr(fb, k) == v, k
    assert decode_any(raw, POS) == fb  # the decoder tells feedback from readings by the schema key


@pytest.mark.parametrize(("fields", "reason", "words"), [
    ({"type": "ack", "asset": "p1"}, "bad_feedback", "exactly one of 'alert_id', 'alert_type'"),
    ({"type": "ack", "asset": "p1", "alert_id": AID, "alert_type": "anomaly"}, "bad_feedback", "exactly one"),
    ({"type": "ack", "alert_id": AID}, "bad_feedback", "needs 'asset'"),
    ({"type": "label", "asset": "p1", "alert_id": AID, "label": "maybe"}, "bad_feedback", "true_fault, false_alarm"),
    ({"type": "approve", "asset": "p1"}, "bad_feedback", "lacks field(s) command_id"),
    ({"type": "approve", "asset": "p1", "command_id": AID, "alertid": "x"}, "bad_feedback", "unknown field(s) alertid"),
    ({"type": "command_ack", "asset": "p1", "command_id": AID, "status": "done"}, "bad_feedback", "applied, failed"),
    ({"type": "command_ack", "asset": "p1", "command_id": AID, "value": "high"}, "bad_feedback", "finite number"),
    ({"type": "maintenance", "start": T + 10, "end": T}, "bad_feedback", "must be after start"),
    ({"type": "maintenance", "asset": "p1", "line": "l", "start": T, "end": T + 1}, "bad_feedback", "not both"),
    ({"type": "maintenance", "start": -1, "end": T}, "bad_timestamp", "'start'"),
    ({"type": "nudge", "asset": "p1"}, "bad_feedback", "field 'type'"),
    ({"type": "ack", "asset": "", "alert_id": AID}, "bad_feedback", "'asset'"),
    # times are int64 ns: 2**63 and more is not a time (a window "ending" at 2**64 - 1 silenced alerts for good)
    ({"type": "maintenance", "start": T, "end": 2**64 - 1}, "bad_timestamp", "'end' must be integer ns"),
    ({"type": "maintenance", "start": T, "end": 2**63}, "bad_timestamp", "'end'"),
    ({"type": "ack", "asset": "p1", "alert_type": "x", "ts": 2**63}, "bad_timestamp", "'ts'"),
    ({"type": "ack", "asset": "p1", "alert_type": "x", "ts": True}, "bad_timestamp", "'ts'"),
    ({"type": "ack", "asset": "p1", "alert_type": "x", "ts": 1.5e18}, "bad_timestamp", "'ts'"),
    ({"type": "command_ack", "asset": "p1", "command_id": AID, "value": True}, "bad_feedback", "finite number"),
    ({"type": "ack", "asset": ["p1"], "alert_type": "x"}, "bad_feedback", "'asset' must be a string"),
    ({"type": "ack", "asset": "p" * 129, "alert_type": "x"}, "bad_feedback", "'asset' must be a string of 1..128"),
    ({"type": "ack", "asset": "p1", "alert_type": "x", "by": 7}, "bad_feedback", "'by'"),
    ({"type": "label", "asset": "p1", "alert_id": AID, "label": "false_alarm", "fault_type": {}}, "bad_feedback",
     "'fault_type'"),
    ({"asset": "p1"}, "bad_feedback", "field 'type' must be one of"),
    ({"type": ["ack"], "asset": "p1"}, "bad_feedback", "field 'type' must be one of"),
    ({"type": "approve", "asset": "p1", "command_id": AID, "nope": 1, "also": 2, "by": ""}, "bad_feedback",
     "unknown field(s) also, nope; field 'by' must be a string"),
])
def test_bad_feedback_has_a_reason(fields: dict, reason: str, words: str) -> None:
    with pytest.raises(DecodeError) as ei:
        decode_any(msg(**fields), POS)
    assert ei.value.reason == reason and words in str(ei.value)


def test_schema_and_timestamp_errors() -> None:
    with pytest.raises(DecodeError) as ei:
        decode_any(orjson.dumps({"schema": "aiotstream.feedback/2", "type": "ack"}), POS)
    assert ei.value.reason == "unsupported_schema"
    with pytest.raises(DecodeError) as ei:
        decode_any(orjson.dumps({"schema": "aiotstream.feedback/1", "type": "ack", "asset": "p", "alert_type": "x",
                                 "ts": "now"}), POS)
    assert ei.value.reason == "bad_timestamp"
    # a reading is still a reading
    assert isinstance(decode_any(encode_reading("p1", T, "temperature", 40.0), POS), Reading)


# ---- routing in the decode step -------------------------------------------------------------------------------
CFG = default_site(4)  # asset-000 .. 003 on line-{i % 2 + 1}: line-1, line-2, line-1, line-2


def decode(*raws: bytes) -> list:
    ing = Ingestor(SiteRuntime(CFG), now_ns=lambda: T)
    return ing.decode_batch([SourceMessage("s.feedback", 0, i, r) for i, r in enumerate(raws)])


def test_feedback_is_keyed_by_its_asset() -> None:
    ((key, fb),) = decode(msg(type="ack", asset="asset-002", alert_type="anomaly"))
    assert key == "asset-002" and isinstance(fb, Feedback) and fb.asset == "asset-002"


def test_line_and_site_maintenance_reach_every_asset_they_cover() -> None:
    out = decode(msg(type="maintenance", line="line-1", start=T, end=T + 5))
    assert [(k, f.asset, f.line) for k, f in out] == [("asset-000", "asset-000", "line-1"),
                                                      ("asset-002", "asset-002", "line-1")]
    out = decode(msg(type="maintenance", start=T, end=T + 5))
    assert [k for k, _ in out] == ["asset-000", "asset-001", "asset-002", "asset-003"]


def test_misrouted_feedback_is_dead_lettered_with_a_reason() -> None:
    out = decode(msg(type="ack", asset="ghost", alert_type="anomaly"),
                 msg(type="maintenance", line="line-9", start=T, end=T + 5),
                 orjson.dumps({"schema": "aiotstream.feedback/1", "type": "ack", "asset": "asset-000",
                               "alert_type": "anomaly", "ts": T + 10**13}),
                 b'{"schema": "aiotstream.feedback/1", "type": ')
    assert all(isinstance(o, Output) and o.kind == "deadletter" for o in out)
    assert [o.record["reason"] for o in out] == ["unknown_asset", "unknown_line", "future_timestamp", "bad_json"]
    assert "line-1, line-2" in out[1].record["message"]
    assert out[0].record["source"] == {"topic": "s.feedback", "partition": 0, "offset": 0}
