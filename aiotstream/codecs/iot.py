"""Device payload formats (MQTT, oneM2M, Sparkplug-style gateways, OPC UA) -> the same records.

Every decoder returns a list of :class:`~aiotstream.records.Frame` /
:class:`~aiotstream.records.Reading` (a gateway message with N metrics gives N
readings in one call) or raises :class:`~aiotstream.errors.DecodeError` with a
reason code, never anything else. ``asset`` / ``metric`` are what the
source's mapping (topic levels, OPC UA node table) says; ``arrival_ns`` is when
the source received the message.

Formats (``format`` in a subscription, :data:`FORMATS`):

``auto``
    binary frame v1 or JSON reading, told apart by the first bytes (as on Kafka).
``frame``
    binary frame v1 only.
``json``
    one reading object ``{"asset", "ts" | "ts_ms", "metric", "value"}``; ``asset`` and
    ``metric`` may be left out when the mapping names them.
``value``
    the payload is a number as text (``b"21.5"``); the event time is the arrival time.
``gateway-json``
    a plain JSON gateway batch: ``{"asset"?, "ts"?, "values": {metric: number, ...}}``,
    ``{"asset"?, "ts"?, "readings": [reading, ...]}`` or a top-level array of readings;
    fields a reading leaves out come from the envelope, then from the mapping.
``sparkplug-json``
    Sparkplug-B-style JSON: ``{"timestamp": ms, "seq": n, "metrics": [{"name",
    "timestamp"?, "value", "datatype"?}, ...]}``; booleans become 0/1; metrics of
    non-numeric datatypes (String, Text, UUID, DataSet, Bytes, File, Template) and
    null values are not telemetry and are skipped.
``onem2m``
    a oneM2M content instance ``{"m2m:cin": {"con", "ct", ...}}``, bare or inside a
    notification (``{"m2m:sgn": {"nev": {"rep": {"m2m:cin": ...}}, "sur": path}}``) or
    a request primitive (``{"op", "to", "pc": {...}}``). ``con`` may be a number, a
    number or JSON as a string, ``{"value", "ts"?, "metric"?}`` or ``{metric: number,
    ...}``. The event time is ``con.ts`` (ns) if given, else ``ct`` (creation time,
    ``YYYYMMDDTHHMMSS[,ffffff]``, UTC). Without a mapped asset/metric they come from
    the resource path (``.../<asset>/<container>[/<subscription>]``).
``opcua``
    the OPC UA source's own JSON encoding of one data change (see :func:`encode_opcua`).

>>> from aiotstream.records import Position
>>> pos = Position("mqtt:spBv1.0/g/DDATA/n/pump-1", -1, 0)
>>> raw = (b'{"timestamp": 1700000000000, "metrics": [{"name": "t", "value": 20.5}, '
...        b'{"name": "on", "value": true}]}')
>>> [(r.asset, r.metric, r.value) for r in decode_payload(raw, pos, DecodeHints("sparkplug-json"), "pump-1")]
[('pump-1', 't', 20.5), ('pump-1', 'on', 1.0)]
"""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from aiotstream.codecs.frames import MAX_ASSET_ID, MAX_TS_NS, decode_frame
from aiotstream.codecs.readings import decode_any
from aiotstream.errors import DecodeError
from aiotstream.ids import check_id
from aiotstream.records import DecodeHints, Frame, Position, Reading
from aiotstream.units import S

