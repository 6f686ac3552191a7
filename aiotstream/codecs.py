"""Bytes <-> records: binary waveform frames v1 and JSON readings (orjson).

Binary waveform frame v1 (all little-endian)::

    offset size  field
    0      4     magic          b"AIOW"
    4      1     version        u8, 1
    5      1     dtype          u8: 1 = float32, 2 = float64, 3 = int16
    6      2     channels       u16, 1..64
    8      4     n_samples      u32, 1..1_048_576 (per channel)
    12     8     sample_rate    f64 Hz, finite, 0 < rate <= 1_000_000
    20     8     t0_ns          i64 event time of the first sample, ns since the Unix epoch
    28     8     seq            u64 frame sequence number per asset
    36     2     asset_id_len   u16, 1..128
    38     L     asset_id       UTF-8
    38+L   ...   samples        channels x n_samples, channel-major (C order of (channels, n))

The decoder checks every field and that the total length is exactly
``38 + L + channels * n_samples * itemsize``; anything else is a
:class:`~aiotstream.errors.DecodeError` with a reason code, which the flow turns
into a dead letter.

JSON reading: ``{"asset": str, "ts": int (ns since epoch), "metric": str, "value": number}``.

JSON feedback (operators and devices): an object with ``"schema":
"aiotstream.feedback/1"``; see :func:`decode_feedback`. A JSON object with a
``schema`` key is feedback, one without is a reading, so both may share a topic.

>>> import numpy as np
>>> raw = encode_frame("pump-1", 3, 1_000, 10_000.0, np.zeros((3, 4), np.float32))
>>> f = decode_frame(raw, Position("t", 0, 9))
>>> (f.asset, f.seq, f.samples.shape)
('pump-1', 3, (3, 4))
>>> decode_reading(encode_reading("pump-1", 5, "temperature", 41.5), Position("t", 0, 1)).value
41.5
"""
from __future__ import annotations

import math
import struct
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from aiotstream.errors import DecodeError
from aiotstream.ids import MAX_ID, check_id
from aiotstream.records import FEEDBACK_TYPES, Feedback, Frame, Position, Reading

MAGIC = b"AIOW"
VERSION = 1
_HEAD = struct.Struct("<4sBBHIdqQH")
HEADER_SIZE = _HEAD.size  # 38
DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i2")}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
MAX_CHANNELS = 64
MAX_SAMPLES = 1 << 20
MAX_SAMPLE_RATE = 1_000_000.0
MAX_ASSET_ID = MAX_ID
MAX_TS_NS = (1 << 63) - 1  # event times are int64 ns, as in the frame header


