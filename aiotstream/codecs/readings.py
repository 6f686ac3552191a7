"""JSON readings, and :func:`decode_any`: a frame, a reading or a feedback message by its first bytes.

JSON reading: ``{"asset": str, "ts": int (ns since epoch), "metric": str, "value": number}``.
A JSON object with a ``schema`` key is feedback (:mod:`aiotstream.codecs.feedback`), one
without is a reading, so both may share a topic.

>>> decode_reading(encode_reading("pump-1", 5, "temperature", 41.5), Position("t", 0, 1)).value
41.5
"""
from __future__ import annotations

import math

import orjson

from aiotstream.codecs.feedback import _feedback, _load_json
from aiotstream.codecs.frames import MAGIC, MAX_TS_NS, decode_frame
from aiotstream.errors import DecodeError
from aiotstream.ids import check_id
from aiotstream.records import Feedback, Frame, Position, Reading


def encode_reading(asset_id: str, ts_ns: int, metric: str, value: float) -> bytes:
    """Encode one scalar reading as JSON."""
    return orjson.dumps({"asset": asset_id, "ts": int(ts_ns), "metric": metric, "value": value})


def decode_reading(raw: bytes, pos: Position) -> Reading:
    """Decode and validate one JSON reading; raise DecodeError(reason) if it is not one."""
    return _reading(_load_json(raw), raw, pos)


def _reading(obj: object, raw: bytes, pos: Position) -> Reading:
    if not isinstance(obj, dict):
        raise DecodeError("bad_reading", f"a reading must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("asset", "ts", "metric", "value") if k not in obj]
    if missing:
        raise DecodeError("bad_reading", f"reading lacks field(s) {', '.join(missing)}")
    asset, ts, metric, value = obj["asset"], obj["ts"], obj["metric"], obj["value"]
    if not isinstance(asset, str) or not asset:
        raise DecodeError("bad_reading", "field 'asset' must be a non-empty string")
    check_id(asset)
    if not isinstance(metric, str) or not metric:
        raise DecodeError("bad_reading", "field 'metric' must be a non-empty string")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= MAX_TS_NS:
        raise DecodeError("bad_timestamp",
                          f"field 'ts' must be integer ns since the epoch (0..2^63-1), got {ts!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeError("bad_reading", f"field 'value' must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise DecodeError("non_finite", f"value {value!r} is not finite")
    return Reading(asset, ts, metric, value, pos, raw=raw)


def decode_any(raw: bytes | None, pos: Position) -> Frame | Reading | Feedback:
    """Decode a frame, a reading or a feedback message, told apart by their first bytes / a ``schema`` key."""
    if not raw:
        raise DecodeError("empty", "message has no value")
    if raw[:4] == MAGIC:
        return decode_frame(raw, pos)
    if raw[:1] in (b"{", b" ", b"\n", b"\t", b"["):
        obj = _load_json(raw)
        if isinstance(obj, dict) and "schema" in obj:
            return _feedback(obj, raw, pos)
        return _reading(obj, raw, pos)
    raise DecodeError("unknown_format", f"message starts with {raw[:8]!r}: neither a frame v1 nor JSON")