FORMATS = ("auto", "frame", "json", "value", "gateway-json", "sparkplug-json", "onem2m", "opcua")
OPCUA_BAD = 0x8000_0000
_NUMBER_TEXT = re.compile(rb"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
# Sparkplug B datatypes that carry numbers (ids 1..11 are ints/floats/bool, 13 DateTime)
_SPARKPLUG_NON_NUMERIC = {"string", "text", "uuid", "dataset", "bytes", "file", "template", "propertyset",
                          "propertysetlist", 12, 14, 15, 16, 17, 18, 19, 20, 21}

Item = Frame | Reading


def _loads(raw: bytes) -> Any:
    if not raw:
        raise DecodeError("empty", "message has no value")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            raise DecodeError("non_finite", f"a number overflows a double: {exc}") from None
        raise DecodeError("bad_json", f"not valid JSON: {exc}") from None


def _check_ts(ts: int, where: str) -> int:
    if not 0 <= ts <= MAX_TS_NS:
        raise DecodeError("bad_timestamp", f"{where} {ts!r} is out of range (ns since the Unix epoch)")
    return ts


def _ts_of(obj: dict[str, Any], where: str) -> int | None:
    """``ts`` (integer ns) or ``ts_ms`` (integer/float ms) of a JSON object, or None if it has neither."""
    if "ts" in obj:
        ts = obj["ts"]
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise DecodeError("bad_timestamp", f"{where}'ts' must be integer ns since the epoch, got {ts!r}")
        return _check_ts(ts, f"{where}'ts'")
    if "ts_ms" in obj:
        return _ms_to_ns(obj["ts_ms"], f"{where}'ts_ms'")
    return None


def _ms_to_ns(ms: Any, where: str) -> int:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
        raise DecodeError("bad_timestamp", f"{where} must be a number of ms since the epoch, got {ms!r}")
    if not 0 <= ms <= MAX_TS_NS / 1e6:
        raise DecodeError("bad_timestamp", f"{where} {ms!r} ms is out of range")
    return round(ms * 1_000_000)


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DecodeError("bad_reading", f"{where} must be a number, got {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise DecodeError("non_finite", f"{where} {v!r} is not finite")
    return x


def _name(v: Any, what: str) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= MAX_ASSET_ID:
        raise DecodeError("bad_reading",
                          f"{what} must be a non-empty string of at most {MAX_ASSET_ID} "
                          f"characters, got {v!r}")
    return v


def _pick(payload: Any, mapped: str | None, what: str) -> str:
    """The asset/metric: the payload's and the mapping's must agree; either alone will do."""
    if payload is None:
        if mapped is None:
            raise DecodeError("bad_reading",
                              f"no {what}: the payload names none and the source's mapping neither")
        return mapped
    name = _name(payload, f"field {what!r}")
    if mapped is not None and name != mapped:
        raise DecodeError(f"{what}_mismatch",
                          f"payload says {what} {name!r}, the topic/node mapping says {mapped!r}")
    return name


def _rename(metric: str, hints: DecodeHints) -> str:
    for src, dst in hints.metric_names:
        if src == metric:
            return dst
    return metric


def _time(ts: int | None, hints: DecodeHints, arrival_ns: int | None, where: str) -> int:
    if ts is not None:
        return ts
    if hints.missing_ts == "arrival" and arrival_ns is not None:
        return arrival_ns
    raise DecodeError("bad_timestamp", f"{where} has no event time ('ts' ns or 'ts_ms'); set missing_ts = "
                                       "\"arrival\" on the subscription to stamp arrival time instead")


def _check_item_asset(item: Item, asset: str | None) -> list[Item]:
    if asset is not None and item.asset != asset:
        raise DecodeError("asset_mismatch",
                          f"payload says asset {item.asset!r}, the topic/node mapping says {asset!r}")
    return [item]


# ---- formats -------------------------------------------------------------------------------------
def decode_json_reading(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                        metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """One JSON reading object; asset/metric may come from the mapping.

    >>> hints = DecodeHints("json", "arrival")
    >>> r, = decode_json_reading(b'{"value": 3}', Position("t", -1, 0), hints, "m1", "power", 99)
    >>> (r.asset, r.metric, r.ts_ns, r.value)
    ('m1', 'power', 99, 3.0)
    """
    obj = _loads(raw)
    if not isinstance(obj, dict):
        raise DecodeError("bad_reading", f"a reading must be a JSON object, got {type(obj).__name__}")
    return [_reading(obj, pos, raw, hints, asset, metric, None, arrival_ns, "reading ")]


def _reading(obj: dict[str, Any], pos: Position, raw: bytes, hints: DecodeHints, asset: str | None,
             metric: str | None, ts_default: int | None, arrival_ns: int | None, where: str) -> Reading:
    if "value" not in obj:
        raise DecodeError("bad_reading", f"{where}lacks field 'value'")
    a = _pick(obj.get("asset"), asset, "asset")
    m = _rename(_pick(obj.get("metric"), metric, "metric"), hints)
    ts = _ts_of(obj, where)
    t = _time(ts if ts is not None else ts_default, hints, arrival_ns, where.strip() or "reading")
    return Reading(a, t, m, _number(obj["value"], f"{where}'value'"), pos, raw=raw)


def decode_value(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                 metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """A bare number as text; event time = arrival time.

    >>> decode_value(b" 21.5", Position("t", -1, 0), DecodeHints("value"), "m1", "t", 7)[0].value
    21.5
    """
    if not raw:
        raise DecodeError("empty", "message has no value")
    if not _NUMBER_TEXT.match(raw):
        raise DecodeError("bad_reading", f"payload {raw[:32]!r} is not a number as text")
    if asset is None or metric is None:
        raise DecodeError("bad_reading", "a bare value needs the asset and metric from the topic mapping")
    if arrival_ns is None:
        raise DecodeError("bad_timestamp", "a bare value needs the arrival time from its source")
    return [Reading(asset, arrival_ns, _rename(metric, hints), _number(float(raw), "value"), pos, raw=raw)]


def decode_gateway_json(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                        metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """A plain JSON gateway batch (``values`` map, ``readings`` list or a top-level list).

    >>> raw = b'{"asset": "m1", "ts": 5, "values": {"power": 2.5, "temp": 20}}'
    >>> pos, hints = Position("t", -1, 0), DecodeHints("gateway-json")
    >>> [(r.metric, r.value) for r in decode_gateway_json(raw, pos, hints)]
    [('power', 2.5), ('temp', 20.0)]
    """
    obj = _loads(raw)
    env: dict[str, Any] = {}
    if isinstance(obj, list):
        rows = obj
    elif isinstance(obj, dict):
        env = obj
        if "values" in obj:
            vals = obj["values"]
            if not isinstance(vals, dict) or not vals:
                raise DecodeError("bad_reading", "'values' must be a non-empty object of metric: number")
            rows = [{"metric": k, "value": v} for k, v in vals.items()]
        elif "readings" in obj:
            rows = obj["readings"]
            if not isinstance(rows, list):
                raise DecodeError("bad_reading", "'readings' must be a list of reading objects")
        else:
            raise DecodeError("bad_reading",
                              "a gateway batch needs 'values' or 'readings' (or is a JSON array)")
    else:
        raise DecodeError("bad_reading",
                          f"a gateway batch must be a JSON object or array, got {type(obj).__name__}")
    if not rows:
        raise DecodeError("bad_reading", "the gateway batch holds no readings")
    env_asset = _pick(env.get("asset"), asset, "asset") if ("asset" in env or asset is not None) else None
    env_ts = _ts_of(env, "envelope ")
    out: list[Item] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DecodeError("bad_reading", f"readings[{i}] must be an object, got {type(row).__name__}")
        out.append(_reading(row, pos, raw, hints, env_asset, metric, env_ts, arrival_ns, f"readings[{i}] "))
    return out


def decode_sparkplug_json(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                          metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """Sparkplug-B-style JSON payload; the asset comes from the mapping (the topic's device id)."""
    obj = _loads(raw)
    if not isinstance(obj, dict):
        raise DecodeError("bad_reading",
                          f"a Sparkplug payload must be a JSON object, got {type(obj).__name__}")
    metrics = obj.get("metrics")
    if not isinstance(metrics, list):
        raise DecodeError("bad_reading", "a Sparkplug payload needs a 'metrics' list")
    a = _pick(obj.get("asset"), asset, "asset")
    top = _ms_to_ns(obj["timestamp"], "'timestamp'") if obj.get("timestamp") is not None else None
    out: list[Item] = []
    for i, m in enumerate(metrics):
        where = f"metrics[{i}]"
        if not isinstance(m, dict):
            raise DecodeError("bad_reading", f"{where} must be an object, got {type(m).__name__}")
        name = m.get("name", metric)
        if name is None:
            raise DecodeError("bad_reading",
                              f"{where} has no 'name' (Sparkplug aliases need a birth certificate)")
        name = _name(name, f"{where}.name")
        dt = m.get("datatype", m.get("type"))
        dt_key = dt.lower() if isinstance(dt, str) else dt
        if isinstance(dt_key, (str, int)) and dt_key in _SPARKPLUG_NON_NUMERIC:
            continue  # not telemetry: strings, blobs, datasets
        value = m.get("value")
        if value is None or m.get("is_null") is True:
            continue  # a null value carries no measurement
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        ts = _ms_to_ns(m["timestamp"], f"{where}.timestamp") if m.get("timestamp") is not None else top
        t = _time(ts, hints, arrival_ns, where)
        out.append(Reading(a, t, _rename(name, hints), _number(value, f"{where}.value"), pos, raw=raw))
    if not out and metrics == []:
        raise DecodeError("bad_reading", "the Sparkplug payload holds no metrics")
    return out


_CT_FORMATS = ("%Y%m%dT%H%M%S", "%Y-%m-%dT%H:%M:%S")


def parse_onem2m_time(s: Any) -> int:
    """oneM2M time (``YYYYMMDDTHHMMSS[,ffffff]``, UTC, or extended ISO-8601) -> ns since the epoch.

    >>> parse_onem2m_time("20260101T000000,5")
    1767225600500000000
    """
    if not isinstance(s, str) or len(s) > 40:
        raise DecodeError("bad_timestamp", f"oneM2M time must be a string like 20260101T120000, got {s!r}")
    text = s.strip().removesuffix("Z").replace(",", ".")
    frac = 0
    if "." in text:
        text, f = text.split(".", 1)
        if not f.isdigit() or len(f) > 9:
            raise DecodeError("bad_timestamp", f"oneM2M time {s!r} has a bad fraction")
        frac = int(f.ljust(9, "0"))
    for fmt in _CT_FORMATS:
        try:
            dt = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        secs = int(dt.timestamp())
        if secs < 0:
            break
        return _check_ts(secs * S + frac, "oneM2M time")
    raise DecodeError("bad_timestamp", f"oneM2M time {s!r} is not YYYYMMDDTHHMMSS[,ffffff] (UTC)")


def _unwrap_onem2m(obj: Any) -> tuple[dict[str, Any], str | None]:
    """The content instance and the resource path it came from (None if not given)."""
    path: str | None = None
    if isinstance(obj, dict) and "pc" in obj and isinstance(obj.get("pc"), dict):  # request primitive
        to = obj.get("to")
        path = to if isinstance(to, str) else None
        obj = obj["pc"]
    if isinstance(obj, dict) and "m2m:sgn" in obj:
        sgn = obj["m2m:sgn"]
        if not isinstance(sgn, dict):
            raise DecodeError("bad_reading", "'m2m:sgn' must be an object")
        sur = sgn.get("sur")
        if isinstance(sur, str):
            path = sur.rsplit("/", 1)[0] if "/" in sur.strip("/") else sur  # drop the subscription's own name
        nev = sgn.get("nev")
        rep = nev.get("rep") if isinstance(nev, dict) else None
        if not isinstance(rep, dict):
            raise DecodeError("bad_reading", "oneM2M notification has no 'nev.rep' (a verification request?)")
        obj = rep
    if not isinstance(obj, dict) or "m2m:cin" not in obj:
        raise DecodeError("bad_reading", "no oneM2M content instance ('m2m:cin') in the payload")
    cin = obj["m2m:cin"]
    if not isinstance(cin, dict):
        raise DecodeError("bad_reading", "'m2m:cin' must be an object")
    return cin, path


def decode_onem2m(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                  metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """oneM2M content instance (bare, notification or request primitive) -> readings.

    >>> raw = b'{"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": "21.5", "ct": "20260101T000000"}}},'\\
    ...       b' "sur": "/cse-in/meter-7/power/sub1"}}'
    >>> r, = decode_onem2m(raw, Position("t", -1, 0), DecodeHints("onem2m"))
    >>> (r.asset, r.metric, r.value, r.ts_ns)
    ('meter-7', 'power', 21.5, 1767225600000000000)
    """
    cin, path = _unwrap_onem2m(_loads(raw))
    if "con" not in cin:
        raise DecodeError("bad_reading", "the content instance has no 'con'")
    segs = [s for s in (path or "").split("/") if s]
    if asset is None and len(segs) >= 2:
        asset = segs[-2]
    if metric is None and segs:
        metric = segs[-1]
    if asset is None:
        raise DecodeError("bad_reading", "no asset: map one from the topic or send a notification with 'sur'")
    ct = parse_onem2m_time(cin["ct"]) if "ct" in cin else None
    con = cin["con"]
    if isinstance(con, str):
        text = con.encode()
        if _NUMBER_TEXT.match(text):
            con = float(text)
        else:
            try:
                con = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise DecodeError("bad_reading", f"'con' {con[:32]!r} is neither a number nor JSON") from None
    if isinstance(con, dict):
        if "value" in con:
            return [_reading(con, pos, raw, hints, asset if "asset" not in con else None, metric, ct,
                             arrival_ns,
                             "con ")]
        ts = _ts_of(con, "con ")
        t = _time(ts if ts is not None else ct, hints, arrival_ns, "content instance")
        out: list[Item] = []
        for k, v in con.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or k in ("ts", "ts_ms"):
                continue  # units, labels, nested objects: not measurements
            out.append(Reading(_name(asset, "asset"), t, _rename(_name(k, "metric name"), hints),
                               _number(v, f"con.{k}"), pos, raw=raw))
        if not out:
            raise DecodeError("bad_reading", "'con' object holds no numeric value")
        return out
    if metric is None:
        raise DecodeError("bad_reading",
                          "no metric: map one from the topic or send a notification with 'sur'")
    t = _time(ct, hints, arrival_ns, "content instance")
    return [Reading(_name(asset, "asset"), t, _rename(_name(metric, "metric"), hints), _number(con, "'con'"),
                    pos,
                    raw=raw)]


def encode_opcua(node_id: str, value: Any, status: int, source_ts_ns: int | None, server_ts_ns: int | None,
                 status_name: str = "", timestamp: str = "server", bad_quality: str = "deadletter") -> bytes:
    """The OPC UA source's JSON for one data change (kept whole in dead letters).

    >>> encode_opcua("ns=2;i=5", 1.5, 0, None, 10)
    b'{"node":"ns=2;i=5","value":1.5,"status":0,"status_name":"","source_ts":null,"server_ts":10,"timestamp":"server","bad_quality":"deadletter"}'
    """
    if isinstance(value, bool):
        value = int(value)
    elif not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        value = None if value is None or isinstance(value, float) else str(value)[:256]
    return orjson.dumps({"node": node_id, "value": value, "status": status, "status_name": status_name,
                         "source_ts": source_ts_ns, "server_ts": server_ts_ns, "timestamp": timestamp,
                         "bad_quality": bad_quality})


def decode_opcua(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                 metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """One OPC UA data change -> a reading; Bad status -> ``bad_quality`` dead letter or a flagged reading.

    >>> raw = encode_opcua("ns=2;i=5", 7, 0x80320000, None, 10, "BadNoCommunication", bad_quality="flag")
    >>> r, = decode_opcua(raw, Position("t", -1, 0), DecodeHints("opcua"), "p1", "temp")
    >>> (r.bad, math.isnan(r.value))
    (True, False)
    """
    obj = _loads(raw)
    if not isinstance(obj, dict) or "node" not in obj or "status" not in obj:
        raise DecodeError("bad_reading", "not an OPC UA data change (needs 'node', 'value', 'status')")
    status = obj["status"]
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 0xFFFF_FFFF:
        raise DecodeError("bad_reading", f"OPC UA status must be a 32-bit code, got {status!r}")
    if asset is None or metric is None:
        raise DecodeError("bad_reading", f"OPC UA node {obj['node']!r} has no asset/metric mapping")
    bad = bool(status & OPCUA_BAD)
    if bad and obj.get("bad_quality", "deadletter") != "flag":
        raise DecodeError("bad_quality",
                          f"node {obj['node']!r} reported status {obj.get('status_name') or hex(status)} "
                          f"(0x{status:08X}); set bad_quality = \"flag\" to keep such values flagged")
    first, second = ("server_ts", "source_ts") if obj.get("timestamp", "server") == "server" else \
        ("source_ts", "server_ts")
    ts = obj.get(first) if obj.get(first) is not None else obj.get(second)
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        raise DecodeError("bad_timestamp", f"OPC UA timestamp {ts!r} is not integer ns")
    t = _time(_check_ts(ts, "OPC UA timestamp") if ts is not None else None,
              DecodeHints("opcua", "arrival"), arrival_ns, "OPC UA data change")
    value = obj.get("value")
    if bad and (value is None or isinstance(value, str)):
        x = math.nan  # a Bad value carries no measurement; the flag says so
    else:
        if isinstance(value, bool):
            value = int(value)
        x = _number(value, f"OPC UA value of {obj['node']!r}")
    return [Reading(asset, t, _rename(metric, hints), x, pos, raw=raw, status=status)]


def _decode_auto(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                 metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    return _check_item_asset(decode_any(raw, pos), asset)


def _decode_frame(raw: bytes, pos: Position, hints: DecodeHints, asset: str | None = None,
                  metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    if not raw:
        raise DecodeError("empty", "message has no value")
    return _check_item_asset(decode_frame(raw, pos), asset)


DECODERS = {
    "auto": _decode_auto,
    "frame": _decode_frame,
    "json": decode_json_reading,
    "value": decode_value,
    "gateway-json": decode_gateway_json,
    "sparkplug-json": decode_sparkplug_json,
    "onem2m": decode_onem2m,
    "opcua": decode_opcua,
}
assert set(DECODERS) == set(FORMATS)


def decode_payload(raw: bytes | None, pos: Position, hints: DecodeHints, asset: str | None = None,
                   metric: str | None = None, arrival_ns: int | None = None) -> list[Item]:
    """Decode one payload in the format ``hints.fmt`` into frames/readings (or raise DecodeError)."""
    decoder = DECODERS.get(hints.fmt)
    if decoder is None:
        raise DecodeError("unknown_format",
                          f"payload format {hints.fmt!r} is not one of {', '.join(FORMATS)}")
    if asset is not None:  # a topic level or node mapping: checked before anything is built on it
        check_id(asset, "asset (from the topic/node mapping)")
    items = decoder(raw or b"", pos, hints, asset, metric, arrival_ns)
    for item in items:  # the payload's own asset, or one taken from a oneM2M resource path
        check_id(item.asset)
    return items
