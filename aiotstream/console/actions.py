"""Operator actions as the messages the flow already consumes: the console's only way into the flow.

* acknowledge / clear / label an alert, approve / reject a command: ``aiotstream.feedback/1`` messages on
  the site's feedback topic (the first of ``inputs.feedback_topics``, by default ``<site>.feedback``),
  keyed by the asset, decoded by the flow with :func:`aiotstream.codecs.decode_feedback`;
* promote a model version, roll back to the previous champion: a ``promote`` control message on the site's
  control topic (``<site>.control``; ONNX sites only), checked by :class:`aiotstream.pdm.rollout.Promote`.

Each builder checks the action against what the console has seen (:class:`ConsoleState`): an unknown alert
or command, an action on a closed alert, a command no longer awaiting approval are refused with an
:class:`ActionError` whose message the page shows. Every message names the operator (``by``) and carries the
comment (``note``). Its ``ts`` is the asset's newest event time the console has seen (never before the alert
or command it answers), so the flow applies it at once on the asset's clock; the wall clock only when the
console has seen nothing of the asset. Every message is decoded with the flow's own decoder before it is
returned, so the console cannot send what the flow would dead-letter as malformed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from aiotstream.codecs.feedback import FEEDBACK_SCHEMA, LABELS, decode_feedback
from aiotstream.console.state import ConsoleState
from aiotstream.errors import DecodeError
from aiotstream.lineage import iso_ns
from aiotstream.pdm.rollout import Promote, promote_problem
from aiotstream.records import Position

MAX_OPERATOR = 256
MAX_NOTE = 4096


class ActionError(ValueError):
    """An action the console refuses; the message is for the operator (shown in the page)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One message to produce: topic, key (the asset, or None), JSON payload, and a line for the page."""

    topic: str
    key: bytes | None
    payload: bytes
    summary: str


def operator_name(by: Any) -> str:
    """The operator's name from a form field, stripped; ActionError when missing or too long.

    >>> operator_name("  ana ")
    'ana'
    """
    by = (by or "").strip() if isinstance(by, str) or by is None else None
    if not by:
        raise ActionError("enter your name in the operator field: every action says who did it")
    if len(by) > MAX_OPERATOR:
        raise ActionError(f"the operator name is longer than {MAX_OPERATOR} characters")
    return by


def _note(note: Any) -> str:
    note = (note or "").strip() if isinstance(note, str) or note is None else ""
    if len(note) > MAX_NOTE:
        raise ActionError(f"the comment is longer than {MAX_NOTE} characters ({len(note)})")
    return note


def _ts(state: ConsoleState, asset: str, at_least: int) -> int:
    clock = state.clock(asset)
    if clock is None:
        return max(time.time_ns(), at_least)
    return max(clock, at_least)


def _feedback(topic: str, asset: str, fields: dict[str, Any], summary: str) -> Action:
    note = fields.get("note") or ""
    if note:  # (the page's line shows the start of a long comment; the message carries all of it)
        summary += f': "{note[:200]}{"…" if len(note) > 200 else ""}"'
    given = {k: v for k, v in fields.items() if v not in (None, "")}
    msg = {"schema": FEEDBACK_SCHEMA, **given, "asset": asset}
    raw = orjson.dumps(msg)
    try:
        decode_feedback(raw, Position(topic, -1, -1))
    except DecodeError as exc:  # (the checks above should make this impossible: say so rather than send it)
        raise ActionError(f"the flow would refuse this message ({exc.reason}): {exc}") from None
    return Action(topic, asset.encode(), raw, summary)


def _known_alert(state: ConsoleState, alert_id: str) -> dict[str, Any]:
    alert = state.alert(alert_id)
    if alert is None:
        raise ActionError(f"unknown alert id {alert_id!r}: no such alert on the alerts topic (yet)")
    return alert


def alert_action(state: ConsoleState, topic: str, kind: str, alert_id: str, by: Any,
                 note: Any = "") -> Action:
    """``ack`` or ``clear`` of an open (or, for clear, acknowledged) alert."""
    if kind not in ("ack", "clear"):
        raise ActionError(f"unknown alert action {kind!r} (ack or clear)")
    by, note = operator_name(by), _note(note)
    alert = _known_alert(state, alert_id)
    status, asset = alert.get("status"), str(alert.get("asset"))
    if status == "cleared":
        when = alert.get("cleared_at") or alert.get("at")
        raise ActionError(f"alert {alert_id} ({alert.get('alert_type')} on {asset}) is already cleared "
                          f"({_who(alert.get('cleared_by'))}at {when}): it cannot be acknowledged or cleared")
    if kind == "ack" and status == "acknowledged":
        when = _when(alert.get("acknowledged_at_ns"))
        raise ActionError(f"alert {alert_id} ({alert.get('alert_type')} on {asset}) is already acknowledged "
                          f"({_who(alert.get('acknowledged_by'))}at {when})")
    ts = _ts(state, asset, int(alert.get("at_ns") or 0))
    verb = "acknowledge" if kind == "ack" else "clear"
    return _feedback(topic, asset, {"type": kind, "alert_id": alert_id, "ts": ts, "by": by, "note": note},
                     f"{by}: {verb} {alert.get('alert_type')} alert on {asset} ({alert_id[:8]})")


def label_action(state: ConsoleState, topic: str, alert_id: str, label: str, by: Any, note: Any = "",
                 fault_type: Any = "") -> Action:
    """``label`` an alert (``true_fault`` or ``false_alarm``, optional fault type), once, also after it
    cleared: labels count in the KPIs and teach the model (see docs/decisions.md)."""
    if label not in LABELS:
        raise ActionError(f"a label is one of {', '.join(LABELS)}, got {label!r}")
    by, note = operator_name(by), _note(note)
    fault = (fault_type or "").strip() if isinstance(fault_type, str) else ""
    alert = _known_alert(state, alert_id)
    asset, given = str(alert.get("asset")), alert.get("label")
    if isinstance(given, dict):
        who = f" by {given['by']}" if given.get("by") else ""
        raise ActionError(f"alert {alert_id} ({alert.get('alert_type')} on {asset}) is already labelled "
                          f"{given.get('label')}{who}: a label is given once")
    ts = _ts(state, asset, int(alert.get("at_ns") or 0))
    fields = {"type": "label", "alert_id": alert_id, "label": label, "fault_type": fault, "ts": ts, "by": by,
              "note": note}
    return _feedback(topic, asset, fields,
                     f"{by}: label {alert.get('alert_type')} alert on {asset} ({alert_id[:8]}) {label}")


def command_action(state: ConsoleState, topic: str, kind: str, command_id: str, by: Any,
                   note: Any = "") -> Action:
    """``approve`` or ``reject`` of a command awaiting approval."""
    if kind not in ("approve", "reject"):
        raise ActionError(f"unknown command action {kind!r} (approve or reject)")
    by, note = operator_name(by), _note(note)
    cmd = state.command(command_id)
    if cmd is None:
        raise ActionError(f"unknown command id {command_id!r}: no such command on the commands topic (yet)")
    asset = str(cmd.get("asset"))
    if cmd.get("status") != "awaiting_approval":
        raise ActionError(f"command {command_id} ({cmd.get('actuator')} on {asset}) is {cmd.get('status')}, "
                          "not awaiting approval: nothing to approve or reject")
    ts = _ts(state, asset, int(cmd.get("at_ns") or 0))
    exp = cmd.get("expires_at_ns")
    if isinstance(exp, int) and ts >= exp:
        raise ActionError(f"command {command_id} expired at {iso_ns(exp)} (the asset's clock is at "
                          f"{iso_ns(ts)})")
    return _feedback(topic, asset, {"type": kind, "command_id": command_id, "ts": ts, "by": by, "note": note},
                     f"{by}: {kind} {cmd.get('actuator')} = {cmd.get('value')} on {asset} ({command_id[:8]})")


def promote_action(topic: str | None, ref: str, variant: str, by: Any, note: Any = "", fraction: Any = 0.0,
                   what: str = "promote") -> Action:
    """A ``promote`` control message for ``name@version`` (or a bare version of the site's model)."""
    if topic is None:
        raise ActionError("this site has no ONNX models (model.kind is not \"onnx\"): there is nothing to "
                          "promote or roll back")
    by, note = operator_name(by), _note(note)
    name, _, version = (ref or "").strip().rpartition("@")
    if not version:
        raise ActionError("choose a model version")
    try:
        frac = float(fraction or 0.0)
    except ValueError:
        raise ActionError(f"the canary fraction must be a number from 0 to 1, got {fraction!r}") from None
    msg: dict[str, Any] = {"type": "promote", "version": version, "variant": variant, "by": by}
    if name:
        msg["model"] = name
    if variant == "canary":
        msg["fraction"] = frac
    if note:
        msg["note"] = note
    problem = promote_problem(msg)
    if problem is not None:
        raise ActionError(f"the flow would refuse this promotion: {problem}")
    try:
        Promote.model_validate(orjson.loads(orjson.dumps(msg)))
    except ValidationError as exc:  # pragma: no cover (promote_problem said it was fine)
        raise ActionError(str(exc)) from None
    return Action(topic, None, orjson.dumps(msg), f"{by}: {what} {ref} as {variant}")


def rollback_action(state: ConsoleState, topic: str | None, by: Any, note: Any = "",
                    initial: str | None = None) -> Action:
    """Promote the champion before the latest promotion back to champion (``initial``: the config's
    champion, the one before the first promotion)."""
    if topic is None:
        return promote_action(topic, "", "champion", by, note)  # (says why: no ONNX models)
    prev = state.previous_champion(initial)
    if prev is None:
        raise ActionError("no earlier champion is known (no promotion to champion on the models topic yet): "
                          "nothing to roll back to")
    return promote_action(topic, prev, "champion", by, note, what="roll back to")


def _who(name: Any) -> str:
    return f"by {name} " if name else ""


def _when(t_ns: Any) -> str:
    return iso_ns(t_ns) if isinstance(t_ns, int) else "an unknown time"
