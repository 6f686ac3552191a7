"""JSON feedback (operators and devices): an object with ``"schema": "aiotstream.feedback/1"``; see
:func:`decode_feedback`. One pydantic model per type, told apart by ``"type"``."""
from __future__ import annotations

from typing import Annotated, Any, Literal

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

from aiotstream.codecs.frames import MAX_ASSET_ID, MAX_TS_NS
from aiotstream.errors import DecodeError
from aiotstream.ids import check_id
from aiotstream.records import FEEDBACK_TYPES, Feedback, Position


def _load_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):  # valid JSON number that overflows a double (e.g. 1e400)
            raise DecodeError("non_finite", f"a number overflows a double: {exc}") from None
        raise DecodeError("bad_json", f"not valid JSON: {exc}") from None


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
    reset: bool = False  # the work reset the machine: its detectors re-learn their normal from ``end``

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
      the same id replaces the window, e.g. to end it early) and ``reset`` (true/false, default false:
      the work reset the machine, e.g. a part replaced or recalibrated, so its level after ``end`` is a
      new normal: the asset's detectors re-baseline there instead of alerting on the shift).

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
        fb.update(start_ns=m.start, end_ns=m.end, line=line, window_id=m.window_id or f"fb-{m.start}",
                  reset=m.reset)
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
        elif t == "bool_type":
            words.append(f"field {name!r} must be true or false, got {got!r}")
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


# ---- erasure requests on the control topic ([governance] erasure) -----------------------------------------
ERASE_TYPE = "erase"


class EraseRequest(BaseModel):
    """``{"type": "erase", "subject": "<person id>", "by": ..., "ts": ...}``: from now on the subject's id is
    pseudonymised (or dropped) in every output (:mod:`aiotstream.governance`). Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["erase"]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    by: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    ts: _Ns | None = None
    note: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    id: _Name | int | None = None


_GOVERNANCE = TypeAdapter(EraseRequest)  # strict: no coercion of numbers to strings or back


def is_erase(obj: object) -> bool:
    """Whether a parsed control message asks for an erasure (its ``type`` says so).

    >>> is_erase({"type": "erase"}), is_erase({"type": "promote"}), is_erase([1])
    (True, False, False)
    """
    return isinstance(obj, dict) and obj.get("type") == ERASE_TYPE


def decode_erase(raw: bytes) -> EraseRequest:
    """Decode and validate an erasure request; a :class:`~aiotstream.errors.DecodeError` ``bad_control``
    naming every bad field otherwise (never another exception).

    >>> decode_erase(b'{"type": "erase", "subject": "ana", "by": "dpo"}').subject
    'ana'
    >>> decode_erase(b'{"type": "erase", "subject": ""}')
    Traceback (most recent call last):
    aiotstream.errors.DecodeError: erase: field 'subject' must be a string of 1..256 characters
    """
    obj = _load_json(raw)
    if not is_erase(obj):
        raise DecodeError("bad_control", 'an erasure request is {"type": "erase", "subject": ...}')
    try:
        return _GOVERNANCE.validate_python(obj)
    except ValidationError as exc:
        words = []
        for err in exc.errors():
            name = ".".join(str(x) for x in err["loc"]) or "message"
            t = err["type"]
            if t == "missing":
                words.append(f"lacks field {name!r}")
            elif t == "extra_forbidden":
                words.append(f"unknown field {name[:64]!r}")
            elif name in ("subject", "by"):
                words.append(f"field {name!r} must be a string of 1..256 characters")
            elif name == "ts":
                words.append("field 'ts' must be integer ns since the epoch (0..2**63-1)")
            else:
                words.append(f"field {name[:64]!r}: {err['msg']}")
        raise DecodeError("bad_control", "erase: " + "; ".join(dict.fromkeys(words))) from None