def encode_frame(asset_id: str, seq: int, t0_ns: int, sample_rate_hz: float, samples: np.ndarray) -> bytes:
    """Encode ``samples`` (channels, n) as a binary waveform frame v1."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"samples must be (channels, n), got shape {arr.shape}")
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    code = DTYPE_CODES.get(np.dtype(dt).newbyteorder("<"))
    if code is None:
        raise ValueError(f"samples dtype {arr.dtype} not supported: use float32, float64 or int16")
    aid = asset_id.encode()
    head = _HEAD.pack(MAGIC, VERSION, code, arr.shape[0], arr.shape[1], float(sample_rate_hz), int(t0_ns),
                      int(seq), len(aid))
    return head + aid + np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes()


def decode_frame(raw: bytes, pos: Position) -> Frame:
    """Decode and validate one binary frame; raise DecodeError(reason) if it does not add up."""
    n = len(raw)
    if n < HEADER_SIZE:
        raise DecodeError("truncated_header",
                          f"frame is {n} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, code, channels, n_samples, rate, t0_ns, seq, alen = _HEAD.unpack_from(raw, 0)
    if magic != MAGIC:
        raise DecodeError("bad_magic", f"frame magic is {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise DecodeError("unsupported_version", f"frame version {version} is not supported (only {VERSION})")
    dtype = DTYPES.get(code)
    if dtype is None:
        raise DecodeError("bad_dtype", f"dtype code {code} is unknown (1=float32, 2=float64, 3=int16)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise DecodeError("bad_shape", f"channels = {channels}, must be 1..{MAX_CHANNELS}")
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise DecodeError("bad_shape", f"n_samples = {n_samples}, must be 1..{MAX_SAMPLES}")
    if not (math.isfinite(rate) and 0 < rate <= MAX_SAMPLE_RATE):
        raise DecodeError("bad_sample_rate",
                          f"sample rate {rate!r} Hz must be finite and in (0, {MAX_SAMPLE_RATE:g}]")
    if t0_ns < 0:
        raise DecodeError("bad_timestamp", f"t0_ns = {t0_ns} is before the Unix epoch")
    if not 1 <= alen <= MAX_ASSET_ID:
        raise DecodeError("bad_asset_id", f"asset id length {alen} must be 1..{MAX_ASSET_ID}")
    expected = HEADER_SIZE + alen + channels * n_samples * dtype.itemsize
    if n != expected:
        raise DecodeError(
            "length_mismatch",
            f"frame is {n} bytes but its header declares {expected} "
            f"({channels} ch x {n_samples} samples x {dtype.itemsize} B + {HEADER_SIZE + alen} B header)",
        )
    try:
        asset = check_id(raw[HEADER_SIZE:HEADER_SIZE + alen].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_asset_id", f"asset id is not UTF-8: {exc}") from None
    samples = np.frombuffer(raw, dtype=dtype, count=channels * n_samples, offset=HEADER_SIZE + alen)
    samples = samples.reshape(channels, n_samples)
    if dtype.kind == "f" and not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise DecodeError("non_finite", f"{bad} of {samples.size} samples are NaN or Inf")
    return Frame(asset, int(seq), int(t0_ns), float(rate), samples, pos, raw=raw)


def encode_reading(asset_id: str, ts_ns: int, metric: str, value: float) -> bytes:
    """Encode one scalar reading as JSON."""
    return orjson.dumps({"asset": asset_id, "ts": int(ts_ns), "metric": metric, "value": value})


def _load_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):  # valid JSON number that overflows a double (e.g. 1e400)
            raise DecodeError("non_finite", f"a number overflows a double: {exc}") from None
        raise DecodeError("bad_json", f"not valid JSON: {exc}") from None


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


FEEDBACK_SCHEMA = "aiotstream.feedback/1"
LABELS = ("true_fault", "false_alarm")
DEVICE_ACK_STATUSES = ("applied", "failed", "rejected")
MAX_NS = MAX_TS_NS

# ---- feedback/1: one pydantic model per type, told apart by "type" (a discriminated union)
# -------------------
_Ns = Annotated[int, Field(ge=0, le=MAX_NS)]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ASSET_ID)]  # assets, lines, types, ids
_Ref = Annotated[str, StringConstraints(min_length=1, max_length=64)]  # alert and command ids


class _Feedback(BaseModel):
    """Fields every feedback message has; unknown fields are refused (a misspelt field is not ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    schema_: Literal["aiotstream.feedback/1"] = Field(alias="schema")
    ts: _Ns
    by: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    note: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    id: _Name | int | None = None


class _AlertAction(_Feedback):
    asset: _Name | None = None
    alert_id: _Ref | None = None
    alert_type: _Name | None = None

    @model_validator(mode="after")
    def _one_alert(self) -> _AlertAction:
        if self.asset is None or (self.alert_id is None) == (self.alert_type is None):
            raise ValueError(f"{self.type} feedback needs 'asset' and exactly one of 'alert_id', "  # type: ignore[attr-defined]
                             "'alert_type'")
        return self


class AckFeedback(_AlertAction):
    type: Literal["ack"]


class ClearFeedback(_AlertAction):
    type: Literal["clear"]


class LabelFeedback(_Feedback):
    type: Literal["label"]
    asset: _Name
    alert_id: _Ref
    label: Literal["true_fault", "false_alarm"]
    fault_type: _Name | None = None


class ApproveFeedback(_Feedback):
    type: Literal["approve"]
    asset: _Name
    command_id: _Ref


class RejectFeedback(_Feedback):
    type: Literal["reject"]
    asset: _Name
    command_id: _Ref


class CommandAckFeedback(_Feedback):
    type: Literal["command_ack"]
    asset: _Name
    command_id: _Ref
    status: Literal["applied", "failed", "rejected"] = "applied"
    value: Annotated[float, Field(allow_inf_nan=False)] | None = None


class MaintenanceFeedback(_Feedback):
    type: Literal["maintenance"]
    start: _Ns
    end: _Ns
    asset: _Name | None = None
    line: _Name | None = None
    window_id: _Name | None = None

    @model_validator(mode="after")
    def _window(self) -> MaintenanceFeedback:
        if self.end <= self.start:
            raise ValueError(f"maintenance end ({self.end}) must be after start ({self.start})")
        if self.asset is not None and self.line is not None:
            raise ValueError("maintenance feedback names an asset or a line (or neither, for the whole "
                             "site), not both")
        return self


FeedbackMessage = Annotated[AckFeedback | ClearFeedback | LabelFeedback | ApproveFeedback | RejectFeedback
                            | CommandAckFeedback | MaintenanceFeedback, Field(discriminator="type")]
_FEEDBACK = TypeAdapter(FeedbackMessage)
_TIME_FIELDS = ("ts", "start", "end")
_CHOICES = {"label": LABELS, "status": DEVICE_ACK_STATUSES, "type": FEEDBACK_TYPES}


def decode_feedback(raw: bytes, pos: Position) -> Feedback:
    """Decode and validate one feedback message (``aiotstream.feedback/1``).

    Fields: ``schema``, ``type`` (one of ack, clear, label, approve, reject,
    command_ack, maintenance), ``ts`` (int ns), optional ``by``, ``note``, ``id``,
    and per type (:data:`FeedbackMessage`, a pydantic union told apart by ``type``):

    * ``ack`` / ``clear``: ``asset`` and ``alert_id``, or ``asset`` and ``alert_type``
      (the alert of that type open at ``ts``);
    * ``label``: ``asset``, ``alert_id``, ``label`` (true_fault | false_alarm), optional ``fault_type``;
    * ``approve`` / ``reject``: ``asset``, ``command_id``;
    * ``command_ack`` (from the device side): ``asset``, ``command_id``, optional
      ``status`` (applied | failed | rejected; default applied) and ``value`` (a finite number);
    * ``maintenance``: ``start``, ``end`` (int ns), and ``asset`` or ``line`` or
      neither (the whole site); optional ``window_id`` (a later message with
      the same id replaces the window, e.g. to end it early).

    Times are int64 ns since the epoch. Unknown fields are rejected, so a misspelt field is not silently
    ignored. A bad message is a :class:`~aiotstream.errors.DecodeError`: ``unsupported_schema``,
    ``bad_timestamp`` (only time fields are wrong) or ``bad_feedback``, naming every bad field.

    >>> fb = decode_feedback(b'{"schema": "aiotstream.feedback/1", "type": "ack", "asset": "p1", '
    ...                      b'"alert_type": "anomaly", "ts": 5, "by": "ana"}', Position("t", 0, 1))
    >>> (fb.type, fb.asset, fb.alert_type, fb.ts_ns, fb.by)
    ('ack', 'p1', 'anomaly', 5, 'ana')
    """
    return _feedback(_load_json(raw), raw, pos)


def _feedback(obj: object, raw: bytes, pos: Position) -> Feedback:
    if not isinstance(obj, dict):
        raise DecodeError("bad_feedback", f"feedback must be a JSON object, got {type(obj).__name__}")
    schema = obj.get("schema")
    if schema != FEEDBACK_SCHEMA:
        raise DecodeError("unsupported_schema",
                          f"schema {schema!r} is not supported (only {FEEDBACK_SCHEMA!r})")
    try:
        m = _FEEDBACK.validate_python(obj)
    except ValidationError as exc:
        raise _feedback_error(obj, exc) from None
    kind = m.type
    asset = m.asset if m.asset is None else check_id(m.asset)
    fb: dict[str, Any] = {"by": m.by or "", "note": m.note or ""}
    if kind == "maintenance":
        line = m.line if m.line is None else check_id(m.line, "line", "bad_line_id")
        fb.update(start_ns=m.start, end_ns=m.end, line=line, window_id=m.window_id or f"fb-{m.start}")
    elif kind == "command_ack":
        fb.update(command_id=m.command_id, status=m.status, value=None if m.value is None else float(m.value))
    elif kind in ("approve", "reject"):
        fb["command_id"] = m.command_id
    elif kind == "label":
        fb.update(alert_id=m.alert_id, label=m.label, fault_type=m.fault_type)
    else:
        fb.update(alert_id=m.alert_id, alert_type=m.alert_type)
    return Feedback(kind, asset, m.ts, pos, raw=raw, **fb)


def _feedback_error(obj: dict, exc: ValidationError) -> DecodeError:
    """One DecodeError naming every bad field of a feedback message, in words."""
    kind = obj.get("type")
    missing: list[str] = []
    unknown: list[str] = []
    words: list[str] = []
    times = 0
    errors = exc.errors()
    for err in errors:
        loc = err["loc"][1:] if err["loc"][:1] == (kind,) else err["loc"]  # (the tag, field, ...)
        name = str(loc[0]) if loc else ""
        t, got = err["type"], err.get("input")
        if t in ("union_tag_invalid", "union_tag_not_found"):
            words.append(f"field 'type' must be one of {', '.join(FEEDBACK_TYPES)}, got {kind!r}")
        elif t == "missing":
            missing.append(name)
        elif t == "extra_forbidden":
            unknown.append(name)
        elif name in _TIME_FIELDS:
            times += 1
            words.append(f"field {name!r} must be integer ns since the epoch (0..2**63-1), got {got!r}")
        elif t == "value_error":
            words.append(err["msg"].removeprefix("Value error, "))
        elif name in _CHOICES and t == "literal_error":
            words.append(f"field {name!r} must be one of {', '.join(_CHOICES[name])}, got {got!r}")
        elif name == "value":
            words.append(f"field 'value' must be a finite number, got {got!r}")
        elif t.startswith("string_") or t in ("int_type", "union_type"):
            words.append(f"field {name!r} must be a string of 1..{MAX_ASSET_ID if name != 'note' else 4096} "
                         f"characters, got {got!r}")
        else:
            words.append(f"field {name!r}: {err['msg']}, got {got!r}")
    if unknown:
        words.insert(0, f"{kind} feedback has unknown field(s) {', '.join(sorted(unknown))}")
    if missing:
        words.insert(0, f"{kind} feedback lacks field(s) {', '.join(missing)}")
    reason = "bad_timestamp" if times and times == len(errors) else "bad_feedback"
    return DecodeError(reason, "; ".join(dict.fromkeys(words)))


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
